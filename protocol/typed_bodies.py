"""One-pass decoding of bodies whose schema is simple enough to compile to msgspec types.

A node checks every body it indexes: canonical MessagePack, then its type's
JSON Schema. Done as two steps (``encoding.decode`` builds the value and
re-encodes it; the fastjsonschema validator walks it again) that costs about
eight microseconds a body, more than storing it. Most of our schemas are flat
objects of strings, integers and string arrays with lengths, bounds, enums and
patterns, which a typed msgspec decoder checks while it decodes. So for each
such schema this module builds a decoder of a ``TypedDict`` with those
constraints, and a body then costs about one microsecond:

1. decode into a plain dict with the typed decoder (types, required fields,
   enums, lengths, integer bounds);
2. encode that dict again with sorted keys and require the very same bytes:
   this proves the input was canonical (shortest forms, sorted keys, no
   duplicates, no trailing bytes) and held no field the type dropped;
3. the checks msgspec has no cheap form for, in Python: patterns (with a
   shortcut for the "no control characters" class, see ``_printable_implies``),
   the ``date`` format, ``uniqueItems``.

The result is only ever *accepted* here. Whatever fails, or whatever this
module cannot be sure of, is handed to the reference path
(``SchemaRegistry.validate``), which decides and explains. So the fast path
may be stricter than the schema, never looser; ``tests/protocol`` checks that
on generated bodies. A schema using anything outside the supported subset (a
``format`` other than ``date``, nested objects, ``oneOf``, ...) gets no fast
decoder at all, e.g. ``city`` with its ``uri`` and ``email`` formats::

    fast = compile_fast("offer v1 schema", document)   # None if not supported
    body = fast.decode(salted[16:])                     # dict, or None: ask the reference path
"""

from __future__ import annotations

import datetime
import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, TypedDict

import msgspec

__all__ = ["FastBody", "compile_fast", "is_date"]

# Keywords that only document: they never change what is valid.
_ANNOTATIONS = frozenset({"description", "title", "examples", "$comment", "deprecated", "$schema", "$id"})
_STRING_KEYWORDS = frozenset({"type", "enum", "minLength", "maxLength", "pattern", "format"})
_INTEGER_KEYWORDS = frozenset({"type", "minimum", "maximum"})
_ARRAY_KEYWORDS = frozenset({"type", "items", "minItems", "maxItems", "uniqueItems"})
_OBJECT_KEYWORDS = frozenset({"type", "additionalProperties", "required", "properties"})
_INT64_LOW, _INT64_HIGH = -(2**63), 2**63 - 1

# A pattern of the form ^[^<class>]*$ whose class is single characters and
# ranges written as \uXXXX: "none of these characters".
_NEGATED_CLASS = re.compile(r"\^\[\^((?:\\u[0-9a-fA-F]{4}(?:-\\u[0-9a-fA-F]{4})?)+)\]\*\$")
_CLASS_ITEM = re.compile(r"\\u([0-9a-fA-F]{4})(?:-\\u([0-9a-fA-F]{4}))?")
# RFC 3339 full-date shape in ASCII digits only (Python's \d also matches other
# scripts' digits); whether the day exists is left to the datetime module.
_DATE_SHAPE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

_Check = Callable[[Any], bool]


class _Unsupported(Exception):
    """The schema uses something this module does not compile: no fast path for it."""


@dataclass(frozen=True, slots=True)
class FastBody:
    """A compiled one-pass decoder for one schema (see the module docstring)."""

    _decoder: msgspec.msgpack.Decoder
    _encode: Callable[[Any], bytes]
    _checks: tuple[tuple[str, _Check], ...]
    _whole: Callable[[dict[str, Any]], bool] | None  # rules between fields, from the caller

    def decode(self, data: bytes, start: int = 0) -> dict[str, Any] | None:
        """The body in ``data[start:]`` (canonical bytes of a valid body), or None: undecided, ask the reference path.

        ``start`` skips a prefix (the salt) without copying the rest.
        """
        try:
            body = self._decoder.decode(memoryview(data)[start:])
        except Exception:  # noqa: BLE001 - msgspec raises several kinds (UnicodeDecodeError too)
            return None
        again = self._encode(body)
        # endswith is one memcmp: no slice of the input is copied.
        if len(again) != len(data) - start or not data.endswith(again):
            return None
        for name, check in self._checks:
            value = body.get(name)
            if value is not None and not check(value):
                return None
        if self._whole is not None and not self._whole(body):
            return None
        return body


