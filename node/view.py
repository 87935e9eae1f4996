"""The network view: a read model over every log the node holds, kept in the same database.

Why it is deterministic: each log's entries are applied in sequence order
(the only order sync and authoring ever produce), and every fact stored here
depends only on the entry and on earlier entries of the *same* log. Anything
that crosses logs (an accept naming another city's offer, an endorsement of
another city's statement, whether a city equivocated) and anything that
depends on time (a pledge past its end date is expired) is resolved by the
queries in ``node.queries`` at query time. So the same logs give the same view
on every node, whatever order logs arrived in and whatever the clock says,
and a reference to an entry not yet received resolves when it arrives.

Tables (``view_`` prefix; rebuilt from the logs by ``solidarity reindex``):

- ``view_cursor``: per log, how many entries have been applied.
- ``view_events``: every entry: type, time, body as JSON, and a status:
  ``valid``, ``invalid`` (with the reason: bad body, refers to nothing, retracts
  another city's entry), ``unknown`` (a type or schema version this release
  does not know: kept, shown, never counted) or ``erased`` (body erased).
- ``view_items``: pledges, offers and requests, with ``view_progress``
  (cumulative delivery, latest report per item) and ``view_retracts``.
- ``view_accepts``, ``view_reports``, ``view_statements``, ``view_endorsements``,
  ``view_cities`` (the latest profile of each log).

Kept facts: so that totals and the summary are index scans rather than a join per item,
``view_items`` also keeps what its status and figures are computed from, updated by every
entry that changes them: ``delivered`` (the latest progress not retracted), ``retracted``,
and ``accepted``/``accepts`` over the accepts that name the item *and* its log and are not
retracted; ``view_accepts`` keeps ``resolved`` (its target is in the view) and
``retracted``. These do cross logs (an accept may arrive before or after its target), so
each side updates the other when it arrives, and a rebuilt view holds the same values
whatever order the logs were applied in. Equivocation and the day stay at query time.

``VIEW_VERSION`` (in ``meta``) names this schema: a node whose view was built by another
release drops the view tables and rebuilds them from the logs before it serves from them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from node.store import LogState, Store
from protocol.entry import decode_body, decode_entry
from protocol.errors import ProtocolError, SchemaError
from protocol.schema import SchemaRegistry

log = logging.getLogger(__name__)

VIEW_TABLES = (
    "view_cursor", "view_events", "view_items", "view_progress", "view_retracts", "view_accepts",
    "view_reports", "view_statements", "view_endorsements", "view_cities",
)

VIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS view_cursor (lid INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS view_events (
    id TEXT PRIMARY KEY, lid INTEGER NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL,
    schema INTEGER, time_ms INTEGER, body TEXT, status TEXT NOT NULL, reason TEXT
);
CREATE INDEX IF NOT EXISTS view_events_lid ON view_events (lid, seq);
CREATE INDEX IF NOT EXISTS view_events_status ON view_events (status, type);
-- Each city's latest event time (node.queries._city_rows) without reading its rows.
CREATE INDEX IF NOT EXISTS view_events_time ON view_events (lid, time_ms);
CREATE TABLE IF NOT EXISTS view_items (
    id TEXT PRIMARY KEY, lid INTEGER NOT NULL, seq INTEGER NOT NULL, type TEXT NOT NULL,
    kind TEXT NOT NULL, quantity INTEGER NOT NULL, unit TEXT NOT NULL, from_date TEXT NOT NULL,
    until_date TEXT NOT NULL, description TEXT, time_ms INTEGER NOT NULL,
    delivered INTEGER NOT NULL DEFAULT 0, retracted INTEGER NOT NULL DEFAULT 0,
    accepted INTEGER NOT NULL DEFAULT 0, accepts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS view_items_type ON view_items (type, time_ms, id);
CREATE INDEX IF NOT EXISTS view_items_kind ON view_items (type, kind, time_ms, id);
CREATE INDEX IF NOT EXISTS view_items_lid ON view_items (lid, type);
-- Covers every column list totals and the summary read (node.queries._ITEM_FACTS).
CREATE INDEX IF NOT EXISTS view_items_facts ON view_items (
    type, kind, unit, lid, retracted, delivered, quantity, until_date, accepted, accepts, time_ms, id
);
CREATE TABLE IF NOT EXISTS view_progress (
    ref TEXT PRIMARY KEY, lid INTEGER NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL,
    delivered INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS view_retracts (
    ref TEXT PRIMARY KEY, lid INTEGER NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, reason TEXT
);
CREATE TABLE IF NOT EXISTS view_accepts (
    id TEXT PRIMARY KEY, lid INTEGER NOT NULL, seq INTEGER NOT NULL, ref_log TEXT NOT NULL,
    ref TEXT NOT NULL, quantity INTEGER, time_ms INTEGER NOT NULL,
    resolved INTEGER NOT NULL DEFAULT 0, retracted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS view_accepts_ref ON view_accepts (ref);
CREATE INDEX IF NOT EXISTS view_accepts_counted ON view_accepts (retracted, lid, resolved);
CREATE TABLE IF NOT EXISTS view_reports (
    id TEXT PRIMARY KEY, lid INTEGER NOT NULL, seq INTEGER NOT NULL, period_start TEXT NOT NULL,
    period_end TEXT NOT NULL, arrivals INTEGER NOT NULL, in_reception INTEGER NOT NULL,
    free_places INTEGER NOT NULL, time_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS view_reports_lid ON view_reports (lid, period_end);
CREATE TABLE IF NOT EXISTS view_statements (
    id TEXT PRIMARY KEY, lid INTEGER NOT NULL, seq INTEGER NOT NULL, title TEXT NOT NULL,
    text TEXT NOT NULL, time_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS view_endorsements (
    id TEXT PRIMARY KEY, lid INTEGER NOT NULL, seq INTEGER NOT NULL, ref_log TEXT NOT NULL,
    ref TEXT NOT NULL, time_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS view_endorsements_ref ON view_endorsements (ref);
CREATE TABLE IF NOT EXISTS view_cities (
    lid INTEGER PRIMARY KEY, seq INTEGER NOT NULL, name TEXT NOT NULL, country TEXT NOT NULL,
    urls TEXT NOT NULL, contact TEXT NOT NULL, languages TEXT NOT NULL
);
"""

