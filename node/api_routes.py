"""The public read-only query API: ``/v1/cities``, ``/v1/pledges``, ... (see ``docs/api.md``).

Handlers only parse and answer; the SQL lives in ``node.queries`` and runs on
a read-only store off the event loop (``read_db``, time-limited), except one
event with its proof: a few reads by key and bounded hashing, cheaper on the
loop's own store than a hop to a reader thread. What every endpoint shares is
done once here:

- parameters are declared per endpoint (:class:`Param`): anything not
  declared, repeated or malformed is refused with a 400 problem naming each
  parameter (``invalid-params``, as in RFC 9457's example), never a 500;
- lists page by keyset: ``next`` is base64url of the last row's sort key::

      /v1/pledges?limit=2  ->  {"rows": [...], "next": "WzE3NjcyMjU2MDAwMDAsIjlkZDciXQ", "next_url": ...}

- ``format=csv`` answers the same rows flattened (columns derived from the
  row schema in ``node.api_schema``), the next page in a ``Link`` header;
- a strong ETag (SHA-256 of the body) answers ``If-None-Match`` with 304;
- encoded answers are kept (``API_RESPONSES``, a :class:`~node.queries.Memo`)
  per raw path and query, day and database state (SQLite's ``data_version``,
  read per request: any commit, of this process or another, changes it), so a
  repeated request costs a lookup and an answer is never served after a change;
- aggregates over the whole view (list totals, the summary) are kept per view
  state (``API_MEMO``), so the pages of one list share them; proofs keep tile
  hashes (``API_TILES``) and verified checkpoints (``API_CHECKPOINTS``);
- CORS: every answer allows any origin, and ``OPTIONS`` answers preflights.

The same declarations build ``/v1/openapi.json``.
"""

from __future__ import annotations

import base64
import binascii
import csv
import datetime as dt
import hashlib
import io
import json
import logging
import re
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import urlencode

import msgspec
from aiohttp import web

from node import api_schema, queries
from node.context import FEDERATION, LOOP_STORE, METRICS, WATCHER, read_db
from node.errors import BadRequest, Busy
from node.store import Store

log = logging.getLogger(__name__)

