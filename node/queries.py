"""The public read API's queries: SQL over the network view, resolved at query time.

Pure functions of a :class:`~node.store.Store` (read-only is enough) and typed
arguments; the HTTP layer (``node.api_routes``) parses requests into them and
turns their answers into JSON or CSV. Every value is a bound parameter; the
only SQL text built at run time is the choice among fixed condition strings
and the number of ``?`` in an ``IN (...)``.

What ``node.view`` leaves to query time is resolved here (see its docstring):

- an item's ``status`` as of a day: ``retracted`` (in ``view_retracts``),
  ``fulfilled`` (latest progress >= quantity), ``expired`` (``until`` before
  the day), else ``open``;
- accepts and endorsements are joined to their targets by entry id *and* log
  id, so an accept naming a log that does not hold the entry links nothing,
  and one whose target has not arrived yet is shown unresolved;
- a city with evidence of equivocation (``evidence`` table) is marked in
  lists and left out of every total.

Lists are keyset-paginated: each takes ``after`` (the sort key of the last row
already seen, or None) and ``limit`` and returns a :class:`Page` whose
``last_key`` is the key to continue from (None on the last page).

Aggregates over the whole view (a list's ``totals``, the summary) cost a scan
of every matching item, of one covering index over what ``node.view`` keeps per
item (``_ITEM_FACTS``); a :class:`Memo` keeps them per :func:`view_state`, so
they are computed once per change of the view, not once per request or page.
"""

from __future__ import annotations

import base64
import collections
import functools
import json
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from node.errors import NotFound, StorageError
from node.store import Store
from protocol.checkpoint import open_checkpoint
from protocol.entry import decode_entry
from protocol.errors import ProtocolError
from protocol.keys import parse_verifier_key
from protocol.merkle import node_hash, prove_inclusion

ITEM_TYPES = ("pledge", "offer", "request")
ITEM_STATUSES = ("open", "fulfilled", "expired", "retracted")
EVENT_STATUSES = ("valid", "invalid", "unknown", "erased")
MEMBERSHIP_STATES = ("member", "former-member", "equivocating", "non-member", "unknown")


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    """Every filter any list takes; each list reads the ones that apply to it."""

    city: str | None = None
    country: str | None = None
    since_ms: int | None = None
    until_ms: int | None = None
    status: str | None = None
    kind: str | None = None
    oversubscribed: bool | None = None
    target_city: str | None = None
    resolved: bool | None = None
    latest: bool | None = None
    type: str | None = None
    membership: str | None = None
    #: The day time-dependent statuses are computed for (YYYY-MM-DD); the API passes today by default.
    as_of: str = "1970-01-01"


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[dict[str, Any]]
    last_key: tuple | None
    extra: dict[str, Any] = field(default_factory=dict)


T = TypeVar("T")


def view_state(store: Store) -> tuple:
    """A value that changes whenever anything the answers here are computed from changes.

    Within one schema (``reindex`` drops and recreates the view tables, which changes
    ``schema_version``) every log's view cursor only grows, so their sum changes with
    every batch applied; ``logs`` changes its ``updated_ms`` (a clock time) whenever a
    log is added to, truncated or gets a new checkpoint; evidence is only ever added.
    Read it in the same snapshot as the answer it keys.
    """
    return store.conn.execute(
        "SELECT (SELECT schema_version FROM pragma_schema_version()), "
        "(SELECT COUNT(*) FROM view_cursor), (SELECT COALESCE(SUM(seq), 0) FROM view_cursor), "
        "(SELECT COUNT(*) FROM logs), (SELECT COALESCE(SUM(size), 0) FROM logs), "
        "(SELECT COALESCE(SUM(updated_ms), 0) FROM logs), (SELECT COUNT(*) FROM evidence)"
    ).fetchone()


class Memo:
    """Computed values kept by key: thread-safe, bounded, least recently used out first.

    Callers put in the key whatever the value depends on: :meth:`get` adds the
    :func:`view_state` read in the caller's snapshot; the read API's answers are kept
    under the database's ``data_version`` (``node.api_routes``); tile hashes under the
    stored hash that covers them. A value must not be changed once returned.

    Bounded by a number of values and, when ``max_bytes`` is given, by the bytes
    ``weigh`` says they hold (a value heavier than an eighth of that is not kept).
    Two threads asking :meth:`fetch` for the same key compute it once: the second
    waits for the first (both read equal snapshots, so either answer is right).
    """

    def __init__(self, size: int = 256, *, max_bytes: int | None = None) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self._values: collections.OrderedDict[Hashable, tuple[Any, int]] = collections.OrderedDict()
        self._running: dict[Hashable, threading.Event] = {}

    def __len__(self) -> int:
        return len(self._values)

    @property
    def bytes(self) -> int:
        """What the values held weigh, by their ``weigh`` (0 for values put without one)."""
        return self._bytes

    def peek(self, key: Hashable) -> Any | None:
        """The value kept for ``key``, or None; never waits (safe on the event loop)."""
        with self._lock:
            hit = self._values.get(key)
            if hit is None:
                return None
            self._values.move_to_end(key)
            return hit[0]

    def put(self, key: Hashable, value: Any, weight: int = 0) -> None:
        if self._max_bytes is not None and weight > self._max_bytes // 8:
            return
        with self._lock:
            old = self._values.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._values[key] = (value, weight)
            self._bytes += weight
            while len(self._values) > self._size or (self._max_bytes is not None and self._bytes > self._max_bytes):
                _, (_, dropped) = self._values.popitem(last=False)
                self._bytes -= dropped

    def fetch(self, key: Hashable, compute: Callable[[], T], weigh: Callable[[T], int] | None = None) -> T:
        """The value for ``key``, computed once by whichever thread asks first."""
        while True:
            with self._lock:
                hit = self._values.get(key)
                if hit is not None:
                    self._values.move_to_end(key)
                    return hit[0]
                running = self._running.get(key)
                if running is None:
                    running = self._running[key] = threading.Event()
                    break
            running.wait(30.0)  # then look again; compute it here if the other thread failed
        try:
            value = compute()
            self.put(key, value, weigh(value) if weigh is not None else 0)
            return value
        finally:
            with self._lock:
                del self._running[key]
            running.set()

    def get(self, store: Store, key: Hashable, compute: Callable[[], T]) -> T:
        """The value for ``key`` in the view state ``store`` reads (call inside its snapshot)."""
        return self.fetch((key, view_state(store)), compute)


