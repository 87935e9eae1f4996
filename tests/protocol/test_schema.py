"""SchemaRegistry: every rule rejects with a message naming the field; hostile bodies give SchemaError only."""

from __future__ import annotations

import copy
import time

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.errors import SchemaError, preview
from protocol.schema import MAX_DEPTH, SchemaRegistry
from schemas import load_documents

DOCUMENTS = load_documents()
REGISTRY = SchemaRegistry(DOCUMENTS)
EXAMPLES = {type_: doc["examples"][0] for (type_, _), doc in DOCUMENTS.items()}
FIELDS = sorted({name for doc in DOCUMENTS.values() for name in doc["properties"]})


def body(type_: str, **changes) -> dict:
    """The type's first example with fields replaced (``None`` drops a field)."""
    out = copy.deepcopy(EXAMPLES[type_])
    for name, value in changes.items():
        name = {"from_": "from"}.get(name, name)
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def rejects(type_: str, value: object) -> str:
    with pytest.raises(SchemaError) as info:
        REGISTRY.validate(type_, 1, value)
    message = str(info.value)
    assert len(message) < 400, message
    return message


def deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


# --- the registry's questions -------------------------------------------------------------------


def test_knows_latest_and_types():
    assert REGISTRY.types() == sorted(EXAMPLES)
    assert REGISTRY.knows("pledge", 1)
    assert REGISTRY.latest("pledge") == 1


@pytest.mark.parametrize(
    ("type_", "version"),
    [
        ("pledge", 2),
        ("pledge", 0),
        ("pledge", True),
        ("pledge", 1.0),
        ("pledge", "1"),
        ("pledge", 10**5000),
        ("parade", 1),
        ("", 1),
        (None, 1),
        (["pledge"], 1),
        (deep_list(100_000), 1),
    ],
    ids=lambda value: preview(value) if isinstance(value, str) else type(value).__name__,
)
def test_unknown_types_are_not_known_and_not_validated(type_, version):
    """The node keeps such entries as "unknown": knows() is the question it asks, never an error."""
    assert REGISTRY.knows(type_, version) is False
    with pytest.raises(SchemaError, match="unknown event type"):
        REGISTRY.validate(type_, version, {})


def test_latest_of_an_unknown_type():
    with pytest.raises(SchemaError, match="unknown event type 'parade'"):
        REGISTRY.latest("parade")


def test_document_is_a_copy():
    doc = REGISTRY.document("pledge", 1)
    assert doc == DOCUMENTS[("pledge", 1)]
    doc["properties"].clear()
    assert REGISTRY.document("pledge", 1)["properties"]


def test_compiled_once_per_registry(monkeypatch):
    calls = []
    real = fastjsonschema.compile
    monkeypatch.setattr(fastjsonschema, "compile", lambda *a, **k: calls.append(1) or real(*a, **k))
    registry = SchemaRegistry(DOCUMENTS)
    assert len(calls) == len(DOCUMENTS)
    for _ in range(3):
        for type_, example in EXAMPLES.items():
            registry.validate(type_, 1, example)
    assert len(calls) == len(DOCUMENTS)


def test_validating_a_typical_body_is_fast():
    pledge = EXAMPLES["pledge"]
    start = time.perf_counter()
    for _ in range(2000):
        REGISTRY.validate("pledge", 1, pledge)
    # About 5 microseconds each when compiled; interpreting validators need 10x that.
    assert time.perf_counter() - start < 0.5


def test_validation_does_not_change_the_body():
    for type_, example in EXAMPLES.items():
        before = copy.deepcopy(example)
        REGISTRY.validate(type_, 1, example)
        assert example == before


# --- registry construction ---------------------------------------------------------------------

PLEDGE = DOCUMENTS[("pledge", 1)]