def compile_fast(
    label: str, document: Mapping[str, Any], whole: Callable[[dict[str, Any]], bool] | None = None
) -> FastBody | None:
    """A fast decoder for ``document``, or None when it uses anything this module does not support.

    ``whole``, if given, must also hold for a body to be accepted: the rules
    between fields that JSON Schema cannot state (protocol.schema.DATE_ORDER).
    """
    try:
        return _compile(label, document, whole)
    except (_Unsupported, ValueError, TypeError, OverflowError):
        # ValueError etc.: msgspec refused a type the schema implies (a length
        # bound beyond what it can hold, ...). The reference path copes with it.
        return None


def _compile(label: str, document: Mapping[str, Any], whole: Callable[[dict[str, Any]], bool] | None) -> FastBody:
    _only(document, _OBJECT_KEYWORDS)
    properties = document.get("properties")
    required = document.get("required", [])
    if (
        document.get("type") != "object"
        or document.get("additionalProperties") is not False
        or not isinstance(properties, Mapping)
        or not isinstance(required, list)
        or not all(isinstance(name, str) and name in properties for name in required)
    ):
        raise _Unsupported
    fields: dict[str, Any] = {}
    checks: list[tuple[str, _Check]] = []
    for name, schema in properties.items():
        if not isinstance(name, str) or not isinstance(schema, Mapping):
            raise _Unsupported
        annotation, check = _field(schema)
        fields[name] = annotation if name in required else NotRequired[annotation]
        if check is not None:
            checks.append((name, check))
    typed = TypedDict(f"_{re.sub(r'[^A-Za-z0-9]', '_', label)}", fields)  # type: ignore[misc]
    # order="sorted": maps come out with keys in code point order, which is
    # UTF-8 byte order, the canonical order (protocol.encoding).
    encoder = msgspec.msgpack.Encoder(order="sorted")
    return FastBody(msgspec.msgpack.Decoder(typed), encoder.encode, tuple(checks), whole)


def _only(schema: Mapping[str, Any], allowed: frozenset[str]) -> None:
    if not set(schema) <= allowed | _ANNOTATIONS:
        raise _Unsupported


def _field(schema: Mapping[str, Any]) -> tuple[Any, _Check | None]:
    """The msgspec annotation for one property, and the Python check that completes it (or None)."""
    kind = schema.get("type")
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        _only(schema, _INTEGER_KEYWORDS)
        bounds = {}
        for keyword, name in (("minimum", "ge"), ("maximum", "le")):
            if keyword in schema:
                bound = schema[keyword]
                # msgspec takes int64 bounds; a MessagePack integer is at most uint64.
                if type(bound) is not int or not _INT64_LOW <= bound <= _INT64_HIGH:
                    raise _Unsupported
                bounds[name] = bound
        return (Annotated[int, msgspec.Meta(**bounds)] if bounds else int), None
    if kind == "array":
        _only(schema, _ARRAY_KEYWORDS)
        items = schema.get("items")
        if not isinstance(items, Mapping) or items.get("type") != "string":
            raise _Unsupported
        item, item_check = _string(items)
        meta = _lengths(schema, "minItems", "maxItems")
        unique = schema.get("uniqueItems", False)
        if unique not in (True, False):
            raise _Unsupported
        checks = [c for c in (item_check and functools.partial(_all, item_check), unique and _unique) if c]
        return Annotated[list[item], meta], _both(checks)  # type: ignore[valid-type]
    raise _Unsupported