def _memo(memo: Memo | None, store: Store, key: Hashable, compute: Callable[[], T]) -> T:
    return compute() if memo is None else memo.get(store, key, compute)


# -- shared pieces -------------------------------------------------------------

_EQUIVOCATING = "EXISTS (SELECT 1 FROM evidence ev WHERE ev.lid = {t}.lid)"
_RETRACTED = "EXISTS (SELECT 1 FROM view_retracts rt WHERE rt.ref = {t}.id AND rt.lid = {t}.lid)"


def _common_where(f: Filters, conds: list[str], params: dict[str, Any], *, time: str = "time_ms") -> None:
    """Conditions on the outer columns every list has: log_id, country, time."""
    if f.city is not None:
        conds.append("log_id = :city")
        params["city"] = f.city
    if f.country is not None:
        conds.append("country = :country")
        params["country"] = f.country
    if f.since_ms is not None:
        conds.append(f"{time} >= :since_ms")
        params["since_ms"] = f.since_ms
    if f.until_ms is not None:
        conds.append(f"{time} <= :until_ms")
        params["until_ms"] = f.until_ms


def _page(
    store: Store,
    inner: str,
    conds: list[str],
    params: dict[str, Any],
    after: tuple | None,
    limit: int,
    key: tuple[str, str],
    row: Callable[[dict[str, Any]], dict[str, Any]],
) -> Page:
    """Run ``inner`` as a subquery filtered by ``conds``, ordered and cut by the keyset ``key``."""
    conds = list(conds)
    params = dict(params)
    if after is not None:
        conds.append(f"({key[0]}, {key[1]}) > (:after_0, :after_1)")
        params["after_0"], params["after_1"] = after
    where = " AND ".join(conds) or "1"
    sql = f"SELECT * FROM ({inner}) WHERE {where} ORDER BY {key[0]}, {key[1]} LIMIT :limit_plus_one"
    params["limit_plus_one"] = limit + 1
    cur = store.conn.execute(sql, params)
    names = [d[0] for d in cur.description]
    raw = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    more = len(raw) > limit
    raw = raw[:limit]
    last_key = (raw[-1]["_k0"], raw[-1]["_k1"]) if more and raw else None
    return Page([row(r) for r in raw], last_key)


def _bool(value: Any) -> bool:
    return bool(value)


# -- cities --------------------------------------------------------------------


def membership_state(verifier: str, equivocating: bool, membership: Any | None) -> str:
    """member / former-member / equivocating / non-member, or unknown without a network file.

    ``membership`` is a ``protocol.membership.Membership`` (sets of verifier key
    strings) or None when the node has no network file.
    """
    if equivocating:
        return "equivocating"
    if membership is None:
        return "unknown"
    if verifier in membership.members:
        return "member"
    if verifier in membership.revoked:
        return "former-member"
    return "non-member"


def _city_rows(store: Store, membership: Any | None) -> list[dict[str, Any]]:
    """Every log with its profile and state, ordered by log id (counts filled in later)."""
    cur = store.conn.execute(
        "SELECT l.lid, l.log_id, l.origin, l.verifier, l.own, l.size, l.checkpoint, l.updated_ms, "
        "c.name, c.country, c.urls, c.contact, c.languages, "
        "(SELECT MAX(time_ms) FROM view_events e WHERE e.lid = l.lid) AS last_event_ms, "
        "EXISTS (SELECT 1 FROM evidence ev WHERE ev.lid = l.lid) AS equivocating "
        "FROM logs l LEFT JOIN view_cities c ON c.lid = l.lid ORDER BY l.log_id"
    )
    out = []
    for (lid, log_id, origin, verifier, own, size, checkpoint, updated_ms, name, country, urls, contact,
         languages, last_event_ms, equivocating) in cur.fetchall():
        out.append({
            "_lid": lid,
            "log_id": log_id,
            "origin": origin,
            "verifier_key": verifier,
            "name": name,
            "country": country,
            "urls": json.loads(urls) if urls else [],
            "contact": contact,
            "languages": json.loads(languages) if languages else [],
            "membership": membership_state(verifier, bool(equivocating), membership),
            "own": bool(own),
            "size": size,
            "checkpoint_size": _checkpoint_size(checkpoint, verifier),
            "updated_ms": updated_ms,
            "last_event_ms": last_event_ms,
        })
    return out