@pytest.mark.parametrize(
    ("documents", "match"),
    [
        ({("Pledge", 1): PLEDGE}, "schema type 'Pledge' must match"),
        ({("pledge", 0): PLEDGE}, "version must be 1..65535; got 0"),
        ({("pledge", True): PLEDGE}, "version must be"),
        ({("pledge", 1): []}, "pledge v1 schema: must be an object"),
        ({("pledge", 1): {"type": "string"}}, "must describe an object"),
        (
            {("pledge", 1): {**PLEDGE, "properties": {"x": {"$ref": "https://example.org/x.json"}}}},
            "only references within the document",
        ),
        ({("pledge", 1): {**PLEDGE, "properties": {"x": {"type": "strung"}}}}, "cannot compile"),
        ({("pledge", 1): {**PLEDGE, "properties": {"x": {"pattern": "(["}}}}, "cannot compile"),
    ],
)
def test_unusable_documents_are_refused(documents, match):
    with pytest.raises(SchemaError, match=match):
        SchemaRegistry(documents)


def test_later_versions_are_latest():
    registry = SchemaRegistry({("pledge", 1): PLEDGE, ("pledge", 3): PLEDGE, ("offer", 1): DOCUMENTS[("offer", 1)]})
    assert registry.latest("pledge") == 3
    assert registry.types() == ["offer", "pledge"]
    assert not registry.knows("pledge", 2)


# --- every rule names its field ------------------------------------------------------------------


def test_contract_example_message():
    assert rejects("pledge", body("pledge", kind="relokation")) == (
        "pledge body: field 'kind' must be one of relocation, resettlement, unaccompanied-minors, "
        "family-reunification, other; got 'relokation'"
    )


@pytest.mark.parametrize("type_", sorted(EXAMPLES))
def test_unknown_fields_are_rejected_naming_the_field(type_):
    message = rejects(type_, body(type_, surname="Doe"))
    assert message.startswith(f"{type_} body: field 'surname' is not allowed; allowed: ")


@pytest.mark.parametrize("type_", sorted(EXAMPLES))
def test_every_required_field_is_required(type_):
    for name in DOCUMENTS[(type_, 1)]["required"]:
        assert rejects(type_, body(type_, **{name: None})) == f"{type_} body: field '{name}' is required"


def test_several_missing_fields_are_named_together():
    assert rejects("report", {"arrivals": 1}) == (
        "report body: fields 'period_start', 'period_end', 'in_reception', 'free_places' are required"
    )


