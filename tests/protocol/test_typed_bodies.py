"""The one-pass body decoder never accepts what the reference path (decode, then validate) rejects.

``SchemaRegistry.decode_body`` tries ``protocol.typed_bodies`` first and falls
back to ``entry.decode_body`` + ``SchemaRegistry.validate``. Its answer must be
the reference answer in every case: the same body, or the same error.
"""

from __future__ import annotations

import copy

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol import encoding
from protocol.entry import SALT_SIZE, decode_body, encode_body
from protocol.errors import EncodingError, EntryError, ProtocolError, SchemaError
from protocol.schema import SchemaRegistry
from protocol.typed_bodies import _printable_implies, compile_fast
from schemas import load_documents

DOCUMENTS = load_documents()
REGISTRY = SchemaRegistry(DOCUMENTS)
EXAMPLES = {type_: doc["examples"][0] for (type_, _), doc in DOCUMENTS.items()}
FIELDS = sorted({name for doc in DOCUMENTS.values() for name in doc["properties"]})
SALT = bytes(range(SALT_SIZE))
FAST = {type_: REGISTRY._lookup(type_, 1).fast for type_, _ in DOCUMENTS}


def reference(type_: str, salted: bytes) -> dict | str:
    """What the two-step path says: the body, or the error's class and message."""
    try:
        body = decode_body(salted)[1]
        REGISTRY.validate(type_, 1, body)
    except ProtocolError as exc:
        return f"{type(exc).__name__}: {exc}"
    return body


def registry_answer(type_: str, salted: bytes) -> dict | str:
    try:
        return REGISTRY.decode_body(type_, 1, salted)
    except ProtocolError as exc:
        return f"{type(exc).__name__}: {exc}"


def assert_agrees(type_: str, salted: bytes) -> None:
    expected = reference(type_, salted)
    assert registry_answer(type_, salted) == expected
    fast = FAST[type_]
    if fast is not None:
        got = fast.decode(salted, SALT_SIZE)
        # The fast path may decline (None) what is valid, never accept what is not.
        assert got is None or got == expected


def test_which_schemas_compile():
    """Schemas with formats other than "date" (uri, email) keep the reference path only."""
    assert {t for t, fast in FAST.items() if fast is None} == {"city", "vouch"}


@pytest.mark.parametrize("type_", sorted(EXAMPLES))
def test_examples_take_the_fast_path(type_):
    salted = encode_body(EXAMPLES[type_], SALT)
    assert REGISTRY.decode_body(type_, 1, salted) == EXAMPLES[type_]
    if FAST[type_] is not None:
        assert FAST[type_].decode(salted, SALT_SIZE) == EXAMPLES[type_]


def test_text_with_a_newline_is_decided_by_the_pattern():
    """str.isprintable is only a shortcut: a newline is allowed in a description, not in a unit."""
    offer = copy.deepcopy(EXAMPLES["offer"])
    offer["description"] = "two lines\nof text\t(tab)"
    assert REGISTRY.decode_body("offer", 1, encode_body(offer, SALT)) == offer
    offer["unit"] = "days\n"
    with pytest.raises(SchemaError, match="unit"):
        REGISTRY.decode_body("offer", 1, encode_body(offer, SALT))


def test_non_canonical_bytes_get_the_reference_error():
    body = EXAMPLES["pledge"]
    canonical = encoding.encode(body)
    unsorted = msgpack.packb(dict(reversed(list(body.items()))), use_bin_type=True)
    long_int = canonical.replace(b"\xa6places" + encoding.encode(body["places"]), b"\xa6places\xcd" + body["places"].to_bytes(2, "big"))
    assert long_int != canonical
    duplicate = b"\x85" + canonical[1:] + encoding.encode("places") + encoding.encode(1)
    for raw in (unsorted, long_int, canonical + b"\x00", duplicate, canonical[:-1]):
        with pytest.raises((EncodingError, EntryError)):
            REGISTRY.decode_body("pledge", 1, SALT + raw)
        assert_agrees("pledge", SALT + raw)


def test_cross_field_rules_hold_on_the_fast_path():
    pledge = dict(EXAMPLES["pledge"], **{"from": "2027-01-01", "until": "2026-01-01"})
    with pytest.raises(SchemaError, match="until"):
        REGISTRY.decode_body("pledge", 1, encode_body(pledge, SALT))


def test_dates_that_do_not_exist_are_rejected():
    pledge = dict(EXAMPLES["pledge"], until="2026-02-30")
    assert_agrees("pledge", encode_body(pledge, SALT))
    with pytest.raises(SchemaError):
        REGISTRY.decode_body("pledge", 1, encode_body(pledge, SALT))