def _checkpoint_size(checkpoint: bytes | None, verifier: str) -> int | None:
    if checkpoint is None:
        return None
    return open_checkpoint(checkpoint, parse_verifier_key(verifier)).checkpoint.size


def _counts(store: Store, lids: Sequence[int]) -> dict[int, dict[str, Any]]:
    counts = {
        lid: {"events": 0, "valid": 0, "invalid": 0, "unknown": 0, "erased": 0, "by_type": {}} for lid in lids
    }
    if not lids:
        return counts
    marks = ", ".join("?" for _ in lids)
    cur = store.conn.execute(
        f"SELECT lid, status, type, COUNT(*) FROM view_events WHERE lid IN ({marks}) "
        "GROUP BY lid, status, type ORDER BY lid, status, type",
        list(lids),
    )
    for lid, status, type_, n in cur:
        c = counts[lid]
        c["events"] += n
        c[status] = c.get(status, 0) + n
        if status == "valid":
            c["by_type"][type_] = n
    return counts


def _strip(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def cities(store: Store, f: Filters, after: tuple | None, limit: int, membership: Any | None) -> Page:
    """Every log held, ordered by log id. The list is short (one row per city), so it is
    filtered in Python: membership is not a column but computed from the federation."""
    rows = _city_rows(store, membership)
    rows = [
        r for r in rows
        if (f.country is None or r["country"] == f.country)
        and (f.membership is None or r["membership"] == f.membership)
        and (after is None or r["log_id"] > after[0])
    ]
    more = len(rows) > limit
    rows = rows[:limit]
    counts = _counts(store, [r["_lid"] for r in rows])
    for r in rows:
        r["counts"] = counts[r["_lid"]]
    return Page([_strip(r) for r in rows], (rows[-1]["log_id"],) if more and rows else None)


def city(store: Store, log_id: str, membership: Any | None) -> dict[str, Any]:
    row = next((r for r in _city_rows(store, membership) if r["log_id"] == log_id), None)
    if row is None:
        raise NotFound(f"no log {log_id} on this node")
    row["counts"] = _counts(store, [row["_lid"]])[row["_lid"]]
    latest = reports(store, Filters(city=log_id, latest=True), None, 1).rows
    row["latest_report"] = latest[0] if latest else None
    ev = store.conn.execute("SELECT found_ms FROM evidence WHERE lid = ?", (row["_lid"],)).fetchone()
    row["evidence"] = {"found_ms": ev[0], "url": f"/v1/evidence/{log_id}"} if ev else None
    return _strip(row)


# -- pledges, offers, requests ---------------------------------------------------

# Accepts that count towards an item: naming its id *and* its log, not retracted by
# their author, not written by a city that equivocates.
_COUNTING_ACCEPTS = (
    "FROM view_accepts a WHERE a.ref = i.id AND a.ref_log = l.log_id "
    "AND NOT EXISTS (SELECT 1 FROM view_retracts ra WHERE ra.ref = a.id AND ra.lid = a.lid) "
    "AND NOT EXISTS (SELECT 1 FROM evidence ea WHERE ea.lid = a.lid)"
)

# The per-item facts are kept in ``view_items`` by ``node.view`` as each entry is applied:
# ``delivered`` (latest progress not retracted), ``retracted``, and ``accepted``/``accepts``
# over the accepts naming the item and its log that are not retracted. Only equivocation
# is resolved here (``evidence`` is not part of the view): while no city equivocates the
# kept figures are the answer; otherwise accepts by equivocating cities are left out by
# the same correlated scan over ``view_accepts`` that computed them before they were kept.
_NO_EVIDENCE = "NOT EXISTS (SELECT 1 FROM evidence)"

_ACCEPTED = (
    f"CASE WHEN {_NO_EVIDENCE} THEN i.accepted "
    f"ELSE (SELECT COALESCE(SUM(COALESCE(a.quantity, i.quantity)), 0) {_COUNTING_ACCEPTS}) END"
)
_ACCEPT_COUNT = f"CASE WHEN {_NO_EVIDENCE} THEN i.accepts ELSE (SELECT COUNT(*) {_COUNTING_ACCEPTS}) END"
_ITEM_STATUS = """CASE WHEN i.retracted THEN 'retracted'
            WHEN i.delivered >= i.quantity THEN 'fulfilled'
            WHEN i.until_date < :as_of THEN 'expired'
            ELSE 'open' END"""

_ITEMS = f"""
SELECT i.id, i.type, l.log_id, c.name AS city, c.country, i.seq, i.time_ms, i.kind, i.quantity, i.unit,
       i.from_date, i.until_date, i.description, i.delivered,
       {_ACCEPTED} AS accepted, {_ACCEPT_COUNT} AS accepts,
       r.id AS retract_id, r.reason AS retract_reason,
       {_EQUIVOCATING.format(t="i")} AS equivocating,
       {_ITEM_STATUS} AS status,
       i.lid AS _lid, i.time_ms AS _k0, i.id AS _k1
FROM view_items i
JOIN logs l ON l.lid = i.lid
LEFT JOIN view_cities c ON c.lid = i.lid
LEFT JOIN view_retracts r ON r.ref = i.id AND r.lid = i.lid
"""

# What the aggregates read of each item: every column a list filter or a total names, the
# same expressions as ``_ITEMS``, and nothing from the item's row that ``view_items_facts``
# does not cover, so a total is a scan of that index (and a rowid lookup in ``logs``).
_ITEM_FACTS = f"""
SELECT i.type, i.lid, l.log_id, c.name AS city, c.country, i.time_ms, i.kind, i.quantity, i.unit, i.delivered,
       {_ACCEPTED} AS accepted,
       {_EQUIVOCATING.format(t="i")} AS equivocating,
       {_ITEM_STATUS} AS status
FROM view_items i
JOIN logs l ON l.lid = i.lid
LEFT JOIN view_cities c ON c.lid = i.lid
"""


def _items_inner(type_: str | None, select: str = _ITEMS) -> tuple[str, dict[str, Any]]:
    if type_ is None:
        return select, {}
    return select + " WHERE i.type = :type", {"type": type_}


def _items_where(f: Filters) -> tuple[list[str], dict[str, Any]]:
    conds: list[str] = []
    params: dict[str, Any] = {"as_of": f.as_of}
    _common_where(f, conds, params)
    if f.status is not None:
        conds.append("status = :status")
        params["status"] = f.status
    if f.kind is not None:
        conds.append("kind = :kind")
        params["kind"] = f.kind
    if f.oversubscribed is not None:
        conds.append("(accepted > quantity) = :over")
        params["over"] = int(f.oversubscribed)
    return conds, params


def _item_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "type": r["type"],
        "log_id": r["log_id"],
        "city": r["city"],
        "country": r["country"],
        "seq": r["seq"],
        "time_ms": r["time_ms"],
        "kind": r["kind"],
        "quantity": r["quantity"],
        "unit": r["unit"],
        "from": r["from_date"],
        "until": r["until_date"],
        "description": r["description"],
        "delivered": r["delivered"],
        "accepted": r["accepted"],
        "accepts": r["accepts"],
        "oversubscribed": r["accepted"] > r["quantity"],
        "status": r["status"],
        "retraction": {"id": r["retract_id"], "reason": r["retract_reason"]} if r["retract_id"] else None,
        "equivocating": _bool(r["equivocating"]),
    }