REJECTED = [
    # enums
    ("offer", {"category": "weapons"}, "field 'category' must be one of reception-places, housing,"),
    ("request", {"category": "Housing"}, "field 'category' must be one of"),
    # quantities
    ("pledge", {"places": 0}, "field 'places' must be at least 1; got 0"),
    ("pledge", {"places": 10**9 + 1}, "field 'places' must be at most 1000000000; got 1000000001"),
    ("offer", {"quantity": -5}, "field 'quantity' must be at least 1; got -5"),
    ("report", {"arrivals": -1}, "field 'arrivals' must be at least 0; got -1"),
    ("progress", {"delivered": 10**10}, "field 'delivered' must be at most 1000000000"),
    ("accept", {"quantity": 0}, "field 'quantity' must be at least 1; got 0"),
    ("pledge", {"places": "12"}, "field 'places' must be an integer; got '12'"),
    ("pledge", {"places": 12.0}, "field 'places' must not be a float; got 12.0"),
    ("city", {"languages": ["de", 1.0]}, "field 'languages[1]' must not be a float; got 1.0"),
    ("pledge", {"places": True}, "field 'places' must be an integer; got True"),
    ("pledge", {"places": None}, "field 'places' is required"),
    # lengths and text
    ("offer", {"unit": "x" * 33}, "field 'unit' must be at most 32 characters; got 33 characters"),
    ("offer", {"unit": ""}, "field 'unit' must be at least 1 character; got ''"),
    ("offer", {"description": "x" * 2001}, "field 'description' must be at most 2000 characters; got 2001"),
    ("statement", {"text": "x" * 20001}, "field 'text' must be at most 20000 characters"),
    ("retract", {"reason": "x" * 1001}, "field 'reason' must be at most 1000 characters"),
    ("city", {"name": "x" * 201}, "field 'name' must be at most 200 characters"),
    ("statement", {"title": "two\nlines"}, "field 'title' must be text matching"),
    ("offer", {"description": "colour \x1b[31mred"}, "field 'description' must be text matching"),
    ("vouch", {"name": "Palermo\u0085"}, "field 'name' must be text matching"),
    ("statement", {"title": 7}, "field 'title' must be a string; got 7"),
    ("statement", {"title": b"bytes"}, "field 'title' must be a string; got 5 bytes b'bytes'"),
    # dates
    ("pledge", {"from_": "2026-02-30"}, "field 'from' must be a real calendar date yyyy-mm-dd; got '2026-02-30'"),
    ("pledge", {"until": "2027-02-29"}, "field 'until' must be a real calendar date"),
    ("offer", {"from_": "2026-13-01"}, "field 'from' must be a real calendar date"),
    ("offer", {"from_": "2026-00-10"}, "field 'from' must be a real calendar date"),
    ("offer", {"from_": "0000-01-01"}, "field 'from' must be a real calendar date"),
    ("request", {"until": "2026-1-01"}, "field 'until' must be at least 10 characters"),
    ("request", {"until": "2026/01/01"}, "field 'until' must be text matching"),
    ("request", {"until": "\uff12\uff10\uff12\uff16-01-01"}, "field 'until' must be text matching"),
    ("report", {"period_end": "2026-06-30T00:00Z"}, "field 'period_end' must be at most 10 characters"),
    ("report", {"period_start": 20260101}, "field 'period_start' must be a string"),
    # cross-field rules
    ("pledge", {"until": "2026-02-28"}, "field 'until' must not be before 'from' (2026-03-01); got '2026-02-28'"),
    ("offer", {"from_": "2026-07-01"}, "field 'until' must not be before 'from' (2026-07-01); got '2026-06-30'"),
    ("request", {"until": "2025-12-31"}, "field 'until' must not be before 'from'"),
    ("report", {"period_end": "2026-03-31"}, "field 'period_end' must not be before 'period_start' (2026-04-01)"),
    (
        "vouch",
        {"origin": "solidarity.leipzig.example/log"},
        "field 'origin' must equal the name in 'key' ('solidarity.palermo.example/log'); "
        "got 'solidarity.leipzig.example/log'",
    ),
    # city facts
    ("city", {"country": "de"}, "field 'country' must be text matching ^[A-Z]{2}$; got 'de'"),
    ("city", {"country": "DEU"}, "field 'country' must be at most 2 characters"),
    ("city", {"urls": []}, "field 'urls' must have at least 1 item; got 0"),
    ("city", {"urls": [f"https://a{i}.example/" for i in range(9)]}, "field 'urls' must have at most 8 items; got 9"),
    ("city", {"urls": ["https://a.example/"] * 2}, "field 'urls' must not repeat items"),
    ("city", {"urls": ["ftp://files.leipzig.example/"]}, "field 'urls[0]' must be text matching"),
    ("city", {"urls": ["javascript:alert(1)"]}, "field 'urls[0]' must be text matching"),
    ("city", {"urls": ["https://leipzig.example/ path"]}, "field 'urls[0]' must be text matching"),
    ("city", {"urls": ["https://leipzig.example/<script>"]}, "field 'urls[0]' must be text matching"),
    ("city", {"urls": ["https://leipzig.example/$\n"]}, "field 'urls[0]' must be text matching"),
    ("city", {"urls": ["https://a.example/", 7]}, "field 'urls[1]' must be a string; got 7"),
    ("city", {"urls": "https://a.example/"}, "field 'urls' must be an array; got 'https://a.example/'"),
    ("city", {"contact": "solidarity office"}, "field 'contact' must be text matching"),
    ("city", {"contact": "office@localhost"}, "field 'contact' must be text matching"),
    ("city", {"languages": []}, "field 'languages' must have at least 1 item; got 0"),
    ("city", {"languages": ["de"] * 25}, "field 'languages' must have at most 24 items; got 25"),
    ("city", {"languages": ["de", "de"]}, "field 'languages' must not repeat items"),
    ("city", {"languages": ["deu"]}, "field 'languages[0]' must be at most 2 characters"),
    ("city", {"languages": ["DE"]}, "field 'languages[0]' must be text matching"),
    ("statement", {"language": "english"}, "field 'language' must be at most 2 characters"),
    # ids and keys ($ in a pattern must not allow a trailing newline, as Python's $ would)
    ("progress", {"ref": "A" * 64}, "field 'ref' must be text matching ^[0-9a-f]{64}$"),
    ("progress", {"ref": "a" * 63}, "field 'ref' must be at least 64 characters"),
    ("accept", {"log": "g" * 64}, "field 'log' must be text matching"),
    ("endorse", {"ref": None}, "field 'ref' is required"),
    ("vouch", {"origin": "solidarity.palermo.example/log\n"}, "field 'origin' must be text matching"),
    ("vouch", {"origin": "palermo log"}, "field 'origin' must be text matching"),
    ("revoke", {"key": EXAMPLES["revoke"]["key"] + "\n"}, "field 'key' must be text matching"),
    ("revoke", {"key": "leipzig+cf54e46e+" + "A" * 10}, "field 'key' must be at least 54 characters"),
    ("revoke", {"key": "leip zig+cf54e46e+" + "A" * 44}, "field 'key' must be text matching"),
    ("revoke", {"key": "leipzig+CF54E46E+" + "A" * 44}, "field 'key' must be text matching"),
    ("vouch", {"url": "https://"}, "field 'url' must be at least 10 characters"),
]


