"""Log entries and their salted bodies.

An entry is what a city's log commits to: who (``origin``, the log's name, on
which ``network``), where in the log (``seq``, its leaf index), when (author
time ``time_ms``), what kind of event (``type`` at ``schema`` version), and the
SHA-256 hash and size of the *salted body*. The body itself lives apart from the
log so that it can be erased later while the log, and every proof built on it,
stays intact; the random 16-byte salt keeps a short erased body from being
recovered by hashing guesses.

Wire form of an entry: the canonical MessagePack (see :mod:`protocol.encoding`)
of a map with exactly these keys::

    {"body_hash": bin 32, "body_size": int, "network": str, "origin": str,
     "schema": int, "seq": int, "time": int, "type": str, "v": 1}

Salted body: ``salt (16 bytes) || canonical MessagePack of a map``. For example
the body ``{"n": 1}`` with salt ``00 01 .. 0f`` is the 20 bytes
``000102030405060708090a0b0c0d0e0f 81 a1 6e 01``.

An entry's id is its RFC 9162 leaf hash, ``SHA-256(0x00 || entry bytes)``; a
log's id (its URL segment) is the hex SHA-256 of its origin.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import msgspec

from protocol import encoding, merkle
from protocol.errors import EntryError, preview

__all__ = [
    "FORMAT_VERSION",
    "MAX_BODY_SIZE",
    "MAX_ENTRY_SIZE",
    "SALT_SIZE",
    "Entry",
    "body_hash",
    "check_body",
    "decode_body",
    "decode_entry",
    "encode_body",
    "encode_entry",
    "entry_id",
    "log_id",
    "make_entry",
]

FORMAT_VERSION = 1
SALT_SIZE = 16
MAX_ENTRY_SIZE = 65535  # a tile bundle frames each entry with a uint16 length
MAX_BODY_SIZE = 65535  # salted; bodies travel in bundles with the same framing

_HASH_SIZE = 32
_MAX_U63 = 2**63 - 1
_NETWORK = re.compile(r"[a-z0-9][a-z0-9.-]{0,63}")
# The origin is also the signing key's name in signed notes (C2SP signed-note
# forbids spaces and "+" there); we keep it to printable ASCII.
_ORIGIN = re.compile(r"[\x21-\x2a\x2c-\x7e]{1,255}")
_TYPE = re.compile(r"[a-z][a-z0-9-]{0,31}")

# Entry attribute -> wire key, in the order of the wire form.
_WIRE_KEYS = {
    "body_hash": "body_hash",
    "body_size": "body_size",
    "network": "network",
    "origin": "origin",
    "schema": "schema",
    "seq": "seq",
    "time_ms": "time",
    "type": "type",
    "version": "v",
}
_FIELD_OF_KEY = {key: field for field, key in _WIRE_KEYS.items()}
_WIRE_KEY_SET = frozenset(_FIELD_OF_KEY)



class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One log entry; constructing it checks every field (EntryError).

    A msgspec Struct rather than a dataclass: it behaves the same (frozen,
    keyword-only, typed, compared and hashed by value), and msgspec decodes
    wire bytes straight into it in one C pass, a node's commonest operation
    (see decode_entry). The renamed fields carry their wire keys.
    """

    network: str
    origin: str
    seq: int
    time_ms: int = msgspec.field(name="time")
    type: str
    schema: int
    body_hash: bytes
    body_size: int
    version: int = msgspec.field(default=FORMAT_VERSION, name="v")

    def __post_init__(self) -> None:
        # Fast path: exact built-in types in range (every decoded entry). The
        # checks below accept the same values, subclasses too, and explain
        # what is wrong.
        if (
            type(self.seq) is int
            and 0 <= self.seq <= _MAX_U63
            and type(self.time_ms) is int
            and 0 <= self.time_ms <= _MAX_U63
            and type(self.schema) is int
            and 1 <= self.schema <= 65535
            and type(self.body_size) is int
            and SALT_SIZE < self.body_size <= MAX_BODY_SIZE
            and type(self.body_hash) is bytes
            and len(self.body_hash) == _HASH_SIZE
            and type(self.version) is int
            and self.version == FORMAT_VERSION
            and type(self.network) is str
            and type(self.origin) is str
            and type(self.type) is str
            and _NETWORK.fullmatch(self.network) is not None
            and _ORIGIN.fullmatch(self.origin) is not None
            and _TYPE.fullmatch(self.type) is not None
        ):
            return
        _check_text("network", self.network, _NETWORK, "[a-z0-9][a-z0-9.-]{0,63}")
        _check_text(
            "origin", self.origin, _ORIGIN, "1 to 255 printable ascii characters without space or '+'"
        )
        _check_int("seq", self.seq, 0, _MAX_U63, "2**63-1")
        _check_int("time_ms", self.time_ms, 0, _MAX_U63, "2**63-1")
        _check_text("type", self.type, _TYPE, "[a-z][a-z0-9-]{0,31}")
        _check_int("schema", self.schema, 1, 65535)
        if not isinstance(self.body_hash, bytes) or len(self.body_hash) != _HASH_SIZE:
            raise EntryError(
                f"entry field 'body_hash': expected {_HASH_SIZE} bytes, got {_describe(self.body_hash)}"
            )
        _check_int("body_size", self.body_size, SALT_SIZE + 1, MAX_BODY_SIZE)
        if type(self.version) is not int or self.version != FORMAT_VERSION:
            raise EntryError(
                f"entry field 'version': expected {FORMAT_VERSION}, got {preview(self.version)}"
            )


