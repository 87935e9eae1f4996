"""JSON Schemas of the public read API's answers, for its OpenAPI 3.1 document.

These are the shapes ``docs/api.md`` describes, written once: ``node.api_routes``
builds ``/v1/openapi.json`` from them and derives each list's CSV columns
from its row schema, and a schemathesis test checks the live answers against
them. Rows are closed (``additionalProperties: false``, every member
required) so that any drift between code and document fails that test.
"""

from __future__ import annotations

from typing import Any

from node.queries import EVENT_STATUSES, ITEM_STATUSES, MEMBERSHIP_STATES

HEX64 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
DATE = {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
INT = {"type": "integer"}
COUNT = {"type": "integer", "minimum": 0}
STR = {"type": "string"}
BOOL = {"type": "boolean"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema or null (OpenAPI 3.1 / JSON Schema 2020-12 spelling)."""
    out = dict(schema)
    t = out.get("type")
    if isinstance(t, str):
        out["type"] = [t, "null"]
    elif isinstance(t, list):
        out["type"] = [*t, "null"]
    else:
        return {"anyOf": [schema, {"type": "null"}]}
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def closed(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An object with exactly these members (all required, in this order)."""
    return {"type": "object", "additionalProperties": False, "required": list(properties),
            "properties": properties, **extra}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


_CITY_FIELDS = {"log_id": HEX64, "city": nullable(STR), "country": nullable(STR)}

COUNTS = closed({
    "events": COUNT, "valid": COUNT, "invalid": COUNT, "unknown": COUNT, "erased": COUNT,
    "by_type": {"type": "object", "additionalProperties": COUNT},
})

CITY = closed({
    "log_id": HEX64,
    "origin": STR,
    "verifier_key": STR,
    "name": nullable(STR),
    "country": nullable(STR),
    "urls": {"type": "array", "items": STR},
    "contact": nullable(STR),
    "languages": {"type": "array", "items": STR},
    "membership": {"type": "string", "enum": list(MEMBERSHIP_STATES)},
    "own": BOOL,
    "size": COUNT,
    "checkpoint_size": nullable(COUNT),
    "updated_ms": INT,
    "last_event_ms": nullable(INT),
    "counts": COUNTS,
})

ITEM = closed({
    "id": HEX64,
    "type": {"type": "string", "enum": ["pledge", "offer", "request"]},
    **_CITY_FIELDS,
    "seq": COUNT,
    "time_ms": INT,
    "kind": STR,
    "quantity": COUNT,
    "unit": STR,
    "from": DATE,
    "until": DATE,
    "description": nullable(STR),
    "delivered": COUNT,
    "accepted": COUNT,
    "accepts": COUNT,
    "oversubscribed": BOOL,
    "status": {"type": "string", "enum": list(ITEM_STATUSES)},
    "retraction": nullable(closed({"id": HEX64, "reason": nullable(STR)})),
    "equivocating": BOOL,
})

ACCEPT = closed({
    "id": HEX64,
    **_CITY_FIELDS,
    "seq": COUNT,
    "time_ms": INT,
    "quantity": nullable(COUNT),
    "resolved": BOOL,
    "target": closed({
        "log_id": STR,
        "id": STR,
        "city": nullable(STR),
        "type": nullable(STR),
        "status": nullable({"type": "string", "enum": list(EVENT_STATUSES)}),
        "kind": nullable(STR),
        "quantity": nullable(COUNT),
        "unit": nullable(STR),
    }),
    "retracted": BOOL,
    "equivocating": BOOL,
})

REPORT = closed({
    "id": HEX64,
    **_CITY_FIELDS,
    "seq": COUNT,
    "time_ms": INT,
    "period_start": DATE,
    "period_end": DATE,
    "arrivals": COUNT,
    "in_reception": COUNT,
    "free_places": COUNT,
    "retracted": BOOL,
    "equivocating": BOOL,
})

ENDORSEMENT = closed({
    "id": HEX64, **_CITY_FIELDS, "time_ms": INT, "equivocating": BOOL,
})

STATEMENT = closed({
    "id": HEX64,
    **_CITY_FIELDS,
    "seq": COUNT,
    "time_ms": INT,
    "title": STR,
    "text": STR,
    "retracted": BOOL,
    "equivocating": BOOL,
    "endorsements": {"type": "array", "items": ref("Endorsement")},
})

INVALID = closed({
    "id": HEX64,
    **_CITY_FIELDS,
    "seq": COUNT,
    "type": nullable(STR),
    "time_ms": nullable(INT),
    "status": {"type": "string", "enum": ["invalid", "unknown", "erased"]},
    "reason": nullable(STR),
    "equivocating": BOOL,
})

BY_UNIT = closed({"unit": STR, "count": COUNT, "quantity": COUNT, "delivered": COUNT, "accepted": COUNT})

BY_STATUS = closed({"open": COUNT, "fulfilled": COUNT, "expired": COUNT})

SUMMARY = closed({
    "as_of": DATE,
    "network_digest": nullable(STR),
    "cities": closed({
        "total": COUNT,
        "by_membership": {"type": "object", "additionalProperties": COUNT,
                          "propertyNames": {"enum": list(MEMBERSHIP_STATES)}},
    }),
    "equivocating": {"type": "array", "items": HEX64},
    "pledges": closed({"count": COUNT, "by_status": BY_STATUS, "places": COUNT, "delivered": COUNT}),
    "offers": closed({"count": COUNT, "by_status": BY_STATUS}),
    "requests": closed({"count": COUNT, "by_status": BY_STATUS}),
    "accepts": closed({"count": COUNT, "resolved": COUNT}),
    "statements": COUNT,
    "invalid": COUNT,
    "by_country": {"type": "array", "items": closed({
        "country": nullable(STR), "cities": COUNT, "pledges": COUNT, "places_pledged": COUNT,
        "places_delivered": COUNT, "offers": COUNT, "requests": COUNT,
    })},
    "by_category": {"type": "array", "items": closed({
        "type": {"type": "string", "enum": ["pledge", "offer", "request"]}, "category": STR, "unit": STR,
        "count": COUNT, "quantity": COUNT, "delivered": COUNT, "accepted": COUNT,
    })},
    "pledges_by_city": {"type": "array", "items": closed({
        **{"log_id": HEX64, "city": nullable(STR), "country": nullable(STR)}, "pledged": COUNT, "delivered": COUNT,
    })},
    "offers_vs_requests": {"type": "array", "items": closed({
        "category": STR, "unit": STR, "offered": COUNT, "requested": COUNT, "offers": COUNT, "requests": COUNT,
        "accepted_offers": COUNT, "accepted_requests": COUNT,
    })},
})

EVENT = closed({
    "id": HEX64,
    "log_id": HEX64,
    "origin": STR,
    "verifier_key": STR,
    "city": nullable(STR),
    "seq": COUNT,
    "type": nullable(STR),
    "time_ms": nullable(INT),
    "status": {"type": "string", "enum": list(EVENT_STATUSES)},
    "reason": nullable(STR),
    "entry": closed({
        "base64": STR,
        "fields": nullable(closed({
            "version": INT, "network": STR, "origin": STR, "seq": COUNT, "time_ms": INT, "type": STR,
            "schema": INT, "body_hash": HEX64, "body_size": COUNT,
        })),
    }),
    "body": nullable({"type": "object"}),
    "proof": closed({"leaf_index": COUNT, "tree_size": COUNT, "inclusion_path": {"type": "array", "items": HEX64}}),
    "checkpoint": STR,
})

CITY_DETAIL = closed({
    **CITY["properties"],
    "latest_report": nullable(ref("Report")),
    "evidence": nullable(closed({"found_ms": INT, "url": STR})),
})

PROBLEM = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": STR,
        "title": STR,
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": STR,
        "invalid-params": {"type": "array", "items": closed({"name": STR, "reason": STR})},
    },
}