def items(store: Store, type_: str, f: Filters, after: tuple | None, limit: int, memo: Memo | None = None) -> Page:
    """Pledges, offers or requests, ordered by (time_ms, id), with totals over every match."""
    inner, inner_params = _items_inner(type_)
    conds, params = _items_where(f)
    params.update(inner_params)
    page = _page(store, inner, conds, params, after, limit, ("_k0", "_k1"), _item_row)
    # The same for every page of the same filters: a scan of every match, once per view state.
    facts, _ = _items_inner(type_, _ITEM_FACTS)
    page.extra["totals"] = _memo(memo, store, ("totals", type_, f), lambda: _item_totals(store, facts, conds, params))
    return page


def _item_totals(store: Store, inner: str, conds: list[str], params: dict[str, Any]) -> dict[str, Any]:
    """Every match counted; those neither retracted nor by an equivocating city summed by unit."""
    where = " AND ".join(conds) or "1"
    total, by_unit = 0, []
    # One scan, grouped by whether the item counts (each row's status and equivocation read once).
    for unit, counted, n, q, d, a in store.conn.execute(
        f"SELECT unit, status != 'retracted' AND NOT equivocating AS counted, COUNT(*), SUM(quantity), "
        f"SUM(delivered), SUM(accepted) FROM ({inner}) WHERE {where} GROUP BY unit, counted ORDER BY unit, counted",
        params,
    ):
        total += n
        if counted:
            by_unit.append({"unit": unit, "count": n, "quantity": q, "delivered": d, "accepted": a})
    return {"items": total, "counted": sum(u["count"] for u in by_unit), "by_unit": by_unit}


# -- accepts -----------------------------------------------------------------------

_ACCEPTS = f"""
SELECT a.id, l.log_id, c.name AS city, c.country, a.seq, a.time_ms, a.quantity, a.ref_log, a.ref,
       tc.name AS target_city, te.type AS target_type, te.status AS target_status,
       ti.kind AS target_kind, ti.quantity AS target_quantity, ti.unit AS target_unit,
       (te.id IS NOT NULL) AS resolved,
       {_RETRACTED.format(t="a")} AS retracted,
       {_EQUIVOCATING.format(t="a")} AS equivocating,
       a.time_ms AS _k0, a.id AS _k1
FROM view_accepts a
JOIN logs l ON l.lid = a.lid
LEFT JOIN view_cities c ON c.lid = a.lid
LEFT JOIN logs tl ON tl.log_id = a.ref_log
LEFT JOIN view_cities tc ON tc.lid = tl.lid
LEFT JOIN view_events te ON te.id = a.ref AND te.lid = tl.lid
LEFT JOIN view_items ti ON ti.id = a.ref AND ti.lid = tl.lid
"""


