"""Event-type schemas: check an entry's body against the JSON Schema of its type and version.

A body is the decoded MessagePack map of a log entry; a pledge body, for example::

    {"kind": "relocation", "places": 120, "from": "2026-03-01", "until": "2026-12-31"}

The schema documents (JSON Schema draft 2020-12, one per type and version, see
``schemas/``) come in as arguments, so this module reads no files::

    registry = SchemaRegistry(schemas.load_documents())
    registry.validate("pledge", 1, body)   # None, or SchemaError:
    # pledge body: field 'kind' must be one of relocation, resettlement,
    # unaccompanied-minors, family-reunification, other; got 'relokation'

Each document is compiled to Python once, by fastjsonschema, when the registry is
built: a typical body then costs a few microseconds. A node keeps entries whose
type or version it does not know (``knows`` is False) as "unknown" instead of
rejecting them, so newer event types never stop a sync.

Rules JSON Schema cannot express are checked here by field name, for every type
that has the fields (a convention of all our schemas): ``DATE_ORDER`` (``until``
not before ``from``) and ``KEY_NAME_OF`` (a vouched ``origin`` is its key's name).
"""

from __future__ import annotations

import builtins
import copy
import functools
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import fastjsonschema

from protocol.entry import MAX_BODY_SIZE, SALT_SIZE
from protocol.entry import decode_body as _decode_salted
from protocol.errors import SchemaError, preview
from protocol.typed_bodies import FastBody, compile_fast, is_date

__all__ = ["DATE_ORDER", "KEY_NAME_OF", "MAX_DEPTH", "SchemaRegistry"]

#: Deepest nesting accepted in a body: the same bound as canonical MessagePack
#: decoding, so nothing a peer can send fits there but not here.
MAX_DEPTH = 32

#: (earlier, later) pairs of RFC 3339 full-date fields: the later may equal but
#: not precede the earlier. Full-dates compare correctly as strings.
DATE_ORDER: tuple[tuple[str, str], ...] = (("from", "until"), ("period_start", "period_end"))

#: (origin field, verifier key field) pairs: a log's signing key is named after
#: its origin (C2SP tlog-checkpoint), so a key for another name is a mistake.
KEY_NAME_OF: tuple[tuple[str, str], ...] = (("origin", "key"),)

# Type names and versions as log entries carry them (protocol.entry).
_TYPE_NAME = re.compile(r"[a-z][a-z0-9-]{0,31}")
_MAX_VERSION = 65535


_SCALARS = (str, int, bytes, type(None))  # bool is an int
# Exact types of a flat body that needs no walk (see validate); anything else,
# subclasses included, takes the full _check_plain walk.
_STR_ONLY = frozenset({str})
_FLAT = frozenset({str, int, bool, bytes, type(None)})
_CONTAINERS = (dict, list, tuple)
_TYPE_WORDS = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "null": "null",
}


# Given to fastjsonschema as a custom format so the check does not depend on
# the library version (older ones only look at the digits' shape).
_FORMATS: dict[str, Callable[[str], bool]] = {"date": is_date}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Compiled:
    """One schema document and the validator compiled from it."""

    document: Mapping[str, Any]
    check: Callable[[Any], Any]
    fields: tuple[str, ...]
    field_set: frozenset[str]  # the same names, for one C-level subset test per body
    closed: bool  # additionalProperties is false: unknown fields are rejected up front
    # The DATE_ORDER and KEY_NAME_OF pairs this type can hold: all of them for an
    # open schema, only those whose fields it declares for a closed one.
    date_order: tuple[tuple[str, str], ...]
    key_name_of: tuple[tuple[str, str], ...]
    # One-pass decoder for bodies of this type (protocol.typed_bodies), None if
    # the schema uses something it does not compile.
    fast: FastBody | None


