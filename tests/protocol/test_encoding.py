"""Canonical MessagePack: known answers, property tests, hostile input."""

from __future__ import annotations

import enum
import json
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.encoding import MAX_DEPTH, decode, encode
from protocol.errors import EncodingError, ProtocolError

VECTORS = Path(__file__).parent.parent / "vectors" / "encoding"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _untag(value: Any) -> Any:
    """JSON vector value -> Python value; {"$bytes": hex} is a byte string."""
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return bytes.fromhex(value["$bytes"])
        return {key: _untag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_untag(item) for item in value]
    return value


def _cases(pattern: str) -> list[Any]:
    params = []
    for path in sorted(VECTORS.glob(pattern)):
        for case in json.loads(path.read_text())["cases"]:
            params.append(pytest.param(case, id=f"{path.stem}/{case['name']}"))
    return params


# --- known answers ---------------------------------------------------------


@pytest.mark.parametrize("case", _cases("canonical-*.json"))
def test_canonical_vector(case: dict[str, Any]) -> None:
    value = _untag(case["value"])
    data = bytes.fromhex(case["hex"])
    assert encode(value) == data
    assert decode(data) == value


@pytest.mark.parametrize("case", _cases("rejected.json"))
def test_rejected_vector(case: dict[str, Any]) -> None:
    with pytest.raises(EncodingError, match=case["error"]):
        decode(bytes.fromhex(case["hex"]))


def test_vectors_present() -> None:
    assert len(_cases("canonical-*.json")) >= 30
    assert len(_cases("rejected.json")) >= 30


# --- length forms at every boundary (headers derived from the spec by hand) ---


@pytest.mark.parametrize(
    ("length", "header"),
    [(31, "bf"), (32, "d920"), (255, "d9ff"), (256, "da0100"), (65535, "daffff"), (65536, "db00010000")],
)
def test_str_length_forms(length: int, header: str) -> None:
    data = encode("x" * length)
    assert data == bytes.fromhex(header) + b"x" * length
    assert decode(data, max_size=len(data)) == "x" * length


@pytest.mark.parametrize(
    ("length", "header"),
    [(0, "c400"), (255, "c4ff"), (256, "c50100"), (65535, "c5ffff"), (65536, "c600010000")],
)
def test_bin_length_forms(length: int, header: str) -> None:
    data = encode(b"\x01" * length)
    assert data == bytes.fromhex(header) + b"\x01" * length
    assert decode(data, max_size=len(data)) == b"\x01" * length


@pytest.mark.parametrize(
    ("length", "header"),
    [(15, "9f"), (16, "dc0010"), (65535, "dcffff"), (65536, "dd00010000")],
)
def test_array_length_forms(length: int, header: str) -> None:
    data = encode([None] * length)
    assert data == bytes.fromhex(header) + b"\xc0" * length
    assert decode(data, max_size=len(data)) == [None] * length