CACHE = "public, max-age=5"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
#: CSV is for spreadsheets: a whole table at once, up to this many rows.
CSV_LIMIT = 10_000

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "ETag, Link",
}
PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Allow-Headers": "If-None-Match",
    "Access-Control-Max-Age": "86400",
}

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_MS = re.compile(r"^[0-9]{1,15}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_TYPE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_DAY_MS = 86_400_000


class InvalidParams(BadRequest):
    """Query parameters that are unknown, repeated or malformed; each one is named."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in problems))


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


# -- parameter parsers (raise ValueError with the reason) ------------------------------


def _log_id(value: str) -> str:
    if not _HEX64.match(value):
        raise ValueError(f"expected a log id (64 lowercase hex digits), got {_shown(value)}")
    return value


def _country(value: str) -> str:
    if not _COUNTRY.match(value):
        raise ValueError(f"expected an ISO 3166-1 alpha-2 code in capitals, e.g. DE, got {_shown(value)}")
    return value


def _date(value: str) -> dt.date:
    try:
        if not _DATE.match(value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"expected a date YYYY-MM-DD that exists, got {_shown(value)}") from None


def _as_of(value: str) -> str:
    return _date(value).isoformat()


def _day_ms(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days * _DAY_MS


def _time(value: str, *, end: bool) -> int:
    if _MS.match(value):
        return int(value)
    try:
        day = _date(value)
    except ValueError:
        raise ValueError(
            f"expected milliseconds since 1970 or a date YYYY-MM-DD, got {_shown(value)}"
        ) from None
    return _day_ms(day) + (_DAY_MS - 1 if end else 0)


def _since(value: str) -> int:
    return _time(value, end=False)


def _until(value: str) -> int:
    return _time(value, end=True)


def _bool(value: str) -> bool:
    if value not in ("true", "false"):
        raise ValueError(f"expected true or false, got {_shown(value)}")
    return value == "true"


def _enum(*choices: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {_shown(value)}")
        return value

    return parse


def _type(value: str) -> str:
    if not _TYPE.match(value):
        raise ValueError(f"expected an event type such as pledge, got {_shown(value)}")
    return value


@dataclass(frozen=True, slots=True)
class Param:
    """A query parameter: its name, the ``Filters`` field it sets, its parser and OpenAPI schema."""

    name: str
    target: str
    parse: Callable[[str], Any]
    schema: dict[str, Any]
    description: str


def _p(name: str, parse: Callable[[str], Any], schema: dict[str, Any], description: str,
       target: str | None = None) -> Param:
    return Param(name, target or name, parse, schema, description)


_TIME_SCHEMA = {"type": "string", "pattern": "^([0-9]{1,15}|[0-9]{4}-[0-9]{2}-[0-9]{2})$"}
P_CITY = _p("city", _log_id, api_schema.HEX64, "only this city's entries (its log id)")
P_COUNTRY = _p("country", _country, {"type": "string", "pattern": "^[A-Z]{2}$"},
               "ISO 3166-1 alpha-2 code of the city's country")
P_SINCE = _p("since", _since, _TIME_SCHEMA,
             "author time from (inclusive): milliseconds, or a date (from the start of that UTC day)", "since_ms")
P_UNTIL = _p("until", _until, _TIME_SCHEMA,
             "author time to (inclusive): milliseconds, or a date (to the end of that UTC day)", "until_ms")
P_AS_OF = _p("as_of", _as_of, {"type": "string", "format": "date"},
             "the day statuses are computed for (default: today, UTC)")
_PLEDGE_KINDS = ("relocation", "resettlement", "unaccompanied-minors", "family-reunification", "other")
_CATEGORIES = ("reception-places", "housing", "staff", "training", "expertise", "interpretation",
               "equipment", "funding", "other")


def _enum_param(name: str, choices: tuple[str, ...], description: str, target: str | None = None) -> Param:
    return _p(name, _enum(*choices), {"type": "string", "enum": list(choices)}, description, target)


def _bool_param(name: str, description: str) -> Param:
    return _p(name, _bool, {"type": "string", "enum": ["true", "false"]}, description)


P_ITEM_STATUS = _enum_param("status", queries.ITEM_STATUSES, "status as of as_of")
P_OVER = _bool_param("oversubscribed", "only items whose accepted quantity exceeds their quantity (true), or not")


@dataclass(frozen=True, slots=True, kw_only=True)
class ListEndpoint:
    """One list: its path, filters, the query and the shape of its sort key."""

    path: str
    name: str
    summary: str
    params: tuple[Param, ...]
    query: Callable[[Store, queries.Filters, tuple | None, int, Any, queries.Memo], queries.Page]
    key: tuple[str, ...]  # "int" / "hex" per part of the sort key
    row: str  # component name of the row schema
    extra: dict[str, Any] = field(default_factory=dict)  # extra answer members (OpenAPI)
    needs_membership: bool = False


def _items_query(type_: str):
    def query(store, f, after, limit, _membership, memo):
        return queries.items(store, type_, f, after, limit, memo)

    return query


def _plain(fn):
    def query(store, f, after, limit, _membership, _memo):
        return fn(store, f, after, limit)

    return query


def _cities(store, f, after, limit, membership, _memo):
    return queries.cities(store, f, after, limit, membership)


_ITEM_EXTRA = {
    "as_of": api_schema.DATE,
    "totals": api_schema.closed({
        "items": api_schema.COUNT, "counted": api_schema.COUNT,
        "by_unit": {"type": "array", "items": api_schema.BY_UNIT},
    }),
}

LISTS = (
    ListEndpoint(
        path="/v1/cities", name="cities", summary="Every city log this node holds",
        params=(P_COUNTRY, _enum_param("membership", queries.MEMBERSHIP_STATES, "membership state")),
        query=_cities, key=("hex",), row="City", needs_membership=True,
    ),
    ListEndpoint(
        path="/v1/pledges", name="pledges", summary="Pledges, with delivery, accepts and status",
        params=(P_CITY, P_COUNTRY, P_SINCE, P_UNTIL, P_ITEM_STATUS,
                _enum_param("kind", _PLEDGE_KINDS, "the pledge's programme"), P_OVER, P_AS_OF),
        query=_items_query("pledge"), key=("int", "hex"), row="Item", extra=_ITEM_EXTRA,
    ),
    ListEndpoint(
        path="/v1/offers", name="offers", summary="Offers, with delivery, accepts and status",
        params=(P_CITY, P_COUNTRY, P_SINCE, P_UNTIL, P_ITEM_STATUS,
                _enum_param("category", _CATEGORIES, "the offer's category", "kind"), P_OVER, P_AS_OF),
        query=_items_query("offer"), key=("int", "hex"), row="Item", extra=_ITEM_EXTRA,
    ),
    ListEndpoint(
        path="/v1/requests", name="requests", summary="Requests, with accepts and status",
        params=(P_CITY, P_COUNTRY, P_SINCE, P_UNTIL, P_ITEM_STATUS,
                _enum_param("category", _CATEGORIES, "the request's category", "kind"), P_OVER, P_AS_OF),
        query=_items_query("request"), key=("int", "hex"), row="Item", extra=_ITEM_EXTRA,
    ),
    ListEndpoint(
        path="/v1/accepts", name="accepts", summary="Accepts, linked to the offer or request they take up",
        params=(P_CITY, P_COUNTRY, _p("target_city", _log_id, api_schema.HEX64,
                                      "only accepts of entries in this log"),
                _bool_param("resolved", "whether the target entry has been received"), P_SINCE, P_UNTIL),
        query=_plain(queries.accepts), key=("int", "hex"), row="Accept",
    ),
    ListEndpoint(
        path="/v1/reports", name="reports", summary="Reception figures: history, or each city's latest",
        params=(P_CITY, P_COUNTRY, P_SINCE, P_UNTIL,
                _bool_param("latest", "only each city's latest report (true), or only older ones (false)")),
        query=_plain(queries.reports), key=("int", "hex"), row="Report",
    ),
    ListEndpoint(
        path="/v1/statements", name="statements", summary="Statements with the cities that endorsed them",
        params=(P_CITY, P_COUNTRY, P_SINCE, P_UNTIL),
        query=_plain(queries.statements), key=("int", "hex"), row="Statement",
    ),
    ListEndpoint(
        path="/v1/invalid", name="invalid", summary="Authentic entries left out of every total, with why",
        params=(P_CITY, P_COUNTRY, P_SINCE, P_UNTIL,
                _enum_param("status", ("invalid", "unknown", "erased"), "why it is left out"),
                _p("type", _type, {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,39}$"}, "event type")),
        query=_plain(queries.invalid), key=("int", "hex"), row="Invalid",
    ),
)

P_FORMAT = _enum_param("format", ("json", "csv"), "json (default) or csv")
P_LIMIT_DOC = {"type": "integer", "minimum": 1, "maximum": CSV_LIMIT}
P_NEXT_DOC = {"type": "string", "maxLength": 200}


# -- parsing -------------------------------------------------------------------------


def _parse(request: web.Request, allowed: tuple[Param, ...], *, paged: bool) -> tuple[dict[str, Any], list]:
    """Parse the query string against ``allowed``; collect every problem before refusing."""
    problems: list[tuple[str, str]] = []
    values: dict[str, Any] = {}
    by_name = {p.name: p for p in allowed}
    names = list(by_name) + (["limit", "next", "format"] if paged else [])
    seen: set[str] = set()
    for name in request.query:
        if name in seen:
            continue
        seen.add(name)
        if name not in names:
            problems.append((name[:40], f"unknown parameter; this endpoint takes {', '.join(names) or 'none'}"))
        elif len(request.query.getall(name)) > 1:
            problems.append((name, "given more than once"))
    for name, param in by_name.items():
        raw = request.query.get(name)
        if raw is None or (name, "given more than once") in problems:
            continue
        try:
            values[param.target] = param.parse(raw)
        except ValueError as exc:
            problems.append((name, str(exc)))
    if paged:
        fmt = request.query.get("format", "json")
        if fmt not in ("json", "csv"):
            problems.append(("format", f"expected json or csv, got {_shown(fmt)}"))
            fmt = "json"
        values["format"] = fmt
        cap, default = (CSV_LIMIT, CSV_LIMIT) if fmt == "csv" else (MAX_LIMIT, DEFAULT_LIMIT)
        raw = request.query.get("limit")
        values["limit"] = default
        if raw is not None:
            if re.fullmatch(r"[0-9]{1,6}", raw) and 1 <= int(raw) <= cap:
                values["limit"] = int(raw)
            else:
                problems.append(("limit", f"expected an integer from 1 to {cap}, got {_shown(raw)}"))
    return values, problems


def encode_token(key: tuple) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode().rstrip("=")


def decode_token(token: str, shape: tuple[str, ...]) -> tuple:
    """The sort key in a ``next`` token, checked against the list's key shape (ValueError if not)."""
    bad = ValueError(f"not a token this list gave out: {_shown(token)}")
    if len(token) > 200:
        raise bad
    try:
        key = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(key, list) or len(key) != len(shape):
        raise bad
    for part, kind in zip(key, shape, strict=True):
        if kind == "int" and not (type(part) is int and -1 <= part < 2**63):
            raise bad
        if kind == "hex" and not (isinstance(part, str) and _HEX64.match(part)):
            raise bad
    return tuple(key)


def _today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


# -- answering -----------------------------------------------------------------------


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # Weak comparison (RFC 9110 13.1.2): W/"x" matches "x".
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


@dataclass(frozen=True, slots=True)
class Answer:
    """An encoded answer: what the response cache keeps and every request of it is sent."""

    body: bytes
    etag: str
    headers: dict[str, str]

    def respond(self, request: web.Request) -> web.Response:
        if _etag_matches(request.headers.get("If-None-Match"), self.etag):
            return web.Response(status=304, headers={"ETag": self.etag, "Cache-Control": CACHE})
        return web.Response(body=self.body, headers=self.headers)


def _answer(body: bytes, content_type: str, headers: dict[str, str] | None = None) -> Answer:
    etag = '"' + hashlib.sha256(content_type.encode() + b"\n" + body).hexdigest()[:32] + '"'
    return Answer(body, etag, {"Content-Type": content_type, "ETag": etag, "Cache-Control": CACHE, **(headers or {})})


#: msgspec (already a dependency, for bodies) writes the same bytes as ``json.dumps(payload,
#: ensure_ascii=False, separators=(",", ":"))`` for every answer here (compared over 5,000
#: events, 500-row pages of every list and the summary), ~8x faster on a page of rows and
#: ~10% less CPU per event answer.
_JSON = msgspec.json.Encoder()


def json_answer(payload: Any) -> Answer:
    return _answer(_JSON.encode(payload), "application/json; charset=utf-8")


#: Text starting with these is run as a formula by spreadsheet programs (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Free text comes from other cities: quote it so a spreadsheet shows it instead of running it.
    return "'" + text if text.startswith(_FORMULA_START) else text


def _dig(row: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = row
    for part in path:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def csv_text(rows: list[dict[str, Any]], row_schema: dict[str, Any]) -> str:
    columns = api_schema.csv_columns(row_schema)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 line ends
    writer.writerow([name for name, _ in columns])
    for row in rows:
        writer.writerow([_cell(_dig(row, path)) for _, path in columns])
    return out.getvalue()


def _next_url(request: web.Request, token: str) -> str:
    pairs = [(k, v) for k, v in request.query.items() if k != "next"] + [("next", token)]
    return f"{request.path}?{urlencode(pairs)}"


def _in_snapshot(store: Store, fn: Callable[[Store], Any]) -> Any:
    """Every statement of one answer in one WAL snapshot, so a page and its totals agree
    even while the view is being updated."""
    try:
        with store.snapshot():
            return fn(store)
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            raise Busy("the network view is being built; try again in a few seconds") from None
        raise


async def _read(request: web.Request, fn: Callable[[Store], Any]) -> Any:
    """``fn`` in one snapshot, off the event loop (``read_db``, time-limited)."""
    return await read_db(request.app, lambda store: _in_snapshot(store, fn))


def _read_now(request: web.Request, fn: Callable[[Store], Any]) -> Any:
    """``fn`` in one snapshot on the event loop's own read-only store: for answers made of
    a few reads by key and bounded work, where a hop to a reader thread costs more than
    the reads (see ``event``)."""
    return _in_snapshot(request.app[LOOP_STORE], fn)


def _membership(request: web.Request, store: Store) -> Any | None:
    federation = request.app.get(FEDERATION)
    return federation.membership(store) if federation is not None else None


def list_handler(endpoint: ListEndpoint) -> Callable[[web.Request], Awaitable[Answer]]:
    async def handler(request: web.Request) -> Answer:
        values, problems = _parse(request, endpoint.params, paged=True)
        after = None
        token = request.query.get("next")
        if token is not None and not any(name == "next" for name, _ in problems):
            try:
                after = decode_token(token, endpoint.key)
            except ValueError as exc:
                problems.append(("next", str(exc)))
        if problems:
            raise InvalidParams(problems)
        fmt, limit = values.pop("format"), values.pop("limit")
        as_of = values.pop("as_of", None) or _today()
        filters = replace(queries.Filters(as_of=as_of), **values)

        memo = request.app[API_MEMO]

        def read(store: Store) -> queries.Page:
            membership = _membership(request, store) if endpoint.needs_membership else None
            return endpoint.query(store, filters, after, limit, membership, memo)

        page = await _read(request, read)
        next_token = encode_token(page.last_key) if page.last_key is not None else None
        next_url = _next_url(request, next_token) if next_token else None
        if fmt == "csv":
            headers = {"Content-Disposition": f'attachment; filename="{endpoint.name}.csv"'}
            if next_url:
                headers["Link"] = f'<{next_url}>; rel="next"'
            text = csv_text(page.rows, api_schema.ROWS[endpoint.row])
            return _answer(text.encode("utf-8"), "text/csv; charset=utf-8", headers)
        payload: dict[str, Any] = {}
        if "as_of" in endpoint.extra:
            payload["as_of"] = as_of
        payload.update(rows=page.rows, next=next_token, next_url=next_url, **page.extra)
        return json_answer(payload)

    return handler


def _path_id(request: web.Request, name: str, what: str) -> str:
    value = request.match_info[name]
    if not _HEX64.match(value):
        raise InvalidParams([(name, f"expected {what} (64 lowercase hex digits), got {_shown(value)}")])
    return value


async def city_detail(request: web.Request) -> Answer:
    _, problems = _parse(request, (), paged=False)
    log_id = _path_id(request, "log_id", "a log id")
    if problems:
        raise InvalidParams(problems)
    row = await _read(request, lambda s: queries.city(s, log_id, _membership(request, s)))
    return json_answer(row)


async def summary(request: web.Request) -> Answer:
    values, problems = _parse(request, (P_AS_OF,), paged=False)
    if problems:
        raise InvalidParams(problems)
    as_of = values.get("as_of") or _today()
    federation = request.app.get(FEDERATION)
    memo = request.app[API_MEMO]

    def compute(store: Store) -> dict[str, Any]:
        membership = federation.membership(store) if federation is not None else None
        out = queries.summary(store, as_of, membership)
        if federation is not None:
            out["network_digest"] = federation.network_digest(store)
        return out

    # Membership and the digest follow the logs and evidence held, which the view state covers.
    return json_answer(await _read(request, lambda s: memo.get(s, ("summary", as_of), lambda: compute(s))))


async def event(request: web.Request) -> Answer:
    _, problems = _parse(request, (), paged=False)
    entry_id = _path_id(request, "id", "an entry id")
    if problems:
        raise InvalidParams(problems)
    tiles, checkpoints = request.app[API_TILES], request.app[API_CHECKPOINTS]
    # On the loop: one read by key, one of 16 leaves and at most ~30 hashes once the
    # proof's tiles are kept; a tile met for the first time adds one read of its 256
    # hashes and 255 hashes (~0.3 ms), per level of the tree, once. A hop to a reader
    # thread cost more than all of that (measured with kept tiles: ~400 -> ~200 us of CPU
    # per event, the GIL handed back and forth between the loop and the readers).
    return json_answer(_read_now(request, lambda s: queries.event(s, entry_id, tiles=tiles, checkpoints=checkpoints)))


async def openapi(request: web.Request) -> Answer:
    _, problems = _parse(request, (), paged=False)
    if problems:
        raise InvalidParams(problems)
    return json_answer(openapi_document())


async def preflight(request: web.Request) -> web.Response:
    return web.Response(status=204, headers=PREFLIGHT)


# -- errors and CORS -----------------------------------------------------------------


def _endpoint(handler: Callable[[web.Request], Awaitable[Answer]]):
    """Answer from the response cache when it holds this request's answer; else run the
    handler and keep what it answers. Answer InvalidParams here, naming each parameter;
    other errors go to the app's middleware (errors are never kept)."""

    async def endpoint(request: web.Request) -> web.Response:
        cache = request.app[API_RESPONSES]
        # The raw path and query as sent, the day (the default as_of) and the database's
        # state, read before the handler's snapshot: an answer is never kept under a state
        # older than the one it was computed from (see docs/operating.md).
        key = (request.raw_path, _today(), request.app[WATCHER].state())
        answer = cache.peek(key)
        if answer is None:
            try:
                answer = await handler(request)
            except InvalidParams as exc:
                from node.app import problem  # the one problem shape; imported late (node.app imports us)

                metrics = request.app.get(METRICS)
                if metrics is not None:
                    metrics.errors.labels(type(exc).__name__).inc()
                return problem(
                    exc.status, exc.title, str(exc),
                    **{"invalid-params": [{"name": n, "reason": r} for n, r in exc.problems]},
                )
            cache.put(key, answer, len(answer.body) + len(key[0]) + ANSWER_OVERHEAD)
        return answer.respond(request)

    return endpoint


API_PATHS = web.AppKey("api_paths", frozenset)
#: Aggregates over the whole view (list totals, the summary), per view state.
API_MEMO = web.AppKey("api_memo", queries.Memo)
#: Encoded answers, per raw path and query, day and database state.
API_RESPONSES = web.AppKey("api_responses", queries.Memo)
#: Hashes inside tiles, for inclusion proofs (``node.queries._TileReader``).
API_TILES = web.AppKey("api_tiles", queries.Memo)
#: Checkpoints whose signature was verified, per signed note and key.
API_CHECKPOINTS = web.AppKey("api_checkpoints", queries.Memo)

#: Bounds of the response cache: answers kept, and the bytes they may hold in all
#: (an answer over an eighth of that, e.g. a large CSV, is not kept).
RESPONSE_CACHE_ANSWERS = 4096
RESPONSE_CACHE_BYTES = 64 * 2**20
#: What one kept answer costs besides its body (key, headers, bookkeeping), roughly.
ANSWER_OVERHEAD = 600
#: Tiles whose inner hashes are kept: ~1.2 KiB per full tile of 256 entries with its key,
#: so the byte bound holds about 7 million entries' worth.
TILE_CACHE_TILES = 65_536
TILE_CACHE_BYTES = 32 * 2**20
CHECKPOINT_CACHE = 4096


async def _cors(request: web.Request, response: web.StreamResponse) -> None:
    """Every answer of the read API, errors included, may be read by any web page."""
    route = request.match_info.route
    resource = getattr(route, "resource", None)
    if resource is not None and resource.canonical in request.app[API_PATHS]:
        for name, value in CORS.items():
            response.headers.setdefault(name, value)


def add_routes(app: web.Application) -> None:
    paths = []
    for endpoint in LISTS:
        app.router.add_get(endpoint.path, _endpoint(list_handler(endpoint)))
        paths.append(endpoint.path)
    for path, handler in (
        ("/v1/cities/{log_id}", city_detail),
        ("/v1/summary", summary),
        ("/v1/events/{id}", event),
        ("/v1/openapi.json", openapi),
    ):
        app.router.add_get(path, _endpoint(handler))
        paths.append(path)
    for path in paths:
        app.router.add_route("OPTIONS", path, preflight)
    app[API_PATHS] = frozenset(paths)
    app[API_MEMO] = queries.Memo()
    app[API_RESPONSES] = queries.Memo(RESPONSE_CACHE_ANSWERS, max_bytes=RESPONSE_CACHE_BYTES)
    app[API_TILES] = queries.Memo(TILE_CACHE_TILES, max_bytes=TILE_CACHE_BYTES)
    app[API_CHECKPOINTS] = queries.Memo(CHECKPOINT_CACHE)
    app.on_response_prepare.append(_cors)


# -- the OpenAPI document -------------------------------------------------------------


def _problem_response(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/problem+json": {"schema": api_schema.ref("Problem")}}}


_ERRORS = {
    "400": _problem_response("a parameter is unknown, repeated or malformed (each named in invalid-params)"),
    "503": _problem_response("the database is busy; retry after Retry-After seconds"),
}


def _param_doc(param: Param) -> dict[str, Any]:
    return {"name": param.name, "in": "query", "required": False, "description": param.description,
            "schema": param.schema}


def _ok(schema: dict[str, Any], *, csv: bool = False, description: str = "the answer") -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {"description": description, "content": content}


def _path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description,
            "schema": api_schema.HEX64}


def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for ep in LISTS:
        answer = api_schema.closed({
            **{k: v for k, v in ep.extra.items() if k == "as_of"},
            "rows": {"type": "array", "items": api_schema.ref(ep.row)},
            "next": api_schema.nullable(api_schema.STR),
            "next_url": api_schema.nullable(api_schema.STR),
            **{k: v for k, v in ep.extra.items() if k != "as_of"},
        })
        params = [*ep.params, P_FORMAT]
        docs = [_param_doc(p) for p in params] + [
            {"name": "limit", "in": "query", "required": False, "schema": P_LIMIT_DOC,
             "description": f"rows per page: 1 to {MAX_LIMIT} (default {DEFAULT_LIMIT}); csv up to {CSV_LIMIT}"},
            {"name": "next", "in": "query", "required": False, "schema": P_NEXT_DOC,
             "description": "the opaque token of the previous page"},
        ]
        paths[ep.path] = {"get": {
            "operationId": f"list_{ep.name}", "summary": ep.summary, "parameters": docs,
            "responses": {"200": _ok(answer, csv=True), "304": {"description": "not modified (If-None-Match)"},
                          **_ERRORS},
        }}
    not_found = _problem_response("no such entry or log here, or no proof yet")
    paths["/v1/cities/{log_id}"] = {"get": {
        "operationId": "get_city", "summary": "One city, its latest report and any evidence against it",
        "parameters": [_path_param("log_id", "the city's log id")],
        "responses": {"200": _ok(api_schema.ref("CityDetail")), "404": not_found, **_ERRORS},
    }}
    paths["/v1/summary"] = {"get": {
        "operationId": "get_summary", "summary": "Network totals",
        "parameters": [_param_doc(P_AS_OF)],
        "responses": {"200": _ok(api_schema.ref("Summary")), **_ERRORS},
    }}
    paths["/v1/events/{id}"] = {"get": {
        "operationId": "get_event",
        "summary": "One entry with its body, status, an RFC 9162 inclusion proof and the signed checkpoint",
        "parameters": [_path_param("id", "the entry id (its leaf hash)")],
        "responses": {"200": _ok(api_schema.ref("Event")), "404": not_found, **_ERRORS},
    }}
    paths["/v1/openapi.json"] = {"get": {
        "operationId": "get_openapi", "summary": "This document",
        "responses": {"200": _ok({"type": "object", "required": ["openapi", "paths"]}), **_ERRORS},
    }}
    paths.update(_other_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "solidarity-node public read API",
            "version": "1",
            "description": "Read-only queries over every city log this node holds, with proofs. See docs/api.md.",
        },
        "paths": paths,
        "components": {"schemas": api_schema.COMPONENTS},
    }


def _other_paths() -> dict[str, Any]:
    """The log-serving (C2SP tlog-tiles) and federation read endpoints of ``tlog_routes``
    and ``federation_routes``, described here so the document covers every read."""
    log_param = _path_param("log_id", "the log id (lowercase hex SHA-256 of the origin)")
    tail = {"name": "tail", "in": "path", "required": True, "description": "the rest of a tlog-tiles path",
            "schema": {"type": "string", "minLength": 1}}
    binary = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    errors = {"400": _problem_response("malformed log id or tile path"),
              "404": _problem_response("no such log, tile or checkpoint here"),
              "503": _ERRORS["503"]}
    return {
        "/v1/logs": {"get": {
            "operationId": "list_logs", "summary": "Every log held",
            "responses": {"200": _ok(api_schema.closed({"logs": {"type": "array", "items": api_schema.ref("Log")}})),
                          "503": _ERRORS["503"]},
        }},
        "/v1/logs/{log_id}/checkpoint": {"get": {
            "operationId": "get_checkpoint", "summary": "The latest city-signed checkpoint (C2SP tlog-checkpoint)",
            "parameters": [log_param],
            "responses": {"200": {"description": "signed note",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}}, **errors},
        }},
        "/v1/logs/{log_id}/tile/{tail}": {"get": {
            "operationId": "get_tile", "summary": "A hash tile or entry bundle (C2SP tlog-tiles)",
            "parameters": [log_param, tail],
            "responses": {"200": {"description": "tile bytes", "content": binary}, **errors},
        }},
        "/v1/logs/{log_id}/bodies/{tail}": {"get": {
            "operationId": "get_bodies", "summary": "Salted bodies, aligned with the entry bundles",
            "parameters": [log_param, tail],
            "responses": {"200": {"description": "bundle bytes", "content": binary}, **errors},
        }},
        "/v1/status": {"get": {
            "operationId": "get_status", "summary": "This node's view of the federation",
            "responses": {"200": _ok({"type": "object", "required": ["network"]}), "503": _ERRORS["503"]},
        }},
        "/v1/evidence": {"get": {
            "operationId": "list_evidence", "summary": "Evidence of equivocation held, by log",
            "responses": {"200": _ok(api_schema.closed({"evidence": {"type": "array", "items": api_schema.closed({
                "log_id": api_schema.HEX64, "found_ms": api_schema.INT, "url": api_schema.STR,
                "evidence_base64": api_schema.STR,
            })}})), "503": _ERRORS["503"]},
        }},
        "/v1/evidence/{log_id}": {"get": {
            "operationId": "get_evidence", "summary": "One piece of evidence (canonical MessagePack)",
            "parameters": [log_param],
            "responses": {"200": {"description": "evidence bytes", "content": binary}, **errors},
        }},
    }
