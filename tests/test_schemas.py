"""The schema files themselves: every event type has one, each is complete, bounded and documented.

Like Datasette's documentation tests: adding an event type without a schema,
an example or its section in docs/events.md fails here, and so does editing a
schema without regenerating the docs (python -m schemas.docs).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocol.schema import DATE_ORDER, KEY_NAME_OF, SchemaRegistry
from schemas import SCHEMA_DIR, load_documents
from schemas.docs import DEFAULT_OUTPUT, main, render

ROOT = Path(__file__).resolve().parents[1]

#: The event types of protocol version 1 (the contract's table). A new type is
#: added here on purpose, together with its schema file.
EVENT_TYPES = {
    "city", "pledge", "offer", "request", "progress", "accept",
    "endorse", "retract", "report", "statement", "vouch", "revoke",
}  # fmt: skip

#: Longest free text per field name (contract: field conventions).
TEXT_LIMITS = {
    "description": 2000, "note": 2000, "text": 20000, "reason": 1000,
    "name": 200, "title": 200, "unit": 32,
}  # fmt: skip

DOCUMENTS = load_documents()
REGISTRY = SchemaRegistry(DOCUMENTS)
CASES = [pytest.param(key, doc, id=f"{key[0]}.v{key[1]}") for key, doc in DOCUMENTS.items()]


def _walk(schema: dict, path: str = ""):
    """Every (path, subschema) below a document's properties, including array items."""
    for name, prop in schema.get("properties", {}).items():
        yield f"{path}{name}", prop
        if "items" in prop:
            yield f"{path}{name}[]", prop["items"]


def test_every_event_type_has_a_schema():
    assert {type_ for type_, _ in DOCUMENTS} == EVENT_TYPES


def test_every_schema_file_is_loaded():
    # A misnamed file would be silently skipped by load_documents.
    files = sorted(p.name for p in SCHEMA_DIR.glob("*.json"))
    assert files == sorted(f"{t}.v{v}.json" for t, v in DOCUMENTS)


def test_load_documents_returns_fresh_copies():
    first = load_documents()
    first[("pledge", 1)]["properties"].clear()
    assert load_documents()[("pledge", 1)]["properties"]


@pytest.mark.parametrize(("key", "doc"), CASES)
def test_document_has_everything_the_docs_and_the_node_need(key, doc):
    type_, version = key
    assert doc["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert doc["$id"] == f"urn:solidarity-node:schema:{type_}.v{version}"
    assert doc["title"].strip() and doc["description"].strip()
    assert doc["type"] == "object"
    assert doc["additionalProperties"] is False
    assert set(doc["required"]) <= set(doc["properties"])
    for path, prop in _walk(doc):
        assert prop.get("description", "").strip(), f"{path} has no description"
    assert isinstance(doc["examples"], list) and doc["examples"]


@pytest.mark.parametrize(("key", "doc"), CASES)
def test_examples_validate(key, doc):
    for example in doc["examples"]:
        REGISTRY.validate(*key, example)


@pytest.mark.parametrize(("key", "doc"), CASES)
def test_every_value_is_bounded(key, doc):
    """Hostile bodies are cut short by length checks before any pattern runs, and bodies stay flat."""
    for path, prop in _walk(doc):
        kind = prop["type"]
        assert kind in ("string", "integer", "array"), f"{path}: {kind} (no floats, no nested objects)"
        if kind == "string" and "enum" not in prop:
            assert "maxLength" in prop and "minLength" in prop, path
        if kind == "integer":
            assert prop["minimum"] >= 0 and prop["maximum"] <= 10**9, path
        if kind == "array":
            assert prop["maxItems"] <= 24 and prop["items"]["type"] != "array", path
        if "pattern" in prop:
            assert prop["pattern"].startswith("^") and prop["pattern"].endswith("$"), path


@pytest.mark.parametrize(("key", "doc"), CASES)
def test_field_conventions(key, doc):
    props = doc["properties"]
    for name, prop in props.items():
        if name in TEXT_LIMITS:
            assert prop["maxLength"] == TEXT_LIMITS[name], name
        if name in ("from", "until", "period_start", "period_end"):
            assert prop["format"] == "date", name
        if name in ("ref", "log"):
            assert prop["pattern"] == "^[0-9a-f]{64}$", name
    # The rules protocol.schema checks across fields are stated where readers look.
    for earlier, later in DATE_ORDER:
        if later in props:
            assert earlier in props and f"`{earlier}`" in props[later]["description"]
    for origin, key_field in KEY_NAME_OF:
        if origin in props and key_field in props:
            assert f"`{key_field}`" in props[origin]["description"]


def test_docs_are_generated_from_the_schemas():
    committed = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    assert committed == render(DOCUMENTS), "docs/events.md is stale: run python -m schemas.docs"


@pytest.mark.parametrize(("key", "doc"), CASES)
def test_every_type_is_documented(key, doc):
    docs = (ROOT / "docs" / "events.md").read_text(encoding="utf-8")
    type_, version = key
    section = docs.split(f"\n## {type_} v{version}\n", 1)[1].split("\n## ", 1)[0]
    assert doc["description"] in section
    for name in doc["properties"]:
        assert f"| `{name}` |" in section
    assert json.dumps(doc["examples"][0], indent=2, ensure_ascii=False) in section


def test_docs_command_writes_and_checks(tmp_path, capsys):
    out = tmp_path / "events.md"
    assert main(["--check", str(out)]) == 1
    assert main([str(out)]) == 0
    assert main(["--check", str(out)]) == 0
    out.write_text(out.read_text(encoding="utf-8") + "edited by hand\n", encoding="utf-8")
    assert main(["--check", str(out)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert DEFAULT_OUTPUT == ROOT / "docs" / "events.md"


def test_docs_escape_table_cells():
    doc = json.loads(json.dumps(DOCUMENTS[("pledge", 1)]))
    doc["properties"]["kind"]["description"] = "a | b\nc"
    text = render({("pledge", 1): doc})
    assert "a \\| b c" in text