def test_printable_shortcut_only_for_classes_of_non_printable_characters():
    assert _printable_implies("^[^\\u0000-\\u001f\\u007f-\\u009f]*$")
    assert not _printable_implies("^[^\\u0000-\\u0041]*$")  # "A" is printable
    assert not _printable_implies("^[a-z]*$")
    assert not _printable_implies("[^\\u0000-\\u001f]*$")  # not anchored at the start


def test_unsupported_keywords_mean_no_fast_path():
    base = {"type": "object", "additionalProperties": False, "properties": {"n": {"type": "integer"}}}
    assert compile_fast("ok", base) is not None
    for changed in (
        {**base, "additionalProperties": True},
        {**base, "properties": {"n": {"type": "integer", "multipleOf": 2}}},
        {**base, "properties": {"n": {"type": "object"}}},
        {**base, "properties": {"n": {"type": "string", "format": "email"}}},
        {**base, "properties": {"n": {"type": ["string", "null"]}}},
        {**base, "oneOf": []},
    ):
        assert compile_fast("changed", changed) is None


# --- generated bodies: the same answer as the reference path -------------------------------------

text = st.text(max_size=40) | st.sampled_from(
    ["", "x", "2026-02-29", "2028-02-29", "2026-13-01", "2026-01-01\n", "a\nb", "\x00", "\x85", "\u2028", "é" * 33]
)
json_scalars = st.none() | st.booleans() | st.integers(-(2**64), 2**64) | text | st.binary(max_size=8)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=3), max_leaves=8
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(type_=st.sampled_from(sorted(EXAMPLES)), name=st.sampled_from(FIELDS), value=json_values, data=st.data())
def test_examples_with_one_field_replaced(type_, name, value, data):
    candidate = copy.deepcopy(EXAMPLES[type_])
    field = data.draw(st.sampled_from([*candidate, name]))
    if data.draw(st.booleans()):
        candidate.pop(field, None)
    else:
        candidate[field] = value
    try:
        salted = encode_body(candidate, SALT)
    except ProtocolError:
        return
    assert_agrees(type_, salted)


@settings(max_examples=300, deadline=None)
@given(type_=st.sampled_from(sorted(EXAMPLES)), at=st.integers(0, 400), byte=st.integers(0, 255))
def test_single_byte_changes(type_, at, byte):
    salted = bytearray(encode_body(EXAMPLES[type_], SALT))
    at = SALT_SIZE + at % (len(salted) - SALT_SIZE)
    salted[at] = byte
    assert_agrees(type_, bytes(salted))


@settings(max_examples=200, deadline=None)
@given(type_=st.sampled_from(sorted(EXAMPLES)), data=st.binary(max_size=120))
def test_random_bytes(type_, data):
    assert_agrees(type_, SALT + data)


# --- schemas beyond ours: the compiler must stay as strict as the reference ------------------------


def _registry(properties: dict, required: tuple[str, ...] = ()) -> SchemaRegistry:
    document = {"type": "object", "additionalProperties": False, "properties": properties, "required": list(required)}
    return SchemaRegistry({("t", 1): document})


def _agrees_with_reference(registry: SchemaRegistry, body: dict) -> None:
    salted = encode_body(body, SALT)
    try:
        expected: dict | str = decode_body(salted)[1]
        registry.validate("t", 1, expected)
    except ProtocolError as exc:
        expected = f"{type(exc).__name__}: {exc}"
    try:
        got: dict | str = registry.decode_body("t", 1, salted)
    except ProtocolError as exc:
        got = f"{type(exc).__name__}: {exc}"
    assert got == expected
    fast = registry._lookup("t", 1).fast
    if fast is not None:
        decoded = fast.decode(salted, SALT_SIZE)
        assert decoded is None or decoded == expected


@pytest.mark.parametrize("pattern", ["^a$|^b$", "^(a$|b)", "^(?!a$)", "a$(?!x)", "^[a-z]+\\\\$"])
@pytest.mark.parametrize("value", ["a", "a\n", "b", "b\n", "x", "a\\", "a\\\n"])
def test_a_dollar_anywhere_in_a_pattern_means_what_the_reference_says(pattern, value):
    """fastjsonschema turns every unescaped "$" into "\\Z", not only a final one.

    The fast path once rewrote only the last "$", so "a\\n" passed ^a$|^b$ there
    (Python's "$" matches before a final newline) and failed on the reference path.
    """
    _agrees_with_reference(_registry({"a": {"type": "string", "pattern": pattern}}), {"a": value})


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "minLength": 2**70},
        {"type": "string", "maxLength": 2**64},
        {"type": "array", "items": {"type": "string"}, "maxItems": 2**64},
    ],
)
def test_bounds_msgspec_cannot_hold_mean_no_fast_path(schema):
    """A schema the reference compiles never fails to load because msgspec refuses a bound."""
    registry = _registry({"a": schema})
    assert registry._lookup("t", 1).fast is None
    _agrees_with_reference(registry, {"a": "x"})
    _agrees_with_reference(registry, {"a": ["x"]})