class SchemaRegistry:
    """The schemas a node knows, compiled once, keyed by (type, version).

    Built from ``schemas.load_documents()`` (or any mapping of the same shape);
    raises SchemaError naming the document if one is not a usable schema.
    """

    __slots__ = ("_compiled", "_latest")

    def __init__(self, documents: Mapping[tuple[str, int], Mapping[str, Any]]) -> None:
        compiled: dict[tuple[str, int], _Compiled] = {}
        latest: dict[str, int] = {}
        for key, document in documents.items():
            type_, version = key
            if not isinstance(type_, str) or _TYPE_NAME.fullmatch(type_) is None:
                raise SchemaError(f"schema type {_show(type_)} must match [a-z][a-z0-9-]{{0,31}}")
            if type(version) is not int or not 1 <= version <= _MAX_VERSION:
                raise SchemaError(f"{type_} schema: version must be 1..{_MAX_VERSION}; got {_show(version)}")
            compiled[key] = _compile(f"{type_} v{version} schema", document)
            latest[type_] = max(version, latest.get(type_, 0))
        self._compiled = compiled
        self._latest = dict(sorted(latest.items()))

    def knows(self, type: str, version: int) -> bool:  # noqa: A002 - the entry field's name
        """Whether a body of this type and version can be validated (else it stays "unknown")."""
        # type(...) is int: True would otherwise find version 1 (True == 1 in a dict key).
        return isinstance(type, str) and builtins.type(version) is int and (type, version) in self._compiled

    def latest(self, type: str) -> int:  # noqa: A002
        """The newest version known for ``type``: the one new entries are written with."""
        if not isinstance(type, str) or type not in self._latest:
            raise SchemaError(f"unknown event type {_show(type)}")
        return self._latest[type]

    def types(self) -> list[str]:
        """The known event types, sorted."""
        return list(self._latest)

    def document(self, type: str, version: int) -> dict[str, Any]:  # noqa: A002
        """A copy of the schema document for (type, version), e.g. to serve it over HTTP."""
        return copy.deepcopy(dict(self._lookup(type, version).document))

    def validate(self, type: str, version: int, body: object) -> None:  # noqa: A002
        """Raise SchemaError unless ``body`` is a valid body of this type and version.

        The message names the field, what is allowed and (bounded) what came.
        Any input, however hostile, gives SchemaError or None, never another
        exception: bodies come from peers.
        """
        # This runs for every entry a node syncs (bench/protocol.py measures it),
        # so each step below takes a C-level fast path for the common valid body
        # and only walks the slow, explaining path when something is wrong.
        compiled = self._lookup(type, version)
        label = f"{type} body"
        if not isinstance(body, dict):
            raise SchemaError(f"{label}: must be an object; got {_show(body)}")
        flat = _STR_ONLY.issuperset(map(builtins.type, body)) and _FLAT.issuperset(
            map(builtins.type, body.values())
        )
        if not flat:
            _check_plain(label, body)  # nested or unusual values: the full walk
        if compiled.closed and not compiled.field_set.issuperset(body):
            # Checked before the compiled validator so that its message (which
            # echoes every unknown key in full) is never built from peer data.
            for name in body:
                if name not in compiled.field_set:
                    allowed = ", ".join(compiled.fields)
                    raise SchemaError(f"{label}: field {_show(name)} is not allowed; allowed: {allowed}")
        try:
            compiled.check(body)
        except fastjsonschema.JsonSchemaValueException as exc:
            raise SchemaError(f"{label}: {_describe(exc)}") from exc
        if compiled.date_order or compiled.key_name_of:
            _check_cross_fields(label, body, compiled.date_order, compiled.key_name_of)

    def decode_body(self, type: str, version: int, salted: bytes) -> dict[str, Any]:  # noqa: A002
        """The body in ``salted`` (salt || canonical MessagePack), valid for this type and version.

        The same as ``entry.decode_body`` followed by :meth:`validate`, and the
        same errors (EntryError, EncodingError, SchemaError), in about a third
        of the time for the common valid body: see protocol.typed_bodies. A
        node indexing a synced log runs this for every entry.
        """
        exact = builtins.type(type) is str and builtins.type(version) is int
        compiled = self._compiled.get((type, version)) if exact else None
        if (
            compiled is not None
            and compiled.fast is not None
            and builtins.type(salted) is bytes
            and SALT_SIZE < len(salted) <= MAX_BODY_SIZE
        ):
            body = compiled.fast.decode(salted, SALT_SIZE)
            if body is not None:
                return body
        # Anything else, valid or not, takes the reference path, which explains.
        self._lookup(type, version)  # an unknown type is refused before its body is looked at
        body = _decode_salted(salted)[1]
        self.validate(type, version, body)
        return body

    def _lookup(self, type: str, version: int) -> _Compiled:  # noqa: A002
        # Exact types first: the key must be hashable, and True must not find version 1.
        compiled = (
            self._compiled.get((type, version))
            if builtins.type(type) is str and builtins.type(version) is int
            else None
        )
        if compiled is None:
            if not self.knows(type, version):  # str subclasses are still welcome
                raise SchemaError(f"unknown event type {_show(type)} version {_show(version)}")
            compiled = self._compiled[(type, version)]
        return compiled