def _accept_row(r: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": r["id"],
        "log_id": r["log_id"],
        "city": r["city"],
        "country": r["country"],
        "seq": r["seq"],
        "time_ms": r["time_ms"],
        "quantity": r["quantity"],
        "resolved": _bool(r["resolved"]),
        "target": {
            "log_id": r["ref_log"],
            "id": r["ref"],
            "city": r["target_city"],
            "type": r["target_type"],
            "status": r["target_status"],
            "kind": r["target_kind"],
            "quantity": r["target_quantity"],
            "unit": r["target_unit"],
        },
        "retracted": _bool(r["retracted"]),
        "equivocating": _bool(r["equivocating"]),
    }


def accepts(store: Store, f: Filters, after: tuple | None, limit: int) -> Page:
    conds: list[str] = []
    params: dict[str, Any] = {}
    _common_where(f, conds, params)
    if f.target_city is not None:
        conds.append("ref_log = :target_city")
        params["target_city"] = f.target_city
    if f.resolved is not None:
        conds.append("resolved = :resolved")
        params["resolved"] = int(f.resolved)
    return _page(store, _ACCEPTS, conds, params, after, limit, ("_k0", "_k1"), _accept_row)


# -- reports -----------------------------------------------------------------------

_REPORTS = f"""
SELECT r.id, l.log_id, c.name AS city, c.country, r.seq, r.time_ms, r.period_start, r.period_end,
       r.arrivals, r.in_reception, r.free_places,
       {_RETRACTED.format(t="r")} AS retracted,
       {_EQUIVOCATING.format(t="r")} AS equivocating,
       r.id = (SELECT r2.id FROM view_reports r2 WHERE r2.lid = r.lid
               AND NOT EXISTS (SELECT 1 FROM view_retracts rt2 WHERE rt2.ref = r2.id AND rt2.lid = r2.lid)
               ORDER BY r2.period_end DESC, r2.time_ms DESC, r2.id DESC LIMIT 1) AS latest,
       r.time_ms AS _k0, r.id AS _k1
FROM view_reports r
JOIN logs l ON l.lid = r.lid
LEFT JOIN view_cities c ON c.lid = r.lid
"""

_REPORT_FIELDS = ("id", "log_id", "city", "country", "seq", "time_ms", "period_start", "period_end",
                  "arrivals", "in_reception", "free_places")


def _report_row(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r[k] for k in _REPORT_FIELDS}
    out["retracted"] = _bool(r["retracted"])
    out["equivocating"] = _bool(r["equivocating"])
    return out


def reports(store: Store, f: Filters, after: tuple | None, limit: int) -> Page:
    conds: list[str] = []
    params: dict[str, Any] = {}
    _common_where(f, conds, params)
    if f.latest is not None:
        conds.append("latest = :latest")
        params["latest"] = int(f.latest)
    return _page(store, _REPORTS, conds, params, after, limit, ("_k0", "_k1"), _report_row)


# -- statements ----------------------------------------------------------------------

_STATEMENTS = f"""
SELECT s.id, l.log_id, c.name AS city, c.country, s.seq, s.time_ms, s.title, s.text,
       {_RETRACTED.format(t="s")} AS retracted,
       {_EQUIVOCATING.format(t="s")} AS equivocating,
       s.time_ms AS _k0, s.id AS _k1
FROM view_statements s
JOIN logs l ON l.lid = s.lid
LEFT JOIN view_cities c ON c.lid = s.lid
"""


def _statement_row(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r[k] for k in ("id", "log_id", "city", "country", "seq", "time_ms", "title", "text")}
    out["retracted"] = _bool(r["retracted"])
    out["equivocating"] = _bool(r["equivocating"])
    out["endorsements"] = []
    return out


def statements(store: Store, f: Filters, after: tuple | None, limit: int) -> Page:
    conds: list[str] = []
    params: dict[str, Any] = {}
    _common_where(f, conds, params)
    page = _page(store, _STATEMENTS, conds, params, after, limit, ("_k0", "_k1"), _statement_row)
    by_id = {r["id"]: r for r in page.rows}
    if by_id:
        marks = ", ".join("?" for _ in by_id)
        cur = store.conn.execute(
            "SELECT e.ref, e.ref_log, e.id, l.log_id, c.name, c.country, e.time_ms, "
            f"{_EQUIVOCATING.format(t='e')} "
            "FROM view_endorsements e JOIN logs l ON l.lid = e.lid LEFT JOIN view_cities c ON c.lid = e.lid "
            f"WHERE e.ref IN ({marks}) AND NOT {_RETRACTED.format(t='e')} ORDER BY e.time_ms, e.id",
            list(by_id),
        )
        for ref, ref_log, id_, log_id, name, country, time_ms, equivocating in cur:
            statement = by_id[ref]
            if statement["log_id"] != ref_log:
                continue  # names the right entry id but another log: endorses nothing here
            statement["endorsements"].append({
                "id": id_, "log_id": log_id, "city": name, "country": country, "time_ms": time_ms,
                "equivocating": bool(equivocating),
            })
    return page


# -- entries left out ------------------------------------------------------------------

_INVALID = f"""
SELECT e.id, l.log_id, c.name AS city, c.country, e.seq, NULLIF(e.type, '') AS type, e.time_ms,
       e.status, e.reason, {_EQUIVOCATING.format(t="e")} AS equivocating,
       COALESCE(e.time_ms, -1) AS _k0, e.id AS _k1
FROM view_events e
JOIN logs l ON l.lid = e.lid
LEFT JOIN view_cities c ON c.lid = e.lid
WHERE e.status != 'valid'
"""


