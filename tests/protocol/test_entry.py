"""Log entries and salted bodies: known answer, validation, hostile input, properties."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import encoding
from protocol.entry import (
    FORMAT_VERSION,
    MAX_BODY_SIZE,
    MAX_ENTRY_SIZE,
    SALT_SIZE,
    Entry,
    body_hash,
    check_body,
    decode_body,
    decode_entry,
    encode_body,
    encode_entry,
    entry_id,
    log_id,
    make_entry,
)
from protocol.errors import EncodingError, EntryError, ProtocolError

VECTORS = Path(__file__).parent.parent / "vectors" / "entry"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

GOOD: dict[str, Any] = {
    "network": "solidarity",
    "origin": "log.example.org/city",
    "seq": 0,
    "time_ms": 1767225600000,
    "type": "pledge",
    "schema": 1,
    "body_hash": bytes(32),
    "body_size": SALT_SIZE + 1,
}


def _entry(**changes: Any) -> Entry:
    return Entry(**{**GOOD, **changes})


def _wire(**changes: Any) -> dict[str, Any]:
    """The wire map of GOOD, with changes (None deletes a key)."""
    wire = {
        "body_hash": bytes(32), "body_size": SALT_SIZE + 1, "network": "solidarity",
        "origin": "log.example.org/city", "schema": 1, "seq": 0, "time": 1767225600000,
        "type": "pledge", "v": FORMAT_VERSION,
    }
    wire.update(changes)
    return {key: value for key, value in wire.items() if value is not None}


# --- known answer ---------------------------------------------------------------


@pytest.fixture(params=sorted(VECTORS.glob("*.json")), ids=lambda path: path.stem)
def vector(request: pytest.FixtureRequest) -> dict[str, Any]:
    return json.loads(request.param.read_text())


def test_vector_make_entry(vector: dict[str, Any]) -> None:
    salt = bytes.fromhex(vector["salt_hex"])
    entry, entry_bytes, salted = make_entry(**vector["fields"], body=vector["body"], salt=salt)
    assert salted.hex() == vector["salted_body_hex"]
    assert entry.body_hash.hex() == vector["body_hash_hex"] == body_hash(salted).hex()
    assert entry.body_size == vector["body_size"]
    assert entry_bytes.hex() == vector["entry_hex"]
    assert entry_id(entry_bytes).hex() == vector["entry_id_hex"]
    assert log_id(entry.origin) == vector["log_id_hex"]


def test_vector_decode(vector: dict[str, Any]) -> None:
    entry = decode_entry(bytes.fromhex(vector["entry_hex"]))
    assert entry == Entry(
        **vector["fields"],
        body_hash=bytes.fromhex(vector["body_hash_hex"]),
        body_size=vector["body_size"],
    )
    assert entry.version == FORMAT_VERSION
    salted = bytes.fromhex(vector["salted_body_hex"])
    assert check_body(entry, salted) == vector["body"]
    assert decode_body(salted) == (bytes.fromhex(vector["salt_hex"]), vector["body"])


def test_entry_id_is_rfc9162_leaf_hash() -> None:
    assert entry_id(b"") == hashlib.sha256(b"\x00").digest()
    assert entry_id(b"abc") == hashlib.sha256(b"\x00abc").digest()


def test_log_id() -> None:
    # sha256("a") from coreutils sha256sum.
    assert log_id("a") == "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
    # Hashed as UTF-8 whatever it holds: U+00E9 is c3 a9, sha256sum of those two bytes.
    assert log_id("\u00e9") == "4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c"
    with pytest.raises(EntryError, match="origin: expected text"):
        log_id("\ud800")
    with pytest.raises(EntryError, match="origin: expected text"):
        log_id(None)  # type: ignore[arg-type]


# --- the Entry value ----------------------------------------------------------------


def test_entry_is_frozen_slotted_keyword_only() -> None:
    entry = _entry()
    with pytest.raises(AttributeError):
        entry.seq = 1  # type: ignore[misc]
    assert not hasattr(entry, "__dict__")
    assert hash(entry) == hash(_entry()) and entry == _entry()
    with pytest.raises(TypeError):
        Entry("solidarity")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("network", "a" * 64),
        ("network", "0"),
        ("network", "solidarity-test.v2"),
        ("origin", "x"),
        ("origin", "!" * 255),
        ("origin", "example.org/log~_*"),
        ("seq", 2**63 - 1),
        ("time_ms", 0),
        ("time_ms", 2**63 - 1),
        ("type", "a"),
        ("type", "a" + "-" * 31),
        ("schema", 65535),
        ("body_size", MAX_BODY_SIZE),
    ],
)
def test_entry_accepts_edges(field: str, value: object) -> None:
    entry = _entry(**{field: value})
    assert decode_entry(encode_entry(entry)) == entry


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("network", ""),
        ("network", "a" * 65),
        ("network", "-solidarity"),
        ("network", ".x"),
        ("network", "Solidarity"),
        ("network", "solidarity\n"),
        ("network", "soli darity"),
        ("network", b"solidarity"),
        ("origin", ""),
        ("origin", "x" * 256),
        ("origin", "example.org/log city"),
        ("origin", "example.org+log"),
        ("origin", "example.org/l\u00f6g"),
        ("origin", "example.org\n"),
        ("origin", "tab\there"),
        ("origin", "del\x7f"),
        ("origin", None),
        ("seq", -1),
        ("seq", 2**63),
        ("seq", True),
        ("seq", "7"),
        ("seq", 7.0),
        ("time_ms", -1),
        ("time_ms", 2**63),
        ("time_ms", None),
        ("type", ""),
        ("type", "Pledge"),
        ("type", "1pledge"),
        ("type", "a" * 33),
        ("type", "pledge_v2"),
        ("schema", 0),
        ("schema", 65536),
        ("schema", False),
        ("body_hash", bytes(31)),
        ("body_hash", bytes(33)),
        ("body_hash", "00" * 32),
        ("body_hash", bytearray(32)),
        ("body_size", SALT_SIZE),
        ("body_size", MAX_BODY_SIZE + 1),
        ("version", 0),
        ("version", 2),
        ("version", True),
    ],
)
def test_entry_rejects(field: str, value: object) -> None:
    with pytest.raises(EntryError, match=f"entry field '{field}': expected .*, got "):
        _entry(**{field: value})


def test_entry_message_names_field_and_values() -> None:
    with pytest.raises(EntryError, match=r"^entry field 'seq': expected an integer from 0 to 2\*\*63-1, got -1$"):
        _entry(seq=-1)


# --- wire form ----------------------------------------------------------------------


def test_wire_keys() -> None:
    wire = encoding.decode(encode_entry(_entry()))
    assert list(wire) == ["body_hash", "body_size", "network", "origin", "schema", "seq", "time", "type", "v"]
    assert wire == _wire()


@pytest.mark.parametrize(
    ("wire", "error", "match"),
    [
        (_wire(extra=1), EntryError, "unknown field 'extra'"),
        (_wire(seq=None), EntryError, "missing field 'seq'"),
        (_wire(time=None), EntryError, "missing field 'time'"),
        (_wire(v=None), EntryError, "field 'v': expected format version 1, got None"),
        (_wire(v=2, extra=1), EntryError, "field 'v': expected format version 1, got 2"),
        (_wire(v=True), EntryError, "field 'v'"),
        (_wire(seq="0"), EntryError, "field 'seq'"),
        (_wire(seq=True), EntryError, "field 'seq'"),
        (_wire(time=-5), EntryError, "field 'time_ms'"),
        (_wire(body_hash=bytes(31)), EntryError, "field 'body_hash': expected 32 bytes, got 31 bytes"),
        (_wire(body_hash="00" * 32), EntryError, "field 'body_hash'"),
        (_wire(network=b"solidarity"), EntryError, "field 'network'"),
        (_wire(body_size=[1]), EntryError, "field 'body_size'"),
        ([1, 2], EntryError, "expected a map, got list"),
        ("entry", EntryError, "expected a map, got str"),
    ],
)
def test_decode_entry_rejects(wire: object, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        decode_entry(encoding.encode(wire))


def test_decode_entry_rejects_non_canonical() -> None:
    data = encode_entry(_entry())
    with pytest.raises(EncodingError, match="trailing"):
        decode_entry(data + b"\x00")
    # seq 0 (the byte after "a3 s e q") written as uint8 0.
    at = data.index(bytes.fromhex("a3736571")) + 4
    with pytest.raises(EncodingError, match="non-canonical"):
        decode_entry(data[:at] + b"\xcc\x00" + data[at + 1 :])
    with pytest.raises(EncodingError, match="at most 65535"):
        decode_entry(encoding.encode("x" * MAX_ENTRY_SIZE))


# --- salted bodies --------------------------------------------------------------------

SALT = bytes(range(SALT_SIZE))


def test_body_round_trip() -> None:
    salted = encode_body({"n": 1}, SALT)
    assert salted == SALT + bytes.fromhex("81a16e01")
    assert decode_body(salted) == (SALT, {"n": 1})
    assert body_hash(salted) == hashlib.sha256(salted).digest()


def test_empty_body_is_smallest() -> None:
    salted = encode_body({}, SALT)
    assert len(salted) == SALT_SIZE + 1
    assert decode_body(salted) == (SALT, {})


def test_largest_body() -> None:
    filler = MAX_BODY_SIZE - SALT_SIZE - len(encoding.encode({"x": b""}))
    # bin16 header is 3 bytes where bin8 for 0 bytes was 2: one byte less payload.
    body = {"x": b"\x00" * (filler - 1)}
    salted = encode_body(body, SALT)
    assert len(salted) == MAX_BODY_SIZE
    assert decode_body(salted) == (SALT, body)
    with pytest.raises(EntryError, match="at most 65535 bytes salted, got 65536"):
        encode_body({"x": b"\x00" * filler}, SALT)


@pytest.mark.parametrize(
    ("body", "salt", "match"),
    [
        ([1], SALT, "body: expected a map, got list"),
        (None, SALT, "body: expected a map, got NoneType"),
        ({}, SALT[:-1], "salt: expected 16 bytes, got 15 bytes"),
        ({}, SALT + b"\x00", "salt: expected 16 bytes, got 17 bytes"),
        ({}, SALT.hex(), "salt: expected 16 bytes, got str"),
    ],
)
def test_encode_body_rejects(body: Any, salt: Any, match: str) -> None:
    with pytest.raises(EntryError, match=match):
        encode_body(body, salt)


def test_encode_body_rejects_floats() -> None:
    with pytest.raises(EncodingError, match="float"):
        encode_body({"quantity": 1.5}, SALT)


@pytest.mark.parametrize(
    ("data", "error", "match"),
    [
        (b"", EntryError, "expected 17 to 65535 bytes salted, got 0"),
        (SALT, EntryError, "got 16"),
        (SALT + b"\x90", EntryError, "body: expected a map, got list"),
        (SALT + b"\xa1x", EntryError, "body: expected a map, got str"),
        (SALT + b"\x80\x00", EncodingError, "trailing"),
        (SALT + b"\x81\xa1a", EncodingError, "truncated"),
        (SALT + b"\x81\xa1a\xcc\x01", EncodingError, "non-canonical"),
        (SALT + b"\xda" + bytes(65535), EntryError, "got 65552"),
        ("00" * 20, EntryError, "expected bytes, got str"),
        (None, EntryError, "expected bytes, got NoneType"),
    ],
)
def test_decode_body_rejects(data: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        decode_body(data)


def test_check_body() -> None:
    entry, _, salted = make_entry(**_fields(), body={"n": 1}, salt=SALT)
    assert check_body(entry, salted) == {"n": 1}
    with pytest.raises(EntryError, match=f"expected {len(salted)} bytes as the entry says, got {len(salted) + 1}"):
        check_body(entry, salted + b"\x00")
    other = encode_body({"n": 2}, SALT)
    assert len(other) == len(salted)
    with pytest.raises(EntryError, match="expected sha-256"):
        check_body(entry, other)
    with pytest.raises(EntryError, match="expected sha-256"):
        check_body(entry, bytes([salted[0] ^ 1]) + salted[1:])
    with pytest.raises(EntryError, match="expected bytes"):
        check_body(entry, salted.hex())  # type: ignore[arg-type]


def test_make_entry_validates() -> None:
    with pytest.raises(EntryError, match="field 'type'"):
        make_entry(**{**_fields(), "type": "Pledge"}, body={}, salt=SALT)
    with pytest.raises(EntryError, match="salt"):
        make_entry(**_fields(), body={}, salt=b"")


def _fields() -> dict[str, Any]:
    return {key: GOOD[key] for key in ("network", "origin", "seq", "time_ms", "type", "schema")}


# --- hostile input --------------------------------------------------------------------


def _samples() -> tuple[bytes, bytes]:
    _, entry_bytes, salted = make_entry(
        **_fields(), body={"kind": "relocation", "items": [1, 2, {"n": -300}], "note": "\u20ac"}, salt=SALT
    )
    return entry_bytes, salted


def test_every_truncation_rejected() -> None:
    entry_bytes, salted = _samples()
    for end in range(len(entry_bytes)):
        with pytest.raises(ProtocolError):
            decode_entry(entry_bytes[:end])
    for end in range(len(salted)):
        with pytest.raises(ProtocolError):
            decode_body(salted[:end])


def test_single_byte_changes() -> None:
    """Every one-byte change is rejected or decodes to a value with those exact bytes."""
    entry_bytes, salted = _samples()
    for at in range(len(entry_bytes)):
        for byte in (0x00, 0x20, 0x7F, 0x80, 0xC0, 0xC3, 0xCA, 0xCC, 0xD9, 0xFF, entry_bytes[at] ^ 1):
            changed = entry_bytes[:at] + bytes([byte]) + entry_bytes[at + 1 :]
            try:
                entry = decode_entry(changed)
            except ProtocolError:
                continue
            assert encode_entry(entry) == changed
    for at in range(SALT_SIZE, len(salted)):
        changed = salted[:at] + bytes([salted[at] ^ 0x80]) + salted[at + 1 :]
        try:
            salt, body = decode_body(changed)
        except ProtocolError:
            continue
        assert encode_body(body, salt) == changed


@FAST
@given(st.binary(max_size=200))
def test_random_bytes_entry(data: bytes) -> None:
    try:
        entry = decode_entry(data)
    except ProtocolError:
        return
    assert encode_entry(entry) == data


@FAST
@given(st.binary(min_size=SALT_SIZE, max_size=200))
def test_random_bytes_body(data: bytes) -> None:
    try:
        salt, body = decode_body(data)
    except ProtocolError:
        return
    assert encode_body(body, salt) == data


@FAST
@given(st.binary(max_size=120), st.integers(0, 10**6))
def test_random_wire_values(filler: bytes, where: int) -> None:
    """Random bytes spliced into a valid entry never escape as another exception."""
    entry_bytes, _ = _samples()
    at = where % len(entry_bytes)
    try:
        decode_entry(entry_bytes[:at] + filler + entry_bytes[at:])
    except ProtocolError:
        pass


# --- properties -------------------------------------------------------------------------

ENTRIES = st.builds(
    Entry,
    network=st.from_regex(r"[a-z0-9][a-z0-9.-]{0,63}", fullmatch=True),
    origin=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="+"), min_size=1, max_size=255
    ),
    seq=st.integers(0, 2**63 - 1),
    time_ms=st.integers(0, 2**63 - 1),
    type=st.from_regex(r"[a-z][a-z0-9-]{0,31}", fullmatch=True),
    schema=st.integers(1, 65535),
    body_hash=st.binary(min_size=32, max_size=32),
    body_size=st.integers(SALT_SIZE + 1, MAX_BODY_SIZE),
)


@FAST
@given(ENTRIES)
def test_entry_round_trip(entry: Entry) -> None:
    data = encode_entry(entry)
    assert decode_entry(data) == entry
    assert len(data) <= MAX_ENTRY_SIZE
    assert len(log_id(entry.origin)) == 64


BODIES = st.dictionaries(
    st.text(max_size=10),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(max_size=20) | st.binary(max_size=20),
        lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
        max_leaves=12,
    ),
    max_size=6,
)


@FAST
@given(ENTRIES, BODIES, st.binary(min_size=SALT_SIZE, max_size=SALT_SIZE))
def test_make_entry_round_trip(template: Entry, body: dict[str, Any], salt: bytes) -> None:
    fields = {name: getattr(template, name) for name in ("network", "origin", "seq", "time_ms", "type", "schema")}
    entry, entry_bytes, salted = make_entry(**fields, body=body, salt=salt)
    assert decode_entry(entry_bytes) == entry
    assert check_body(entry, salted) == body
    assert decode_body(salted) == (salt, body)
    assert entry_id(entry_bytes) == hashlib.sha256(b"\x00" + entry_bytes).digest()


def test_check_body_hash_checks_size_and_hash_without_decoding():
    from protocol.entry import check_body_hash

    entry, _, salted = make_entry(network="net", origin="city.example/log", seq=0, time_ms=0, type="pledge",
                                  schema=1, body={"a": 1}, salt=b"\x01" * 16)
    check_body_hash(entry, salted)
    with pytest.raises(EntryError, match="bytes as the entry says"):
        check_body_hash(entry, salted + b"\x00")
    with pytest.raises(EntryError, match="sha-256"):
        check_body_hash(entry, salted[:-1] + bytes([salted[-1] ^ 1]))


# --- the msgspec fast path answers as the strict path does -------------------------------


def _strict_answer(data: bytes, monkeypatch: pytest.MonkeyPatch) -> object:
    """decode_entry with the msgspec fast path switched off: the entry, or the error's class and message."""
    import protocol.entry

    def refuse(_: bytes) -> Entry:
        raise ValueError("fast path off")

    with monkeypatch.context() as patch:
        patch.setattr(protocol.entry, "_decode_wire", refuse)
        return _answer(data)


