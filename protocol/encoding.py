"""Canonical MessagePack: exactly one byte string for every value.

Entries are hashed into the log, so two nodes must turn the same value into the
same bytes, and a decoder must refuse every other spelling of it (otherwise one
entry could have many ids). The canonical form is what
``msgpack.packb(value, use_bin_type=True)`` writes once every map's keys are
in order:

- values are nil, booleans, integers from -2**63 to 2**64-1, ``str`` (valid
  UTF-8), ``bin``, arrays and maps; no floats, no extension types;
- map keys are strings, sorted by their UTF-8 bytes, without duplicates;
- every integer, string, binary, array and map uses its shortest form, and
  non-negative integers use the unsigned forms (300 is ``cd 01 2c``, never the
  equally long ``d1 01 2c``);
- at most :data:`MAX_DEPTH` nested arrays and maps.

For example ``{"b": [True, b"\\x00"], "a": 1}`` encodes as::

    82          map of 2
    a1 61       "a"          (keys in UTF-8 byte order)
    01          1
    a1 62       "b"
    92          array of 2
    c3          true
    c4 01 00    bin of 1 byte: 00

:func:`decode` checks the rules above with the C msgpack unpacker under strict
limits, then re-encodes the value and requires the very same bytes.
"""

from __future__ import annotations

from typing import Any

import msgpack

from protocol.errors import EncodingError, preview

__all__ = ["MAX_DEPTH", "MAX_SIZE", "decode", "encode"]

MAX_DEPTH = 32
"""Most arrays and maps nested in one another (a scalar alone has depth 0)."""

MAX_SIZE = 65535
"""Default largest input :func:`decode` reads: an entry fits a tile bundle's uint16 length."""

_MIN_INT = -(2**63)
_MAX_INT = 2**64 - 1
_SCALARS = (type(None), bool, int, str, bytes)
_ALLOWED = "None, bool, int, str, bytes, list, tuple or dict"


def encode(value: object) -> bytes:
    """The canonical MessagePack encoding of ``value``.

    Tuples encode as arrays (and so decode as lists). Subclasses of int, str,
    bytes, list and dict encode as their base type. Raises
    :class:`EncodingError` for floats, other types, non-string map keys,
    integers out of range, strings that are not valid Unicode, and nesting
    deeper than :data:`MAX_DEPTH`.
    """
    return _encode(value, MAX_DEPTH)


def decode(data: bytes, *, max_size: int = MAX_SIZE, max_depth: int = MAX_DEPTH) -> Any:
    """The value of a canonical MessagePack byte string, or :class:`EncodingError`.

    Returns dict, list, str, bytes, int, bool or None. Every input other than
    the canonical encoding of one value is rejected: more than ``max_size``
    bytes, truncated input, trailing bytes, floats, extension types, non-string
    or unsorted or duplicate map keys, integers or lengths not in their shortest
    form, invalid UTF-8, nesting deeper than ``max_depth``.

    ``max_depth`` may lower the nesting limit, never raise it above
    :data:`MAX_DEPTH` (a deeper value could not be encoded again): a larger
    value is a programming error and raises ValueError.
    """
    if not 0 <= max_depth <= MAX_DEPTH:
        raise ValueError(f"max_depth must be from 0 to {MAX_DEPTH}, got {max_depth!r}")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EncodingError(f"msgpack: expected bytes, got {type(data).__name__}")
    data = bytes(data)
    size = len(data)
    if size > max_size:
        raise EncodingError(f"msgpack: expected at most {max_size} bytes, got {size}")
    if size == 0:
        raise EncodingError("msgpack: truncated input: expected a value, got 0 bytes")
    # Fast path for the common case, valid canonical input: the C unpacker
    # builds plain dicts, one cheap walk checks what re-encoding cannot see
    # (key types and order, scalar types, depth), and the C packer re-encodes.
    # Anything unusual, and every rejection, takes the strict path below,
    # which explains the problem precisely.
    try:
        fast = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_refuse_ext)
    except Exception:  # noqa: BLE001 - the strict path below explains it
        pass
    else:
        if _is_plain(fast, max_depth) and msgpack.packb(fast, use_bin_type=True) == data:
            return fast
    raw = _unpack_one(data, max_depth)
    value = _check_tree(raw, max_depth)
    again = _encode(value, max_depth)
    if again != data:
        # Everything but the spelling of integers and lengths was checked
        # above, so the first differing byte is a non-shortest header.
        # (msgpack is prefix-free, so one cannot be a prefix of the other.)
        at = next((i for i, (a, b) in enumerate(zip(data, again)) if a != b), 0)
        raise EncodingError(
            f"msgpack: non-canonical encoding at byte {at}: "
            f"expected 0x{again[at]:02x}, got 0x{data[at]:02x} "
            "(integers and lengths must use their shortest form)"
        )
    return value