@pytest.mark.parametrize(
    ("length", "header"),
    [(15, "8f"), (16, "de0010"), (65535, "deffff"), (65536, "df00010000")],
)
def test_map_length_forms(length: int, header: str) -> None:
    value = {f"{i:05d}": 0 for i in range(length)}
    data = encode(value)
    assert data[: len(header) // 2] == bytes.fromhex(header)
    assert decode(data, max_size=len(data)) == value


# --- decode limits ----------------------------------------------------------


def _nested(levels: int) -> bytes:
    return b"\x91" * levels + b"\xc0"


def test_depth_limit_is_inclusive() -> None:
    value = decode(_nested(MAX_DEPTH))
    assert encode(value) == _nested(MAX_DEPTH)
    with pytest.raises(EncodingError, match="nesting deeper than 32"):
        decode(_nested(MAX_DEPTH + 1))


def test_max_depth_can_be_lowered() -> None:
    assert decode(_nested(4), max_depth=4) == [[[[None]]]]
    with pytest.raises(EncodingError, match="nesting deeper than 3"):
        decode(_nested(4), max_depth=3)
    assert decode(b"\x05", max_depth=0) == 5
    with pytest.raises(EncodingError, match="nesting"):
        decode(b"\x90", max_depth=0)


def test_max_depth_above_max_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        decode(b"\xc0", max_depth=MAX_DEPTH + 1)


@pytest.mark.parametrize("levels", [100, 1023, 1024, 1025, 65534])
def test_deep_nesting_fails_fast(levels: int) -> None:
    # Past the C unpacker's own stack (1024) and far past ours: EncodingError, not RecursionError.
    started = time.monotonic()
    with pytest.raises(EncodingError, match="nesting"):
        decode(_nested(levels))
    assert time.monotonic() - started < 1


def test_array_of_nesting_without_end() -> None:
    with pytest.raises(EncodingError):
        decode(b"\x91" * 65535)


def test_deep_maps() -> None:
    with pytest.raises(EncodingError, match="nesting"):
        decode(b"\x81\xa1a" * 2000 + b"\xc0")


def test_max_size() -> None:
    data = encode("x" * 100)
    assert decode(data, max_size=len(data)) == "x" * 100
    with pytest.raises(EncodingError, match=f"at most {len(data) - 1} bytes, got {len(data)}"):
        decode(data, max_size=len(data) - 1)
    with pytest.raises(EncodingError, match="at most 65535"):
        decode(encode(b"\x00" * 65535))


def test_huge_headers_do_not_allocate() -> None:
    for header in ["dfffffffff", "ddffffffff", "dbffffffff", "c6ffffffff", "c9ffffffff01"]:
        with pytest.raises(EncodingError):
            decode(bytes.fromhex(header) + bytes(10))


def test_decode_accepts_bytes_like() -> None:
    assert decode(bytearray(b"\x81\xa1a\x01")) == {"a": 1}
    assert decode(memoryview(b"\x81\xa1a\x01")) == {"a": 1}


@pytest.mark.parametrize("data", ["c0", None, 5, ["c0"]])
def test_decode_wrong_type(data: object) -> None:
    with pytest.raises(EncodingError, match="expected bytes"):
        decode(data)  # type: ignore[arg-type]


def test_messages_name_what_was_wrong() -> None:
    with pytest.raises(EncodingError, match=r"map keys out of order at depth 2: 'b' before 'a'"):
        decode(bytes.fromhex("91" "82a16201a16102"))
    with pytest.raises(EncodingError, match=r"non-canonical encoding at byte 1: expected 0x05, got 0xcc"):
        decode(bytes.fromhex("91cc05"))
    with pytest.raises(EncodingError, match=r"2 trailing bytes"):
        decode(bytes.fromhex("c0c0c0"))


def test_messages_are_bounded() -> None:
    key = "k" * 10000
    data = b"\x82" + encode(key) + b"\x01" + encode(key) + b"\x02"
    with pytest.raises(EncodingError) as info:
        decode(data)
    assert "duplicate" in str(info.value)
    assert len(str(info.value)) < 200


# --- encode -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (1.5, "float"),
        (float("nan"), "float"),
        ([0, 1.0], "float at depth 1"),
        ({"a": {1, 2}}, "set at depth 1"),
        (bytearray(b"x"), "bytearray"),
        (object(), "object"),
        ({1: "a"}, "map key at depth 1: expected str, got int"),
        ({b"a": 1}, "expected str, got bytes"),
        (2**64, "expected -2\\*\\*63 to 2\\*\\*64-1"),
        (-(2**63) - 1, "expected -2\\*\\*63 to 2\\*\\*64-1"),
        ("\ud800", "lone surrogate"),
        ({"\udc00": 1}, "lone surrogate"),
    ],
)
def test_encode_rejects(value: object, match: str) -> None:
    with pytest.raises(EncodingError, match=match):
        encode(value)


def test_encode_depth() -> None:
    value: Any = None
    for _ in range(MAX_DEPTH):
        value = [value]
    assert encode(value) == _nested(MAX_DEPTH)
    with pytest.raises(EncodingError, match="nesting deeper than 32"):
        encode([value])


def test_encode_cycle() -> None:
    cycle: list[Any] = []
    cycle.append(cycle)
    with pytest.raises(EncodingError, match="nesting"):
        encode(cycle)


class Colour(enum.IntEnum):
    RED = 300


class Kind(enum.StrEnum):
    PLEDGE = "pledge"