def _invalid_row(r: dict[str, Any]) -> dict[str, Any]:
    out = {k: r[k] for k in ("id", "log_id", "city", "country", "seq", "type", "time_ms", "status", "reason")}
    out["equivocating"] = _bool(r["equivocating"])
    return out


def invalid(store: Store, f: Filters, after: tuple | None, limit: int) -> Page:
    conds: list[str] = []
    params: dict[str, Any] = {}
    _common_where(f, conds, params)
    if f.status is not None:
        conds.append("status = :status")
        params["status"] = f.status
    if f.type is not None:
        conds.append("type = :type")
        params["type"] = f.type
    return _page(store, _INVALID, conds, params, after, limit, ("_k0", "_k1"), _invalid_row)


# -- summary -----------------------------------------------------------------------------


def summary(store: Store, as_of: str, membership: Any | None) -> dict[str, Any]:
    """Network totals as of a day; equivocating cities and retracted items count nowhere."""
    city_rows = _city_rows(store, membership)
    counted_cities = [c for c in city_rows if c["membership"] != "equivocating"]
    by_membership: dict[str, int] = {}
    for c in city_rows:
        by_membership[c["membership"]] = by_membership.get(c["membership"], 0) + 1

    # Grouped in the covering index's order (type, kind, unit, log rowid), so no sort; only the
    # per-type totals need statuses, counted per group. The order of the groups does not change
    # the answer (everything below is keyed, then sorted).
    names = {
        lid: (log_id, name, country) for lid, log_id, name, country in store.conn.execute(
            "SELECT l.lid, l.log_id, c.name, c.country FROM logs l LEFT JOIN view_cities c ON c.lid = l.lid")
    }
    groups = store.conn.execute(
        f"SELECT type, kind, unit, lid, COUNT(*), SUM(quantity), SUM(delivered), SUM(accepted), "
        f"SUM(status = 'fulfilled'), SUM(status = 'expired') "
        f"FROM ({_ITEM_FACTS} WHERE i.type IN ({', '.join(repr(t) for t in ITEM_TYPES)})) "
        "WHERE NOT equivocating AND status != 'retracted' GROUP BY type, kind, unit, lid",
        {"as_of": as_of},
    ).fetchall()

    totals = {t: {"count": 0, "by_status": {"open": 0, "fulfilled": 0, "expired": 0}} for t in ITEM_TYPES}
    totals["pledge"].update(places=0, delivered=0)
    countries: dict[str | None, dict[str, Any]] = {}
    for c in counted_cities:
        entry = countries.setdefault(c["country"], _country(c["country"]))
        entry["cities"] += 1
    categories: dict[tuple[str, str, str], dict[str, Any]] = {}
    pledged: dict[str, dict[str, Any]] = {}
    versus: dict[tuple[str, str], dict[str, Any]] = {}
    for type_, kind, unit, lid, n, quantity, delivered, accepted, fulfilled, expired in groups:
        log_id, name, country = names[lid]
        t = totals[type_]
        t["count"] += n
        t["by_status"]["open"] += n - fulfilled - expired
        t["by_status"]["fulfilled"] += fulfilled
        t["by_status"]["expired"] += expired
        ctry = countries.setdefault(country, _country(country))
        if type_ == "pledge":
            t["places"] += quantity
            t["delivered"] += delivered
            ctry["pledges"] += n
            ctry["places_pledged"] += quantity
            ctry["places_delivered"] += delivered
            p = pledged.setdefault(
                log_id, {"log_id": log_id, "city": name, "country": country, "pledged": 0, "delivered": 0}
            )
            p["pledged"] += quantity
            p["delivered"] += delivered
        else:
            ctry[type_ + "s"] += n
            v = versus.setdefault((kind, unit), {
                "category": kind, "unit": unit, "offered": 0, "requested": 0, "offers": 0, "requests": 0,
                "accepted_offers": 0, "accepted_requests": 0,
            })
            v["offered" if type_ == "offer" else "requested"] += quantity
            v[type_ + "s"] += n
            v["accepted_" + type_ + "s"] += accepted
        cat = categories.setdefault((type_, kind, unit), {
            "type": type_, "category": kind, "unit": unit, "count": 0, "quantity": 0, "delivered": 0, "accepted": 0,
        })
        cat["count"] += n
        cat["quantity"] += quantity
        cat["delivered"] += delivered
        cat["accepted"] += accepted

    # What ``_ACCEPTS`` says of each accept (retracted, resolved), as ``node.view`` keeps it.
    accepts_row = store.conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(a.resolved), 0) FROM view_accepts a JOIN logs l ON l.lid = a.lid "
        f"WHERE NOT a.retracted AND NOT {_EQUIVOCATING.format(t='a')}"
    ).fetchone()
    statement_count = store.conn.execute(
        f"SELECT COUNT(*) FROM ({_STATEMENTS}) WHERE NOT retracted AND NOT equivocating"
    ).fetchone()[0]
    invalid_count = store.conn.execute("SELECT COUNT(*) FROM view_events WHERE status != 'valid'").fetchone()[0]
    return {
        "as_of": as_of,
        "network_digest": None,
        "cities": {"total": len(city_rows), "by_membership": dict(sorted(by_membership.items()))},
        "equivocating": [c["log_id"] for c in city_rows if c["membership"] == "equivocating"],
        "pledges": totals["pledge"],
        "offers": totals["offer"],
        "requests": totals["request"],
        "accepts": {"count": accepts_row[0], "resolved": accepts_row[1]},
        "statements": statement_count,
        "invalid": invalid_count,
        "by_country": sorted(countries.values(), key=lambda c: (c["country"] is not None, c["country"] or "")),
        "by_category": [categories[k] for k in sorted(categories)],
        "pledges_by_city": sorted(pledged.values(), key=lambda p: (-p["pledged"], p["log_id"])),
        "offers_vs_requests": [versus[k] for k in sorted(versus)],
    }