# Decodes wire bytes straight into an Entry (whose __post_init__ checks the values).
_decode_wire = msgspec.msgpack.Decoder(Entry).decode
# order="sorted": map keys (the wire names) in code point order, i.e. UTF-8 byte order, the canonical order.
_encode_sorted = msgspec.msgpack.Encoder(order="sorted").encode


def _describe(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return f"{len(value)} bytes"
    return f"{type(value).__name__} {preview(value)}"


def _check_int(field: str, value: object, low: int, high: int, high_text: str | None = None) -> None:
    # bool is an int in Python but never a valid count or time here.
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise EntryError(
            f"entry field {field!r}: expected an integer from {low} to {high_text or high}, "
            f"got {preview(value)}"
        )


def _check_text(field: str, value: object, pattern: re.Pattern[str], allowed: str) -> None:
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise EntryError(f"entry field {field!r}: expected {allowed}, got {preview(value)}")


def encode_entry(entry: Entry) -> bytes:
    """The canonical wire bytes of ``entry`` (what the log's leaf commits to)."""
    data = encoding.encode({key: getattr(entry, field) for field, key in _WIRE_KEYS.items()})
    if len(data) > MAX_ENTRY_SIZE:
        raise EntryError(f"entry: expected at most {MAX_ENTRY_SIZE} bytes, got {len(data)}")
    return data


def decode_entry(data: bytes) -> Entry:
    """The entry in ``data``: EncodingError if not canonical, EntryError if not an entry."""
    if type(data) is bytes and len(data) <= MAX_ENTRY_SIZE:
        # Fast path (every entry a node syncs): a typed C decode, then the
        # canonical check by encoding again with sorted keys and requiring the
        # same bytes (shortest forms, key order, no duplicate, unknown or
        # missing key, nothing trailing). Entry checks the values. Anything
        # else takes the path below, which explains what is wrong.
        try:
            entry = _decode_wire(data)
        except Exception:  # noqa: BLE001 - msgspec raises several kinds; the path below explains
            entry = None
        if entry is not None and _encode_sorted(entry) == data:
            return entry
    value = encoding.decode(data, max_size=MAX_ENTRY_SIZE)
    if (
        type(value) is dict
        and value.keys() == _WIRE_KEY_SET
        and type(value["v"]) is int
        and value["v"] == FORMAT_VERSION
    ):
        # Fast path: exactly the wire keys at the current version; Entry checks
        # each field. Anything else takes the checks below, which explain.
        return Entry(
            network=value["network"],
            origin=value["origin"],
            seq=value["seq"],
            time_ms=value["time"],
            type=value["type"],
            schema=value["schema"],
            body_hash=value["body_hash"],
            body_size=value["body_size"],
        )
    if not isinstance(value, dict):
        raise EntryError(f"entry: expected a map, got {type(value).__name__}")
    # The version decides which keys are expected, so it is checked first.
    version = value.get("v")
    if type(version) is not int or version != FORMAT_VERSION:
        raise EntryError(
            f"entry field 'v': expected format version {FORMAT_VERSION}, got {preview(version)}"
        )
    for key in value:
        if key not in _FIELD_OF_KEY:
            raise EntryError(f"entry: unknown field {preview(key)}")
    for key in _FIELD_OF_KEY:
        if key not in value:
            raise EntryError(f"entry: missing field {key!r}")
    return Entry(**{_FIELD_OF_KEY[key]: item for key, item in value.items()})


def encode_body(body: dict[str, Any], salt: bytes) -> bytes:
    """``salt || encode(body)``: the bytes whose hash and size an entry records."""
    if not isinstance(body, dict):
        raise EntryError(f"body: expected a map, got {type(body).__name__}")
    if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        raise EntryError(f"body salt: expected {SALT_SIZE} bytes, got {_describe(salt)}")
    salted = salt + encoding.encode(body)
    if len(salted) > MAX_BODY_SIZE:
        raise EntryError(f"body: expected at most {MAX_BODY_SIZE} bytes salted, got {len(salted)}")
    return salted


def decode_body(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """The (salt, body) of a salted body: EncodingError or EntryError if malformed."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EntryError(f"body: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if not SALT_SIZE < len(data) <= MAX_BODY_SIZE:
        raise EntryError(
            f"body: expected {SALT_SIZE + 1} to {MAX_BODY_SIZE} bytes salted, got {len(data)}"
        )
    body = encoding.decode(data[SALT_SIZE:], max_size=MAX_BODY_SIZE - SALT_SIZE)
    if not isinstance(body, dict):
        raise EntryError(f"body: expected a map, got {type(body).__name__}")
    return data[:SALT_SIZE], body


def body_hash(salted: bytes) -> bytes:
    """SHA-256 of the salted body, as recorded in the entry's ``body_hash``."""
    return hashlib.sha256(salted).digest()


def check_body(entry: Entry, salted: bytes) -> dict[str, Any]:
    """The body of ``salted`` if it is the one ``entry`` commits to, else EntryError."""
    check_body_hash(entry, salted)
    return decode_body(salted)[1]


def check_body_hash(entry: Entry, salted: bytes) -> None:
    """EntryError unless ``salted`` is the body ``entry`` commits to (its size and SHA-256).

    Enough to store or relay a body; decoding it (``check_body``) is for whoever reads it.
    """
    if not isinstance(salted, bytes):
        raise EntryError(f"body: expected bytes, got {type(salted).__name__}")
    if len(salted) != entry.body_size:
        raise EntryError(f"body: expected {entry.body_size} bytes as the entry says, got {len(salted)}")
    got = body_hash(salted)
    if got != entry.body_hash:
        raise EntryError(
            f"body: expected sha-256 {entry.body_hash.hex()} as the entry says, got {got.hex()}"
        )


def entry_id(entry_bytes: bytes) -> bytes:
    """The entry's id: its leaf hash in the log's Merkle tree, so a proof names it directly."""
    # RFC 9162 2.1.1: SHA-256(0x00 || entry)
    return merkle.leaf_hash(entry_bytes)


def log_id(origin: str) -> str:
    """The log's URL segment: lowercase hex SHA-256 of its origin, as C2SP tlog-mirror derives it.

    Derived from the log's name, not its address, so it survives a move. Any
    origin is hashed as it is (a checkpoint's origin may be wider than what
    entries allow); only text that is not valid Unicode is refused.
    """
    try:
        data = origin.encode("utf-8")
    except (AttributeError, UnicodeEncodeError) as exc:
        raise EntryError(f"origin: expected text, got {preview(origin)}") from exc
    return hashlib.sha256(data).hexdigest()


def make_entry(
    *,
    network: str,
    origin: str,
    seq: int,
    time_ms: int,
    type: str,  # noqa: A002 - the entry field's name
    schema: int,
    body: dict[str, Any],
    salt: bytes,
) -> tuple[Entry, bytes, bytes]:
    """A new entry for ``body``: (entry, entry bytes, salted body).

    The caller supplies ``salt`` (16 random bytes) and ``time_ms``: this
    library reads neither a clock nor a random source.
    """
    salted = encode_body(body, salt)
    entry = Entry(
        network=network,
        origin=origin,
        seq=seq,
        time_ms=time_ms,
        type=type,
        schema=schema,
        body_hash=body_hash(salted),
        body_size=len(salted),
    )
    return entry, encode_entry(entry), salted