LOG = closed({
    "log_id": HEX64, "origin": STR, "verifier_key": STR, "size": COUNT, "root": STR, "prefix": STR,
    "own": BOOL, "updated_ms": INT,
})

#: Row schemas of the lists, by component name.
ROWS = {
    "City": CITY,
    "Item": ITEM,
    "Accept": ACCEPT,
    "Report": REPORT,
    "Statement": STATEMENT,
    "Invalid": INVALID,
}

COMPONENTS: dict[str, Any] = {
    **ROWS,
    "Counts": COUNTS,
    "Endorsement": ENDORSEMENT,
    "CityDetail": CITY_DETAIL,
    "Summary": SUMMARY,
    "Event": EVENT,
    "Problem": PROBLEM,
    "Log": LOG,
}


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` to its component (one level is all these schemas use)."""
    if "$ref" in schema:
        return COMPONENTS[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def csv_columns(schema: dict[str, Any], prefix: str = "") -> list[tuple[str, tuple[str, ...]]]:
    """Columns of a row schema, flattened: nested objects become ``parent_child`` columns.

    Returns (column name, path into the row) pairs in the schema's order.
    """
    out = []
    for name, sub in schema["properties"].items():
        sub = resolve(sub)
        if "properties" in sub:
            out.extend((f"{name}_{col}", (name, *path)) for col, path in csv_columns(sub))
        else:
            out.append((name, (name,)))
    return out