def _country(code: str | None) -> dict[str, Any]:
    return {"country": code, "cities": 0, "pledges": 0, "places_pledged": 0, "places_delivered": 0,
            "offers": 0, "requests": 0}


# -- one event with its proof ------------------------------------------------------------


def _fold(hashes: list[bytes]) -> bytes:
    """The root of a complete subtree from its 2**r hashes at its base level."""
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


@functools.lru_cache(maxsize=4096)  # at most 8 levels x 256 widths x 2
def _kept_start(level: int, width: int, lowest: int) -> int:
    """Where a tile's nodes ``level`` levels up start among those kept for it (levels
    ``lowest`` to 7, each level's complete nodes left to right)."""
    return sum(width >> r for r in range(lowest, level))


#: What one tile kept in the memo costs besides its hashes (key, bookkeeping), roughly.
TILE_OVERHEAD = 250


class _TileReader:
    """``protocol.merkle.HashReader`` for the proofs of one tree of ``size`` leaves and ``root``.

    Stored levels are multiples of 8 (see ``node.store``): a node r levels above one is
    the root of 2**r <= 128 stored hashes, which never straddle a 256-aligned tile. Rebuilt
    naively, one proof rehashes most of a tile (about 250 hashes) and the tree's right
    edge (up to 255 more). With ``tiles`` (a :class:`Memo`), each tile is rebuilt once
    and what proofs need of it is kept:

    - a full tile of leaves (level 0): its nodes 4 to 7 levels up (30 hashes, 960 bytes);
      the nodes below come from the 16 leaves around them (one short read, at most 15
      hashes). There are as many such tiles as entries / 256, hence the compact form;
    - any other tile (a level's right edge, not full, or a tile of stored hashes above
      the leaves, 1/256 as many): all its levels, so a proof reads nothing there.

    A full tile is keyed by the stored hash of the whole tile (the level above) and its
    rebuild is checked against it; a partial one by the tree's size and root, which fix
    its hashes. A tile rewritten after a truncation has another stored hash or root,
    hence another key, so nothing kept is ever stale.
    """

    def __init__(self, store: Store, lid: int, size: int, root: bytes | None = None,
                 tiles: Memo | None = None) -> None:
        self._store, self._lid, self._size, self._root, self._tiles = store, lid, size, root, tiles
        self._groups: dict[int, list[bytes]] = {}
        self._kept: dict[tuple[int, int], bytes] = {}

    def node(self, level: int, index: int) -> bytes:
        r = level % 8
        base, first = level - r, index << r
        tile, offset = first >> 8, first & 255
        width = min(256, (self._size >> base) - tile * 256)
        full = width == 256
        if r < 4 and base == 0 and full:
            group = self._groups.get(first >> 4)
            if group is None:  # the proof needs nodes 0 to 3 levels up around one leaf: one read
                group = self._groups[first >> 4] = self._store.stored_hashes(self._lid, 0, first >> 4 << 4, 16)
            return _fold(group[first & 15 : (first & 15) + (1 << r)])
        if self._tiles is None or (not full and self._root is None):
            return _fold(self._store.stored_hashes(self._lid, base, first, 1 << r))
        lowest = 4 if base == 0 and full else 0
        kept = self._kept.get((base, tile))
        if kept is None:
            if full:
                top = self.node(base + 8, tile)  # stored: the tile is full
                key: tuple = (self._lid, base, tile, top)
            else:
                top, key = None, (self._lid, base, tile, width, self._size, self._root)
            kept = self._kept[(base, tile)] = self._tiles.fetch(
                key, lambda: self._rebuild(base, tile, width, top, lowest), lambda value: len(value) + TILE_OVERHEAD)
        at = (_kept_start(r, width, lowest) + (offset >> r)) * 32
        return kept[at : at + 32]

    def _rebuild(self, base: int, tile: int, width: int, top: bytes | None, lowest: int) -> bytes:
        hashes = self._store.stored_hashes(self._lid, base, tile * 256, width)
        kept = list(hashes) if lowest == 0 else []
        for level in range(1, 9):
            # RFC 9162 2.1.1: MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])), complete pairs only
            hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes) - 1, 2)]
            if lowest <= level <= 7:
                kept.extend(hashes)
        if top is not None and hashes != [top]:
            raise StorageError(
                f"log {self._lid}: the hashes at level {base} of tile {tile} do not hash to the stored "
                f"level-{base + 8} hash: run 'solidarity verify'"
            )
        return b"".join(kept)