# --- encoding ---------------------------------------------------------------


def _encode(value: object, max_depth: int) -> bytes:
    plain = _canonical(value, 0, max_depth)
    try:
        return msgpack.packb(plain, use_bin_type=True)
    except UnicodeEncodeError as exc:
        raise EncodingError("cannot encode str: not valid unicode (lone surrogate)") from exc


def _canonical(value: object, depth: int, max_depth: int) -> object:
    """``value`` rebuilt from exact built-in types, maps in key order.

    msgpack.packb writes dicts in insertion order and already picks the
    shortest form of every integer and length; this puts everything else in
    canonical shape and rejects what has no canonical encoding. Recursion is
    bounded by ``max_depth`` (at most :data:`MAX_DEPTH`).
    """
    if value is None or value is True or value is False:
        return value
    if isinstance(value, int):
        if not _MIN_INT <= value <= _MAX_INT:
            raise EncodingError(
                f"cannot encode int at depth {depth}: expected -2**63 to 2**64-1, got {preview(value)}"
            )
        return int.__index__(value)
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, bytes):
        return value if type(value) is bytes else bytes(value)
    if isinstance(value, list | tuple):
        _check_depth_for_encode(depth, max_depth)
        return [_canonical(item, depth + 1, max_depth) for item in value]
    if isinstance(value, dict):
        _check_depth_for_encode(depth, max_depth)
        pairs = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise EncodingError(
                    f"cannot encode map key at depth {depth + 1}: expected str, "
                    f"got {type(key).__name__} {preview(key)}"
                )
            pairs.append((key if type(key) is str else str.__str__(key), item))
        # Code point order is UTF-8 byte order for every encodable string
        # (lone surrogates are refused by packb), so sort the str directly.
        pairs.sort(key=lambda pair: pair[0])
        out: dict[str, object] = {}
        for key, item in pairs:
            if key in out:
                raise EncodingError(f"cannot encode map at depth {depth}: duplicate key {preview(key)}")
            out[key] = _canonical(item, depth + 1, max_depth)
        return out
    if isinstance(value, float):
        raise EncodingError(
            f"cannot encode float at depth {depth}: floats are not allowed, use integers"
        )
    raise EncodingError(
        f"cannot encode {type(value).__name__} at depth {depth}: expected {_ALLOWED}"
    )


def _check_depth_for_encode(depth: int, max_depth: int) -> None:
    if depth >= max_depth:
        raise EncodingError(f"cannot encode: nesting deeper than {max_depth} levels")


# --- decoding ---------------------------------------------------------------


class _Pairs:
    """A map as msgpack read it: its (key, value) pairs in wire order.

    Keeping the pairs (rather than a dict) lets :func:`_check_tree` see
    duplicate and unsorted keys and report the depth where they occur.
    """

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[object, object]]) -> None:
        self.pairs = pairs


def _refuse_ext(code: int, data: bytes) -> object:
    raise EncodingError(f"msgpack: extension types are not allowed, got type {code}")


def _unpack_one(data: bytes, max_depth: int) -> object:
    """One msgpack value that spans all of ``data``, maps left as :class:`_Pairs`.

    Every length is bounded by the input size so that a forged header cannot
    make the unpacker allocate more than the input could fill; the C unpacker's
    own stack (1024 levels) bounds nesting, our depth check comes after.
    """
    size = len(data)
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        use_list=True,
        object_pairs_hook=_Pairs,
        ext_hook=_refuse_ext,
        max_buffer_size=size,
        max_str_len=size,
        max_bin_len=size,
        max_array_len=size,
        max_map_len=size // 2,
        max_ext_len=size,
    )
    unpacker.feed(data)
    try:
        value = unpacker.unpack()
    except EncodingError:
        raise
    except msgpack.OutOfData as exc:
        raise EncodingError(f"msgpack: truncated input: {size} bytes end inside a value") from exc
    except msgpack.StackError as exc:
        raise EncodingError(f"msgpack: nesting deeper than {max_depth} levels") from exc
    except msgpack.FormatError as exc:
        raise EncodingError("msgpack: malformed input: reserved type byte 0xc1") from exc
    except UnicodeDecodeError as exc:
        raise EncodingError(f"msgpack: a string is not valid utf-8 ({exc.reason})") from exc
    except ValueError as exc:
        text = str(exc)
        if "exceeds max_" in text:
            # A length header larger than the whole input.
            raise EncodingError(
                f"msgpack: truncated input: a length exceeds the {size} bytes given"
            ) from exc
        if "map key" in text:
            raise EncodingError(f"msgpack: map keys must be strings ({text[:60]})") from exc
        raise EncodingError(f"msgpack: malformed input ({text[:60]})") from exc
    except Exception as exc:  # noqa: BLE001 - the C unpacker is an edge; wrap whatever it raises
        raise EncodingError(f"msgpack: malformed input ({type(exc).__name__})") from exc
    end = unpacker.tell()
    if end != size:
        extra = size - end
        raise EncodingError(
            f"msgpack: expected one value, got {extra} trailing byte{'s' if extra > 1 else ''} "
            f"after the value that ends at byte {end}"
        )
    return value