def _answer(data: bytes) -> object:
    try:
        return decode_entry(data)
    except ProtocolError as exc:
        return f"{type(exc).__name__}: {exc}"


_ODD = [
    0, 1, -1, True, None, SALT_SIZE, 65535, 65536, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), "", "x", "pledge\n",
    "a b", "\u00e9", b"", bytes(31), bytes(32), bytes(33), [], {}, {"v": 1}, 1.0, msgpack.Timestamp(1),
]


def _spellings(value: object) -> list[bytes]:
    out = [msgpack.packb(value, use_bin_type=True)]
    if isinstance(value, str | bytes):
        out.append(msgpack.packb(value, use_bin_type=False))  # str for bytes, raw for str
    if type(value) is int and 0 <= value < 2**31:
        out += [b"\xce" + value.to_bytes(4, "big"), b"\xd2" + value.to_bytes(4, "big")]
    if isinstance(value, float):
        out.append(msgpack.packb(value, use_single_float=True))
    return out


@pytest.mark.parametrize("key", [*sorted(_wire()), "time_ms", "version", "zz"])
def test_fast_path_answers_as_the_strict_path(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Odd values in every spelling, in place of each field, repeated, or as an extra key."""
    for value in _ODD:
        for raw in _spellings(value):
            pairs = {name: msgpack.packb(item, use_bin_type=True) for name, item in _wire().items()}
            pairs[key] = raw
            items = sorted(pairs.items())
            variants = [items, [*items, (key, raw)], [p for p in items if p[0] != key]]
            for chosen in variants:
                data = bytes([0x80 | len(chosen)]) + b"".join(msgpack.packb(k) + v for k, v in chosen)
                assert _answer(data) == _strict_answer(data, monkeypatch)


@FAST
@given(st.data())
def test_fast_path_answers_as_the_strict_path_after_random_edits(data: st.DataObject) -> None:
    entry_bytes, _ = _samples()
    changed = bytearray(entry_bytes)
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(changed) - 1))
        kind = data.draw(st.sampled_from(["set", "delete", "insert"]))
        if kind == "set":
            changed[at] = data.draw(st.integers(0, 255))
        elif kind == "delete":
            del changed[at]
        else:
            changed.insert(at, data.draw(st.integers(0, 255)))
    with pytest.MonkeyPatch.context() as monkeypatch:
        assert _answer(bytes(changed)) == _strict_answer(bytes(changed), monkeypatch)