def _string(schema: Mapping[str, Any]) -> tuple[Any, _Check | None]:
    _only(schema, _STRING_KEYWORDS)
    checks: list[_Check] = []
    enum = schema.get("enum")
    if enum is not None:
        if not isinstance(enum, list) or not enum or not all(isinstance(v, str) for v in enum):
            raise _Unsupported
        annotation: Any = Literal[tuple(enum)]
        # An enum member must still meet the other keywords: check them too.
        meta_check = _string_meta_check(schema)
        if meta_check is not None:
            checks.append(meta_check)
    else:
        annotation = Annotated[str, _lengths(schema, "minLength", "maxLength")]
    pattern = schema.get("pattern")
    if pattern is not None:
        checks.append(_pattern_check(pattern))
    fmt = schema.get("format")
    if fmt is not None:
        if fmt != "date":
            raise _Unsupported
        checks.append(is_date)
        # Dates repeat across bodies: remember each string's verdict (bounded).
        return annotation, functools.lru_cache(maxsize=4096)(_both(checks))  # type: ignore[arg-type]
    return annotation, _both(checks)


def _string_meta_check(schema: Mapping[str, Any]) -> _Check | None:
    low, high = schema.get("minLength"), schema.get("maxLength")
    if low is None and high is None:
        return None
    lo = _count(low, 0)
    hi = _count(high, 2**63)
    return lambda value: lo <= len(value) <= hi


def _lengths(schema: Mapping[str, Any], low_key: str, high_key: str) -> msgspec.Meta:
    low, high = schema.get(low_key), schema.get(high_key)
    return msgspec.Meta(min_length=_count(low, 0), max_length=_count(high, None))


def _count(value: object, default: int | None) -> int | None:
    if value is None:
        return default
    if type(value) is not int or value < 0:
        raise _Unsupported
    return value


def _pattern_check(pattern: object) -> _Check:
    """A check as strict as the JSON Schema ``pattern`` (a search, as fastjsonschema does)."""
    if not isinstance(pattern, str) or "$" in pattern[:-1]:
        # A "$" before the end: fastjsonschema rewrites every unescaped "$" to
        # "\Z", not only a final one, so keeping Python's "$" there was looser
        # ("a\n" passed ^a$|^b$ here, not there); inside a lookahead "\Z" is
        # not even stricter. Only a final "$" (never inside a group or class,
        # so "\Z" can only be stricter) is compiled here.
        raise _Unsupported
    # "$" in Python also matches before a final newline; JSON Schema's does not.
    strict = pattern[:-1] + r"\Z" if pattern.endswith("$") and not pattern.endswith(r"\$") else pattern
    try:
        search = re.compile(strict).search
    except re.error as exc:
        raise _Unsupported from exc
    if _printable_implies(pattern):
        # str.isprintable is one C loop; the regex is the fallback for text
        # with tabs, newlines and the like, which the pattern may still allow.
        return lambda value: value.isprintable() or search(value) is not None
    return lambda value: search(value) is not None


def _printable_implies(pattern: str) -> bool:
    """Whether every printable string matches ``pattern`` (a negated class of non-printable characters)."""
    match = _NEGATED_CLASS.fullmatch(pattern)
    if match is None:
        return False
    for item in _CLASS_ITEM.finditer(match.group(1)):
        first = int(item.group(1), 16)
        last = int(item.group(2), 16) if item.group(2) else first
        if any(chr(code).isprintable() for code in range(first, last + 1)):
            return False
    return True


def is_date(value: str) -> bool:
    """The "date" format: an RFC 3339 full-date naming a day that exists (no 2026-02-30).

    Shared with protocol.schema's reference validator, so both paths use one rule.
    """
    if _DATE_SHAPE.fullmatch(value) is None:
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _unique(values: list[str]) -> bool:
    return len(set(values)) == len(values)


def _all(check: _Check, values: list[str]) -> bool:
    return all(check(value) for value in values)


def _both(checks: list[_Check]) -> _Check | None:
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks
        return lambda value: first(value) and second(value)
    return lambda value: all(check(value) for check in checks)