def inclusion_proof(store: Store, lid: int, index: int, size: int, root: bytes,
                    tiles: Memo | None = None) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(index, D[size]) of a log from its stored hashes.

    With ``tiles``, a leaf in a full tile costs one 16-leaf read: PATH recurses from
    the root down to the 256 leaves of the leaf's tile, which is complete and aligned, so
    the last 8 hashes it appends (the first 8 of the proof) are the leaf's siblings inside
    that tile, and the rest is the same for every leaf of the tile. That rest is
    computed by ``prove_inclusion`` once per tile and tree and kept with the tiles,
    beside the stored hash of the tile, which keys the tile's kept hashes."""
    tile = index >> 8
    if tiles is None or (tile + 1) << 8 > size:
        return prove_inclusion(index, size, _TileReader(store, lid, size, root, tiles))

    def above_tile() -> tuple[bytes, list[bytes]]:
        reader = _TileReader(store, lid, size, root, tiles)
        return reader.node(8, tile), prove_inclusion(index, size, reader)[8:]

    top, above = tiles.fetch(("path", lid, tile, size, root), above_tile,
                             lambda value: 32 * (1 + len(value[1])) + TILE_OVERHEAD)
    kept = tiles.fetch((lid, 0, tile, top), lambda: _TileReader(store, lid, size, root)._rebuild(0, tile, 256, top, 4),
                       lambda value: len(value) + TILE_OVERHEAD)
    # RFC 9162 2.1.3.1 inside a complete subtree: the sibling at each level, leaf first;
    # levels 0 to 3 from the 16 leaves around the leaf, 4 to 7 from the kept tile.
    group, at = store.stored_hashes(lid, 0, index >> 4 << 4, 16), index & 15
    path = [_fold(group[(at >> level ^ 1) << level : ((at >> level ^ 1) + 1) << level]) for level in range(4)]
    for level in range(4, 8):
        pos = (_kept_start(level, 256, 4) + ((index & 255) >> level ^ 1)) * 32
        path.append(kept[pos : pos + 32])
    return path + above


def event(store: Store, entry_id: str, *, tiles: Memo | None = None,
          checkpoints: Memo | None = None) -> dict[str, Any]:
    """An entry, its decoded body and view status, an RFC 9162 inclusion proof and the
    city-signed checkpoint the proof is for (the latest one held for its log).

    ``tiles`` keeps tile hashes between proofs (see :class:`_TileReader`); ``checkpoints``
    keeps checkpoints once their signature is verified (an Ed25519 check costs ~80 us),
    keyed by the signed note's bytes and the key."""
    row = store.conn.execute(
        "SELECT e.lid, e.seq, e.status, e.reason, e.body, l.log_id, l.origin, l.verifier, l.checkpoint, c.name, "
        "s.entry FROM view_events e JOIN logs l ON l.lid = e.lid LEFT JOIN view_cities c ON c.lid = e.lid "
        "LEFT JOIN entries s ON s.lid = e.lid AND s.seq = e.seq WHERE e.id = ?",
        (entry_id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"no entry {entry_id} in the network view of this node")
    lid, seq, status, reason, body, log_id, origin, verifier, checkpoint, name, entry_bytes = row
    if entry_bytes is None:
        raise StorageError(f"entry {entry_id} is in the view but not in log {log_id}: run 'solidarity reindex'")
    if checkpoint is None:
        raise NotFound(f"entry {entry_id}: this node holds no signed checkpoint of log {log_id} yet, so no proof")
    opened = lambda: open_checkpoint(checkpoint, parse_verifier_key(verifier)).checkpoint  # noqa: E731
    cp = opened() if checkpoints is None else checkpoints.fetch((checkpoint, verifier), opened)
    if seq >= cp.size:
        raise NotFound(
            f"entry {entry_id} is at position {seq} of log {log_id}, beyond the signed checkpoint held "
            f"(size {cp.size}): no proof until a checkpoint covering it arrives"
        )
    fields = None
    type_, time_ms = None, None
    try:
        entry = decode_entry(entry_bytes)
    except ProtocolError:
        entry = None  # authentic (it is in the signed tree) though malformed: served with its proof
    if entry is not None:
        type_, time_ms = entry.type, entry.time_ms
        fields = {
            "version": entry.version, "network": entry.network, "origin": entry.origin, "seq": entry.seq,
            "time_ms": entry.time_ms, "type": entry.type, "schema": entry.schema,
            "body_hash": entry.body_hash.hex(), "body_size": entry.body_size,
        }
    proof = inclusion_proof(store, lid, seq, cp.size, cp.root, tiles)
    return {
        "id": entry_id,
        "log_id": log_id,
        "origin": origin,
        "verifier_key": verifier,
        "city": name,
        "seq": seq,
        "type": type_,
        "time_ms": time_ms,
        "status": status,
        "reason": reason,
        "entry": {"base64": base64.b64encode(entry_bytes).decode(), "fields": fields},
        "body": json.loads(body) if body is not None else None,
        "proof": {"leaf_index": seq, "tree_size": cp.size, "inclusion_path": [h.hex() for h in proof]},
        "checkpoint": checkpoint.decode("utf-8"),
    }