@pytest.mark.parametrize(
    ("type_", "changes", "expected"),
    REJECTED,
    ids=[f"{t}-{'-'.join(c)}-{i}" for i, (t, c, _) in enumerate(REJECTED)],
)
def test_each_rule_rejects_naming_the_field(type_, changes, expected):
    message = rejects(type_, body(type_, **changes))
    assert message.startswith(f"{type_} body: {expected}"), message


ACCEPTED = [
    ("pledge", {"from_": "2028-02-29", "until": "2028-02-29"}),  # leap day; one-day period
    ("pledge", {"from_": "2000-02-29", "until": "2100-02-28"}),
    ("pledge", {"description": None}),
    ("report", {"period_start": "2026-06-30", "arrivals": 0, "in_reception": 0, "free_places": 0}),
    ("offer", {"unit": "EUR", "quantity": 10**9, "description": "line one\r\nline two\ttabbed"}),
    ("city", {"urls": ["http://[2001:db8::1]:8080/solidarity", "https://xn--zrich-kva.example/"]}),
    ("city", {"languages": ["de"] * 1, "name": "Stadt Zürich", "description": None}),
    ("statement", {"text": "x" * 20000, "language": None}),
    ("accept", {"quantity": None, "note": None}),
    ("progress", {"delivered": 0, "note": None}),
    ("city", {"urls": ["https://a.example/" + "x" * 482]}),
    ("city", {"urls": ["https://a.example/find?q=caf%C3%A9&x=$1#top", "https://a.example/a(b)[c]"]}),
]


@pytest.mark.parametrize(("type_", "changes"), ACCEPTED)
def test_edges_that_are_allowed(type_, changes):
    REGISTRY.validate(type_, 1, body(type_, **changes))


# --- hostile bodies --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, [], [1, 2], "pledge", 7, b"\x81\xa4kind", (), 1.5, object()])
def test_non_objects_are_rejected(value):
    assert rejects("pledge", value).startswith("pledge body: must be an object; got ")