#: Entries applied per transaction while catching up (bounded memory and lock time).
BATCH = 2000


#: The view schema's version, kept in ``meta``: change it whenever a view table or what is
#: kept in one changes, so that nodes upgrading rebuild their view instead of serving from it.
VIEW_VERSION = "2"
VIEW_VERSION_KEY = "view_version"


def ensure_view_tables(store: Store) -> None:
    """Create the view tables; first drop them if another release built them (rebuilt on catch-up)."""
    if store.get_meta(VIEW_VERSION_KEY) != VIEW_VERSION:
        with store.write():
            if store.get_meta(VIEW_VERSION_KEY) != VIEW_VERSION:
                for table in VIEW_TABLES:
                    store.conn.execute(f"DROP TABLE IF EXISTS {table}")
                store.set_meta(VIEW_VERSION_KEY, VIEW_VERSION)
    store.conn.executescript(VIEW_SCHEMA)


class ViewUpdater:
    """Applies new entries of every log to the view tables, incrementally."""

    def __init__(self, registry: SchemaRegistry) -> None:
        self.registry = registry

    def catch_up(self, store: Store, on_batch: Callable[[int], None] | None = None) -> int:
        """Apply every entry not yet in the view; returns how many were applied."""
        ensure_view_tables(store)
        applied = 0
        for state in store.logs():
            while True:
                n = self._apply_batch(store, state)
                applied += n
                if on_batch and n:
                    on_batch(n)
                if n < BATCH:
                    break
        return applied

    def rebuild(self, store: Store) -> int:
        """Drop the view and build it again from the logs (``solidarity reindex``)."""
        with store.write():
            for table in VIEW_TABLES:
                store.conn.execute(f"DROP TABLE IF EXISTS {table}")
            store.set_meta(VIEW_VERSION_KEY, VIEW_VERSION)
        return self.catch_up(store)

    def _apply_batch(self, store: Store, state: LogState) -> int:
        with store.write():
            row = store.conn.execute("SELECT seq FROM view_cursor WHERE lid = ?", (state.lid,)).fetchone()
            start = row[0] if row else 0
            size = store.conn.execute("SELECT size FROM logs WHERE lid = ?", (state.lid,)).fetchone()[0]
            end = min(size, start + BATCH)
            if end <= start:
                return 0
            for stored in store.entries(state.lid, start, end):
                self._apply(store, state.lid, stored.seq, stored.leaf.hex(), stored.entry, stored.body)
            store.conn.execute(
                "INSERT INTO view_cursor (lid, seq) VALUES (?, ?) ON CONFLICT (lid) DO UPDATE SET seq = excluded.seq",
                (state.lid, end),
            )
        return end - start

    # -- one entry -------------------------------------------------------

    def _apply(self, store: Store, lid: int, seq: int, entry_id: str, entry_bytes: bytes, body_bytes) -> None:
        conn = store.conn
        # Accepts that arrived before the entry they name (with this log's id) now resolve;
        # every entry counts, valid or not, as the join on view_events did.
        conn.execute(
            "UPDATE view_accepts SET resolved = 1 WHERE ref = ? AND ref_log = (SELECT log_id FROM logs WHERE lid = ?)",
            (entry_id, lid),
        )
        try:
            entry = decode_entry(entry_bytes)
        except ProtocolError as exc:
            conn.execute(
                "INSERT INTO view_events (id, lid, seq, type, status, reason) VALUES (?, ?, ?, '', 'invalid', ?)",
                (entry_id, lid, seq, f"entry does not decode: {exc}"[:300]),
            )
            return
        status, reason, body = "valid", None, None
        if body_bytes is None:
            status = "erased"
        elif not self.registry.knows(entry.type, entry.schema):
            try:
                _, body = decode_body(body_bytes)
            except ProtocolError as exc:
                status, reason = "invalid", f"body does not decode: {exc}"
            else:
                status, reason = "unknown", f"event type {entry.type} version {entry.schema} is not known here"
        else:
            try:
                # Canonical decoding and the type's schema in one pass (protocol.typed_bodies).
                body = self.registry.decode_body(entry.type, entry.schema, body_bytes)
            except SchemaError as exc:
                status, reason = "invalid", str(exc)
            except ProtocolError as exc:
                status, reason = "invalid", f"body does not decode: {exc}"
        if status == "valid":
            reason = self._facts(conn, lid, seq, entry_id, entry.type, entry.time_ms, body)
            if reason:
                status = "invalid"
        conn.execute(
            "INSERT INTO view_events (id, lid, seq, type, schema, time_ms, body, status, reason) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                entry_id, lid, seq, entry.type, entry.schema, entry.time_ms,
                json.dumps(body, ensure_ascii=False, sort_keys=True) if body is not None else None,
                status, reason[:500] if reason else None,
            ),
        )

    @staticmethod
    def _own_earlier(conn, lid: int, ref: str, types: tuple[str, ...]) -> str | None:
        """Why ``ref`` is not an earlier valid entry of this same log of one of ``types``."""
        # Only this log is looked at: whether another log's entry has arrived yet must not
        # change the outcome (or its wording), or views would depend on arrival order.
        row = conn.execute(
            "SELECT lid, type, status FROM view_events WHERE id = ? AND lid = ?", (ref, lid)
        ).fetchone()
        if row is None:
            return (
                f"refers to {ref[:16]}..., which is not an earlier entry of this city's own log "
                "(a city can only report on or retract its own entries)"
            )
        if row[1] not in types:
            return f"refers to a {row[1]} entry; expected {' or '.join(types)}"
        if row[2] != "valid":
            return f"refers to an entry that is {row[2]}"
        return None

    def _facts(self, conn, lid: int, seq: int, entry_id: str, type_: str, time_ms: int, body: dict) -> str | None:
        """Store what the entry says; return a reason if it is authentic but cannot count."""
        if type_ in ("pledge", "offer", "request"):
            kind = body["kind"] if type_ == "pledge" else body["category"]
            quantity = body["places"] if type_ == "pledge" else body["quantity"]
            unit = "places" if type_ == "pledge" else body["unit"]
            # Accepts of it that arrived first (from any log, naming this log) and still count.
            accepted, accepts = conn.execute(
                "SELECT COALESCE(SUM(COALESCE(quantity, ?)), 0), COUNT(*) FROM view_accepts "
                "WHERE ref = ? AND ref_log = (SELECT log_id FROM logs WHERE lid = ?) AND NOT retracted",
                (quantity, entry_id, lid),
            ).fetchone()
            conn.execute(
                "INSERT INTO view_items (id, lid, seq, type, kind, quantity, unit, from_date, until_date, "
                "description, time_ms, accepted, accepts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry_id, lid, seq, type_, kind, quantity, unit, body["from"], body["until"],
                 body.get("description"), time_ms, accepted, accepts),
            )
        elif type_ == "progress":
            why = self._own_earlier(conn, lid, body["ref"], ("pledge", "offer"))
            if why:
                return why
            conn.execute(
                "INSERT INTO view_progress (ref, lid, seq, id, delivered) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (ref) DO UPDATE SET seq = excluded.seq, id = excluded.id, delivered = excluded.delivered",
                (body["ref"], lid, seq, entry_id, body["delivered"]),
            )
            conn.execute(
                "UPDATE view_items SET delivered = ? WHERE id = ? AND lid = ?", (body["delivered"], body["ref"], lid)
            )
        elif type_ == "retract":
            why = self._own_earlier(
                conn, lid, body["ref"],
                ("pledge", "offer", "request", "progress", "accept", "report", "statement", "endorse", "vouch", "revoke"),
            )
            if why:
                return why
            first = conn.execute(
                "INSERT OR IGNORE INTO view_retracts (ref, lid, seq, id, reason) VALUES (?, ?, ?, ?, ?)",
                (body["ref"], lid, seq, entry_id, body["reason"]),
            ).rowcount
            if first:  # a second retraction of the same entry changes nothing
                conn.execute("UPDATE view_items SET retracted = 1 WHERE id = ? AND lid = ?", (body["ref"], lid))
                self._after_accept_retracted(conn, lid, body["ref"])
            self._after_progress_retracted(conn, lid, body["ref"])
        elif type_ == "accept":
            resolved = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM view_events e JOIN logs l ON l.lid = e.lid "
                "WHERE e.id = ? AND l.log_id = ?)",
                (body["ref"], body["log"]),
            ).fetchone()[0]
            conn.execute(
                "INSERT INTO view_accepts (id, lid, seq, ref_log, ref, quantity, time_ms, resolved) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (entry_id, lid, seq, body["log"], body["ref"], body.get("quantity"), time_ms, resolved),
            )
            self._accept_counts(conn, body["log"], body["ref"], body.get("quantity"), +1)
        elif type_ == "report":
            conn.execute(
                "INSERT INTO view_reports (id, lid, seq, period_start, period_end, arrivals, in_reception, "
                "free_places, time_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry_id, lid, seq, body["period_start"], body["period_end"], body["arrivals"],
                 body["in_reception"], body["free_places"], time_ms),
            )
        elif type_ == "statement":
            conn.execute(
                "INSERT INTO view_statements (id, lid, seq, title, text, time_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (entry_id, lid, seq, body["title"], body["text"], time_ms),
            )
        elif type_ == "endorse":
            conn.execute(
                "INSERT INTO view_endorsements (id, lid, seq, ref_log, ref, time_ms) VALUES (?, ?, ?, ?, ?, ?)",
                (entry_id, lid, seq, body["log"], body["ref"], time_ms),
            )
        elif type_ == "city":
            conn.execute(
                "INSERT INTO view_cities (lid, seq, name, country, urls, contact, languages) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (lid) DO UPDATE SET seq = excluded.seq, "
                "name = excluded.name, country = excluded.country, urls = excluded.urls, "
                "contact = excluded.contact, languages = excluded.languages",
                (lid, seq, body["name"], body["country"], json.dumps(body["urls"]), body["contact"],
                 json.dumps(body["languages"])),
            )
        return None


    @staticmethod
    def _accept_counts(conn, ref_log: str, ref: str, quantity: int | None, sign: int) -> None:
        """Add (or take away) one accept to the item it names, if that item is in the view."""
        conn.execute(
            "UPDATE view_items SET accepted = accepted + ? * COALESCE(?, quantity), accepts = accepts + ? "
            "WHERE id = ? AND lid = (SELECT lid FROM logs WHERE log_id = ?)",
            (sign, quantity, sign, ref, ref_log),
        )

    @classmethod
    def _after_accept_retracted(cls, conn, lid: int, retracted: str) -> None:
        """A retracted accept stops counting towards the item it names."""
        row = conn.execute(
            "UPDATE view_accepts SET retracted = 1 WHERE id = ? AND lid = ? RETURNING ref_log, ref, quantity",
            (retracted, lid),
        ).fetchone()
        if row is not None:
            cls._accept_counts(conn, row[0], row[1], row[2], -1)

    @staticmethod
    def _after_progress_retracted(conn, lid: int, retracted: str) -> None:
        """A retracted progress report stops counting: the item's delivery falls back to the
        latest progress report of the same log about it that is not retracted (or to none)."""
        row = conn.execute(
            "SELECT json_extract(body, '$.ref') FROM view_events WHERE id = ? AND lid = ? AND type = 'progress'",
            (retracted, lid),
        ).fetchone()
        if row is None:
            return
        item = row[0]
        latest = conn.execute(
            "SELECT id, seq, json_extract(body, '$.delivered') FROM view_events "
            "WHERE lid = ? AND type = 'progress' AND status = 'valid' AND json_extract(body, '$.ref') = ? "
            "AND id NOT IN (SELECT ref FROM view_retracts WHERE lid = ?) ORDER BY seq DESC LIMIT 1",
            (lid, item, lid),
        ).fetchone()
        if latest is None:
            conn.execute("DELETE FROM view_progress WHERE ref = ? AND lid = ?", (item, lid))
        else:
            conn.execute(
                "UPDATE view_progress SET id = ?, seq = ?, delivered = ? WHERE ref = ? AND lid = ?",
                (latest[0], latest[1], latest[2], item, lid),
            )
        conn.execute(
            "UPDATE view_items SET delivered = ? WHERE id = ? AND lid = ?",
            (latest[2] if latest is not None else 0, item, lid),
        )


def dump_view(store: Store) -> dict[str, list[tuple]]:
    """Every view table's rows, sorted: for comparing an incremental view with a rebuilt one."""
    out = {}
    for table in VIEW_TABLES:
        rows = store.conn.execute(f"SELECT * FROM {table}").fetchall()
        out[table] = sorted(rows, key=repr)
    return out