def _compile(label: str, document: Mapping[str, Any]) -> _Compiled:
    """Compile one document; SchemaError if it is not a closed-world object schema we can use."""
    if not isinstance(document, Mapping):
        raise SchemaError(f"{label}: must be an object; got {_show(document)}")
    document = copy.deepcopy(dict(document))
    _check_local_refs(label, document)
    properties = document.get("properties", {})
    if document.get("type") != "object" or not isinstance(properties, Mapping):
        raise SchemaError(f"{label}: must describe an object with properties")
    try:
        # use_default=False: validation must never change the body it checks.
        check = fastjsonschema.compile(document, formats=_FORMATS, use_default=False)
    except Exception as exc:  # the compiler fails in many ways (definition errors, re.error, ...)
        raise SchemaError(f"{label}: cannot compile: {preview(str(exc), 120)}") from exc
    closed = document.get("additionalProperties", True) is False
    declared = set(properties)

    def applicable(pairs: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
        # A closed schema rejects undeclared fields before the cross-field rules run.
        return tuple(pair for pair in pairs if not closed or set(pair) <= declared)

    date_order, key_name_of = applicable(DATE_ORDER), applicable(KEY_NAME_OF)
    return _Compiled(
        document=document,
        check=check,
        fields=tuple(properties),
        field_set=frozenset(properties),
        closed=closed,
        date_order=date_order,
        key_name_of=key_name_of,
        fast=compile_fast(
            label,
            document,
            functools.partial(_cross_fields_hold, date_order=date_order, key_name_of=key_name_of)
            if date_order or key_name_of
            else None,
        ),
    )


def _check_local_refs(label: str, node: object) -> None:
    """Refuse references outside the document: fastjsonschema would fetch them over the network."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            for key, value in item.items():
                if key in ("$ref", "$dynamicRef") and not (isinstance(value, str) and value.startswith("#")):
                    raise SchemaError(f"{label}: only references within the document are allowed; got {preview(value)}")
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)


def _check_plain(label: str, body: dict) -> None:
    """Require plain JSON-like data (str keys, no floats, bounded depth) before any schema code looks at it.

    The compiled validator recurses into arrays for uniqueItems and would fail
    with RecursionError or TypeError (not SchemaError) on deep or unhashable junk.
    """
    stack: list[tuple[object, tuple[str | int, ...]]] = [(body, ())]
    while stack:
        value, path = stack.pop()
        if len(path) >= MAX_DEPTH:
            raise SchemaError(f"{label}: field {_field(path)} nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    where = f" in field {_field(path)}" if path else ""
                    raise SchemaError(f"{label}: field names must be strings; got {_show(key)}{where}")
            items: Iterable[tuple[str | int, object]] = value.items()
        else:
            items = enumerate(value)  # type: ignore[arg-type]  # only lists and tuples are pushed
        for key, item in items:
            if isinstance(item, _CONTAINERS):
                stack.append((item, (*path, key)))
            elif isinstance(item, float):
                # JSON Schema counts 12.0 as an integer, but canonical MessagePack has no floats.
                raise SchemaError(f"{label}: field {_field((*path, key))} must not be a float; got {_show(item)}")
            elif not isinstance(item, _SCALARS):
                raise SchemaError(f"{label}: field {_field((*path, key))} must hold JSON data; got {_show(item)}")


def _check_cross_fields(
    label: str,
    body: dict,
    date_order: tuple[tuple[str, str], ...] = DATE_ORDER,
    key_name_of: tuple[tuple[str, str], ...] = KEY_NAME_OF,
) -> None:
    """The rules between fields (see DATE_ORDER, KEY_NAME_OF); runs after the schema passed."""
    for earlier, later in date_order:
        start, end = body.get(earlier), body.get(later)
        if isinstance(start, str) and isinstance(end, str) and end < start:
            raise SchemaError(f"{label}: field '{later}' must not be before '{earlier}' ({start}); got {preview(end)}")
    for origin_field, key_field in key_name_of:
        origin, key = body.get(origin_field), body.get(key_field)
        if isinstance(origin, str) and isinstance(key, str):
            name = key.partition("+")[0]  # C2SP signed-note: key names contain no "+"
            if name != origin:
                raise SchemaError(
                    f"{label}: field '{origin_field}' must equal the name in '{key_field}' "
                    f"({preview(name)}); got {preview(origin)}"
                )


def _cross_fields_hold(
    body: dict, date_order: tuple[tuple[str, str], ...], key_name_of: tuple[tuple[str, str], ...]
) -> bool:
    """Whether :func:`_check_cross_fields` would pass, without building its message."""
    for earlier, later in date_order:
        start, end = body.get(earlier), body.get(later)
        if isinstance(start, str) and isinstance(end, str) and end < start:
            return False
    for origin_field, key_field in key_name_of:
        origin, key = body.get(origin_field), body.get(key_field)
        if isinstance(origin, str) and isinstance(key, str) and key.partition("+")[0] != origin:
            return False
    return True


def _describe(exc: fastjsonschema.JsonSchemaValueException) -> str:
    """Turn fastjsonschema's exception into "field 'x' must ...; got ..." (never echoing much input)."""
    name = exc.name or "data"
    field = name[len("data.") :] if name.startswith("data.") else ""
    definition = exc.definition if isinstance(exc.definition, Mapping) else {}
    value = exc.value
    rule = exc.rule
    subject = f"field {preview(field)}" if field else "body"

    if rule == "required":
        present = value if isinstance(value, dict) else {}
        missing = [f"'{f}'" for f in definition.get("required", ()) if f not in present]
        if len(missing) == 1:
            return f"field {missing[0]} is required"
        return f"fields {', '.join(missing)} are required"
    if rule == "additionalProperties":
        return f"{subject} must not hold other fields than {', '.join(definition.get('properties', {}))}"

    got = f"; got {_show(value)}"
    rule_value = definition.get(rule) if rule else None
    if rule == "type":
        types = rule_value if isinstance(rule_value, list) else [rule_value]
        allowed = " or ".join(_TYPE_WORDS.get(t, str(t)) for t in types)
    elif rule == "enum":
        allowed = "one of " + ", ".join(str(v) for v in rule_value or ())
    elif rule == "minLength":
        allowed = f"at least {_count(rule_value, 'character')}"
    elif rule == "maxLength":
        allowed = f"at most {rule_value} characters"
        got = f"; got {len(value)} characters" if isinstance(value, str) else got
    elif rule == "pattern":
        allowed = f"text matching {rule_value}"
    elif rule == "format":
        allowed = "a real calendar date yyyy-mm-dd" if rule_value == "date" else f"a valid {rule_value}"
    elif rule in ("minimum", "exclusiveMinimum"):
        allowed = f"at least {rule_value}" if rule == "minimum" else f"more than {rule_value}"
    elif rule in ("maximum", "exclusiveMaximum"):
        allowed = f"at most {rule_value}" if rule == "maximum" else f"less than {rule_value}"
    elif rule in ("minItems", "maxItems"):
        bound = "at least" if rule == "minItems" else "at most"
        allowed = f"{bound} {_count(rule_value, 'item')}"
        got = f"; got {len(value)}" if isinstance(value, (list, tuple)) else got
    elif rule == "uniqueItems":
        return f"{subject} must not repeat items"
    else:
        return f"{subject} breaks the rule {preview(rule)}{got}"
    verb = "must have" if rule in ("minItems", "maxItems") else "must be"
    return f"{subject} {verb} {allowed}{got}"


def _field(path: tuple[str | int, ...]) -> str:
    """A field path as messages show it: 'urls[0]', bounded and quoted by preview."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part[:40]}" if text else part[:40])
        if len(text) > 80:
            break
    return preview(text, 80)


def _show(value: object) -> str:
    """A short description of untrusted data, safe for any value.

    repr() alone is not: it fails on integers over 4300 digits and on deeply
    nested lists, and costs time on huge strings.
    """
    if value is None or isinstance(value, bool):
        return repr(value)
    if isinstance(value, int):
        bits = value.bit_length()
        return f"an integer of {bits} bits" if bits > 64 else int.__repr__(value)
    if isinstance(value, float):
        return float.__repr__(value)
    if isinstance(value, str):
        return preview(str(value[:64]))
    if isinstance(value, (bytes, bytearray)):
        return f"{len(value)} bytes {preview(bytes(value[:32]))}"
    if isinstance(value, (list, tuple)):
        return f"an array of {_count(len(value), 'item')}"
    if isinstance(value, dict):
        return f"an object with {_count(len(value), 'field')}"
    return f"a {type(value).__name__[:40]}"


def _count(n: object, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