HOSTILE = [
    ("huge string", "pledge", body("pledge", description="x" * 10_000_000), "at most 2000 characters; got 10000000"),
    ("huge unknown key", "pledge", {"k" * 1_000_000: 1}, "field 'kkkkkkkkkk"),
    ("huge integer", "pledge", body("pledge", places=10**5000), "got an integer of 16610 bits"),
    ("huge negative", "report", body("report", arrivals=-(10**5000)), "must be at least 0; got an integer of"),
    ("deep list in a field", "city", body("city", urls=deep_list(100_000)), f"nests deeper than {MAX_DEPTH}"),
    ("deep list in an unknown field", "pledge", body("pledge", junk=deep_list(100_000)), "nests deeper than"),
    ("deep dict", "pledge", {"a": {"a": {"a": {"a": {}}}}}, "field 'a' is not allowed"),
    ("set in an array", "city", body("city", languages=[{"de"}, {"de"}]), "field 'languages[0]' must hold JSON"),
    ("objects in an array", "city", body("city", languages=[{"a": 1}, {"a": 1}]), "field 'languages' must not rep"),
    ("dict for a string", "pledge", body("pledge", kind={"relocation": True}), "must be a string; got an object with 1 field"),
    ("list for an integer", "pledge", body("pledge", places=[120]), "must be an integer; got an array of 1"),
    ("int key", "pledge", {1: "relocation"}, "field names must be strings; got 1"),
    ("tuple key", "pledge", {("kind",): "relocation"}, "field names must be strings; got an array of 1 item"),
    ("nested int key", "city", body("city", urls=[{2**200: 1}]), "field names must be strings; got an integer"),
    ("nan", "pledge", body("pledge", places=float("nan")), "field 'places' must not be a float; got nan"),
    ("inf", "pledge", body("pledge", places=float("inf")), "must not be a float; got inf"),
    ("arbitrary object", "pledge", body("pledge", kind=object()), "field 'kind' must hold JSON data; got a object"),
    ("bytes key text", "statement", body("statement", text=b"\xff" * 100_000), "must be a string; got 100000 bytes"),
    ("control chars in key", "pledge", {"kind\x1b[2J": 1}, "field 'kind\\x1b[2J' is not allowed"),
]


@pytest.mark.parametrize(("type_", "value", "expected"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_hostile_bodies_give_schema_error_only(type_, value, expected):
    start = time.perf_counter()
    message = rejects(type_, value)
    assert expected in message
    assert time.perf_counter() - start < 1.0


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text(max_size=40)
    | st.binary(max_size=16)
    | st.dates().map(str)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)
odd_values = st.sets(st.integers(), max_size=2) | st.builds(object) | st.tuples(json_scalars)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    type_=st.sampled_from(sorted(EXAMPLES)),
    value=json_values | st.dictionaries(st.sampled_from(FIELDS), json_values | odd_values, max_size=8),
)
def test_random_bodies_give_schema_error_or_pass(type_, value):
    try:
        REGISTRY.validate(type_, 1, value)
    except SchemaError as exc:
        assert str(exc).startswith(f"{type_} body: ")
        assert len(str(exc)) < 400


@settings(max_examples=200, deadline=None)
@given(
    type_=st.sampled_from(sorted(EXAMPLES)),
    name=st.sampled_from(FIELDS),
    value=json_values | odd_values,
    data=st.data(),
)
def test_examples_with_one_field_replaced_give_schema_error_or_pass(type_, name, value, data):
    """Close to valid bodies reach the deeper rules (formats, cross-field checks) with junk."""
    candidate = body(type_)
    field = data.draw(st.sampled_from([*candidate, name]))
    candidate[field] = value
    try:
        REGISTRY.validate(type_, 1, candidate)
    except SchemaError as exc:
        message = str(exc)
        assert message.startswith(f"{type_} body: ") and len(message) < 400
        assert "field" in message
