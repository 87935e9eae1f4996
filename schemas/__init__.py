"""The event-type schemas: one JSON Schema (draft 2020-12) file per type and version.

The files are data, named ``<type>.v<version>.json``, for example ``pledge.v1.json``::

    {"$schema": "https://json-schema.org/draft/2020-12/schema",
     "$id": "urn:solidarity-node:schema:pledge.v1", "title": "Pledge",
     "description": "A promise to receive ...", "type": "object",
     "additionalProperties": false, "required": ["kind", "places", "from", "until"],
     "properties": {"kind": {"description": "...", "type": "string", "enum": [...]}, ...},
     "examples": [{"kind": "relocation", "places": 120, "from": "2026-03-01", ...}]}

This package only reads them; ``protocol.schema.SchemaRegistry`` compiles them
(``protocol/`` never reads files, so the node and the tests hand it these
documents), and ``python -m schemas.docs`` renders ``docs/events.md`` from them.
"""

from __future__ import annotations

import importlib.resources
import json
import re
from pathlib import Path

__all__ = ["SCHEMA_DIR", "load_documents"]

#: Where the schema files live in a source checkout (for tools such as the docs
#: generator); code that only needs the documents uses :func:`load_documents`,
#: which also works when the package is installed as a zip.
SCHEMA_DIR: Path = Path(__file__).resolve().parent

# Type names follow the entry's type rule ([a-z][a-z0-9-]{0,31}); versions are 1..65535.
_FILE_NAME = re.compile(r"([a-z][a-z0-9-]{0,31})\.v([1-9][0-9]{0,4})\.json")


def load_documents() -> dict[tuple[str, int], dict]:
    """Every schema document shipped with this package, keyed by (type, version).

    Read through importlib.resources so an installed wheel works the same as
    a checkout. Returns fresh dicts on each call: callers may keep or change
    them without affecting anyone else.
    """
    documents: dict[tuple[str, int], dict] = {}
    for resource in importlib.resources.files(__name__).iterdir():
        match = _FILE_NAME.fullmatch(resource.name)
        if match is None:
            continue
        version = int(match.group(2))
        if version > 65535:
            continue
        documents[(match.group(1), version)] = json.loads(resource.read_text(encoding="utf-8"))
    return dict(sorted(documents.items()))