def test_encode_subclasses_as_base_types() -> None:
    assert encode(Colour.RED) == encode(300) == bytes.fromhex("cd012c")
    assert encode({Kind.PLEDGE: Kind.PLEDGE}) == encode({"pledge": "pledge"})
    assert encode(True) == b"\xc3"  # bool is an int subclass but keeps its own form
    assert encode((1, (2,))) == encode([1, [2]])


# --- properties -----------------------------------------------------------------

INTEGERS = st.integers(-(2**63), 2**64 - 1) | st.sampled_from(
    [0, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1,
     -1, -32, -33, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, -(2**63)]
)
SCALARS = st.none() | st.booleans() | INTEGERS | st.text(max_size=40) | st.binary(max_size=40)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=8), children, max_size=6),
    max_leaves=25,
)


@FAST
@given(VALUES)
def test_round_trip(value: object) -> None:
    data = encode(value)
    assert decode(data) == value
    # What msgpack itself reads from our bytes is the same value.
    assert msgpack.unpackb(data, raw=False, strict_map_key=False) == value


@FAST
@given(st.dictionaries(st.text(max_size=4), st.integers(0, 3), max_size=8), st.randoms())
def test_key_order_does_not_matter(mapping: dict[str, int], rnd: Any) -> None:
    items = list(mapping.items())
    rnd.shuffle(items)
    assert encode(dict(items)) == encode(mapping)
    keys = list(decode(encode(mapping)))
    assert keys == sorted(keys, key=lambda key: key.encode())


def _check_accepted_is_canonical(data: bytes) -> None:
    """decode raises EncodingError, or returns a value that re-encodes to ``data``."""
    try:
        value = decode(data)
    except EncodingError:
        return
    assert encode(value) == data
    assert msgpack.unpackb(data, raw=False, strict_map_key=False) == value


@FAST
@given(st.binary(max_size=64))
def test_random_bytes(data: bytes) -> None:
    _check_accepted_is_canonical(data)


MUTATIONS = st.lists(
    st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "append"]),
              st.integers(0, 10**6), st.integers(0, 255)),
    min_size=1,
    max_size=4,
)


def _mutate(data: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    out = bytearray(data)
    for op, where, byte in mutations:
        at = where % (len(out) + 1)
        if op == "flip" and out:
            out[at % len(out)] ^= 1 << (byte % 8)
        elif op == "set" and out:
            out[at % len(out)] = byte
        elif op == "insert":
            out.insert(at, byte)
        elif op == "delete" and out:
            del out[at % len(out)]
        elif op == "truncate":
            del out[at:]
        elif op == "append":
            out.append(byte)
    return bytes(out)


@FAST
@given(VALUES, MUTATIONS)
def test_mutated_encodings(value: object, mutations: list[tuple[str, int, int]]) -> None:
    _check_accepted_is_canonical(_mutate(encode(value), mutations))


def _valid_samples() -> list[bytes]:
    samples = [bytes.fromhex(case.values[0]["hex"]) for case in _cases("canonical-*.json")]
    samples.append(encode({"z": [1, -200, b"\x00" * 300, "\u20ac" * 40], "a": {"b": {"c": None}}, "n": 2**63}))
    return samples


def test_every_truncation_is_rejected() -> None:
    # MessagePack is prefix-free: every proper prefix of a value ends inside it.
    for data in _valid_samples():
        for end in range(len(data)):
            with pytest.raises(EncodingError, match="truncated"):
                decode(data[:end])


def test_every_padding_is_rejected() -> None:
    for data in _valid_samples():
        for pad in (b"\x00", b"\xc0", data):
            with pytest.raises(EncodingError, match="trailing"):
                decode(data + pad)


def test_only_protocol_errors_on_single_byte_changes() -> None:
    data = _valid_samples()[-1]
    for at in range(len(data)):
        for byte in (0x00, 0x7F, 0x80, 0xC1, 0xCA, 0xD4, 0xDC, 0xDF, 0xFF, data[at] ^ 1):
            changed = data[:at] + bytes([byte]) + data[at + 1 :]
            try:
                value = decode(changed)
            except ProtocolError:
                continue
            assert encode(value) == changed