FIELD_SCHEMAS = [
    {"type": "string"},
    {"type": "string", "minLength": 2, "maxLength": 3},
    {"type": "string", "pattern": "^[a-z]{2}$"},
    {"type": "string", "pattern": "^a$|^b$"},
    {"type": "string", "pattern": "b"},
    {"type": "string", "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"},
    {"type": "string", "pattern": "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]*$", "maxLength": 4},
    {"type": "string", "enum": ["a", "bb", "a\n"], "maxLength": 1},
    {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
    {"type": "integer"},
    {"type": "integer", "minimum": -5, "maximum": 2**63 - 1},
    {"type": "integer", "minimum": 0, "maximum": 10},
    {"type": "array", "items": {"type": "string", "pattern": "^[a-z]$"}, "minItems": 1, "maxItems": 3, "uniqueItems": True},
    {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}},
]
tricky_text = st.sampled_from(
    ["", "a", "a\n", "b", "bb", "b\n", "\U0001F600\U0001F600", "\U0001F600" * 4, "ab\t", "\x85", "\u2028", "\x00",
     "2026-02-29", "2028-02-29", "2026-01-01\n", "\u0662\u0660\u0662\u0666-01-01"]
) | st.text(max_size=6)
tricky_values = (
    tricky_text
    | st.sampled_from([0, -5, -6, 10, 11, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), True, False, None, b"a"])
    | st.lists(tricky_text, max_size=4)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    schemas=st.dictionaries(st.sampled_from(["a", "b", "\u00e9", "z"]), st.sampled_from(FIELD_SCHEMAS), min_size=1, max_size=3),
    data=st.data(),
)
def test_generated_schemas_agree_with_the_reference(schemas, data):
    required = tuple(data.draw(st.lists(st.sampled_from(sorted(schemas)), unique=True)))
    registry = _registry(schemas, required)
    body = data.draw(st.dictionaries(st.sampled_from([*schemas, "other"]), tricky_values, max_size=4))
    _agrees_with_reference(registry, body)


def _raw_spellings(value: object) -> list[bytes]:
    """``value`` canonically, and in the other spellings MessagePack allows (and canonical form refuses)."""
    out = [msgpack.packb(value, use_bin_type=True)]
    if isinstance(value, str):
        raw = value.encode()
        out.append(msgpack.packb(raw, use_bin_type=True))  # bin, not str
        if len(raw) < 32:
            out.append(b"\xd9" + bytes([len(raw)]) + raw)  # str 8 for a fixstr
    if type(value) is int and 0 <= value < 2**31:
        out += [b"\xce" + value.to_bytes(4, "big"), b"\xd2" + value.to_bytes(4, "big")]
    return out


ODD_VALUES = [
    "", "x", "x\n", "2026-01-01\n", "2026-02-30", "0" * 63 + "\n", "0" * 63 + "\U0001F600", "\U0001F600" * 33,
    "relocation\n", "d\u0435", "days\x85", "x" * 2001, 0, -1, True, None, 10**9 + 1, 2**64 - 1, -(2**63),
    b"x", [], {}, 1.0, msgpack.Timestamp(1),
]


@pytest.mark.parametrize("type_", sorted(t for t, fast in FAST.items() if fast is not None))
def test_odd_values_and_spellings_in_every_field(type_):
    """Each field of each example, replaced, repeated or added with odd values in every spelling."""
    example = EXAMPLES[type_]
    names = sorted({*example, *DOCUMENTS[(type_, 1)]["properties"], "zz"})
    for name in names:
        for value in ODD_VALUES:
            for raw in _raw_spellings(value):
                pairs = {key: msgpack.packb(item, use_bin_type=True) for key, item in example.items()}
                pairs[name] = raw
                items = sorted(pairs.items(), key=lambda pair: pair[0].encode())
                if name in example:
                    items.append((name, raw))  # a duplicate key, last
                for cut in (len(items), len(items) - 1):
                    chosen = items[:cut]
                    header = bytes([0x80 | len(chosen)])
                    wire = header + b"".join(msgpack.packb(key) + item for key, item in chosen)
                    assert_agrees(type_, SALT + wire)