def _check_tree(root: object, max_depth: int) -> Any:
    """``root`` with every :class:`_Pairs` turned into a dict, checking as it goes.

    Iterative, so a deep input costs a list, not the Python stack. Checks the
    rules re-encoding cannot see (they would be silently repaired): key type,
    key order and duplicates, floats and other non-canonical types, depth.
    """
    holder = [root]
    # (container, slot in it, number of containers around the item)
    stack: list[tuple[Any, Any, int]] = [(holder, 0, 0)]
    while stack:
        parent, slot, depth = stack.pop()
        item = parent[slot]
        if type(item) is list:
            _check_depth_for_decode(depth, max_depth)
            children: Any = enumerate(item)
        elif type(item) is _Pairs:
            _check_depth_for_decode(depth, max_depth)
            item = parent[slot] = _map_from_pairs(item.pairs, depth + 1)
            children = item.items()
        else:
            _check_scalar(item, depth)
            continue
        for key, child in children:
            kind = type(child)
            if kind is list or kind is _Pairs:
                stack.append((item, key, depth + 1))
            elif kind not in _SCALARS:
                _check_scalar(child, depth + 1)
    return holder[0]


def _map_from_pairs(pairs: list[tuple[object, object]], depth: int) -> dict[str, object]:
    out: dict[str, object] = {}
    previous: str | None = None
    for key, value in pairs:
        if type(key) is not str:
            raise EncodingError(
                f"msgpack: map key at depth {depth}: expected a string, "
                f"got {type(key).__name__} {preview(key)}"
            )
        # Decoded strings are valid UTF-8, so code point order is UTF-8 byte order.
        if previous is not None and key <= previous:
            if key == previous:
                raise EncodingError(f"msgpack: duplicate map key {preview(key)} at depth {depth}")
            raise EncodingError(
                f"msgpack: map keys out of order at depth {depth}: "
                f"{preview(previous)} before {preview(key)}"
            )
        out[key] = value
        previous = key
    return out


_PLAIN_SCALARS = frozenset(_SCALARS)
_STR_ONLY = frozenset({str})


def _is_plain(root: object, max_depth: int) -> bool:
    """Whether a value from msgpack.unpackb re-encodes to its input only if canonical.

    True when every map key is an exact str, keys are in strictly increasing
    order (unpackb keeps wire order; a duplicate key would shrink the dict and
    so fail the re-encoding), every scalar is one of _SCALARS (no float, no
    Timestamp or ExtType), and nesting is within ``max_depth``.
    """
    if type(root) is dict and max_depth > 0:
        # A flat map (every entry, most bodies) in C-level passes.
        keys = list(root)
        if (
            _STR_ONLY.issuperset(map(type, keys))
            and _PLAIN_SCALARS.issuperset(map(type, root.values()))
        ):
            return keys == sorted(keys)
    stack = [(root, 0)]
    while stack:
        item, depth = stack.pop()
        kind = type(item)
        if kind is dict:
            if depth >= max_depth:
                return False
            keys = list(item)
            if not _STR_ONLY.issuperset(map(type, keys)) or keys != sorted(keys):
                return False
            children: Any = item.values()
        elif kind is list:
            if depth >= max_depth:
                return False
            children = item
        else:
            return kind in _PLAIN_SCALARS
        for child in children:
            kind = type(child)
            if kind is dict or kind is list:
                stack.append((child, depth + 1))
            elif kind not in _PLAIN_SCALARS:
                return False
    return True


def _check_depth_for_decode(depth: int, max_depth: int) -> None:
    if depth >= max_depth:
        raise EncodingError(f"msgpack: nesting deeper than {max_depth} levels")


def _check_scalar(value: object, depth: int) -> None:
    if type(value) in _SCALARS:
        return
    if type(value) is float:
        raise EncodingError(f"msgpack: float at depth {depth}: floats are not allowed")
    if isinstance(value, msgpack.Timestamp):
        raise EncodingError(f"msgpack: extension types are not allowed, got a timestamp at depth {depth}")
    raise EncodingError(f"msgpack: unexpected {type(value).__name__} at depth {depth}")
