"""The node's SQLite store: every log it holds, their entries, bodies and tile hashes.

One database file holds this city's log and, later, verified copies of other
cities' logs. Tables (all ``WITHOUT ROWID`` where the key is the data):

- ``meta``: ``format_version`` and other store-wide facts; also, while a sync
  is under way, the pending checkpoint's tree edge past what is held
  (``pending_edge:<lid>``, see :meth:`Store.pending_edge`).
- ``logs``: one row per log: its origin, verifier key, the number of entries
  held (``size``) and their root, the latest checkpoint signed by its city
  that the node holds completely (``checkpoint``, never beyond ``size``) and,
  while a sync is under way, the checkpoint being fetched towards (``pending``).
- ``evidence``: at most one piece of evidence of equivocation per log (one
  is enough, and a city signing many forks cannot fill the disk).
- ``entries``: ``(lid, seq) -> leaf hash, entry bytes, salted body``. The
  body column is NULL once a body is erased; the entry and its leaf stay.
- ``hashes``: tree hashes at levels 8, 16, ... (the levels tlog-tiles serves
  above level 0). Level-0 hashes are the ``leaf`` column of ``entries``;
  every other node hash is recomputed from at most 128 stored hashes, which
  keeps the store near the raw entry size instead of 64 bytes more per entry.

Writers take SQLite's write lock (``BEGIN IMMEDIATE``) for the whole append,
so the CLI and a running server can never give two entries the same sequence
number. The database runs in WAL mode with ``synchronous=FULL``: a command
that reported success has its entry on disk, even if the machine dies next.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from node.errors import NotFound, StorageError

if TYPE_CHECKING:
    import sqlite_utils

log = logging.getLogger(__name__)

#: The database format this release writes. Bump it, and add a migration in
#: ``MIGRATIONS``, whenever a table changes.
FORMAT_VERSION = 1

#: Statements that take a database from format N to N + 1, applied in order by
#: ``Store`` when it opens an older database (after a backup beside it).
MIGRATIONS: dict[int, list[str]] = {}

#: How long a writer waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS logs (
    lid INTEGER PRIMARY KEY,
    log_id TEXT NOT NULL UNIQUE,
    origin TEXT NOT NULL UNIQUE,
    verifier TEXT NOT NULL,
    own INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    root BLOB NOT NULL,
    checkpoint BLOB,
    pending BLOB,
    updated_ms INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS entries (
    lid INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    leaf BLOB NOT NULL,
    entry BLOB NOT NULL,
    body BLOB,
    PRIMARY KEY (lid, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS evidence (
    lid INTEGER PRIMARY KEY,
    evidence BLOB NOT NULL,
    found_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS hashes (
    lid INTEGER NOT NULL,
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash BLOB NOT NULL,
    PRIMARY KEY (lid, level, idx)
) WITHOUT ROWID;
"""


@dataclass(frozen=True, slots=True, kw_only=True)
class LogState:
    """What the store holds about one log, as of one read."""

    lid: int
    log_id: str
    origin: str
    verifier: str
    own: bool
    size: int
    root: bytes
    checkpoint: bytes | None
    pending: bytes | None
    updated_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredEntry:
    seq: int
    leaf: bytes
    entry: bytes
    body: bytes | None


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro",
                uri=True,
                isolation_level=None,
                timeout=BUSY_TIMEOUT_S,
                check_same_thread=False,
            )
        else:
            conn = sqlite3.connect(
                str(path), isolation_level=None, timeout=BUSY_TIMEOUT_S, check_same_thread=False
            )
            # WAL lets readers (the HTTP API) run while one writer appends.
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: a transaction reported committed survives power loss too.
            conn.execute("PRAGMA synchronous=FULL")
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from exc
    return conn


class Store:
    """A handle on the node's database; one per thread or task that uses it.

    ``Store.create`` makes a new database; ``Store(path)`` opens an existing one
    and refuses formats it does not know.
    """

    def __init__(self, path: Path | str, *, readonly: bool = False) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise StorageError(
                f"database {self.path} does not exist: run 'solidarity init' first, "
                "or point --data at the node's data folder"
            )
        self.readonly = readonly
        self.conn = _connect(self.path, readonly=readonly)
        self._db: sqlite_utils.Database | None = None
        self._check_format()

    @classmethod
    def create(cls, path: Path | str) -> Store:
        path = Path(path)
        if path.exists():
            raise StorageError(f"database {path} already exists; refusing to overwrite it")
        conn = _connect(path, readonly=False)
        try:
            # One script, one transaction: a crash leaves no half-made schema.
            conn.executescript(
                "BEGIN IMMEDIATE;"
                + _SCHEMA
                + f"INSERT INTO meta (key, value) VALUES ('format_version', '{FORMAT_VERSION}');"
                + "COMMIT;"
            )
        finally:
            conn.close()
        return cls(path)

    @property
    def db(self) -> sqlite_utils.Database:
        """sqlite-utils over the same connection, for introspection and maintenance
        (the audit, backups); made on first use so short CLI commands do not pay for it."""
        if self._db is None:
            import sqlite_utils as su

            self._db = su.Database(self.conn, execute_plugins=False)
        return self._db

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- format ---------------------------------------------------------

    def _check_format(self) -> None:
        try:
            row = self.conn.execute(
                "SELECT value FROM meta WHERE key = 'format_version'"
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StorageError(
                f"{self.path} is not a readable solidarity database ({exc}); "
                "run 'solidarity verify' or restore from a backup"
            ) from exc
        if row is None:
            raise StorageError(f"{self.path} has no format version: not a solidarity database")
        try:
            version = int(row[0])
        except ValueError as exc:
            raise StorageError(f"{self.path}: format version {row[0]!r} is not a number") from exc
        if version > FORMAT_VERSION:
            raise StorageError(
                f"database format {version} was written by a newer release of solidarity-node "
                f"(this release reads up to format {FORMAT_VERSION}): upgrade solidarity-node, "
                "or restore a backup made by this release"
            )
        self.format_version = version
        if version < FORMAT_VERSION:
            if self.readonly:
                raise StorageError(
                    f"database format {version} is older than this release's ({FORMAT_VERSION}): "
                    "start the node (or any command that writes) once to migrate it"
                )
            self._migrate(version)

    def _migrate(self, version: int) -> None:
        """Bring an older database forward, after a consistent backup beside it."""
        backup = self.path.with_name(f"{self.path.name}.format-{version}.bak")
        backup_database(self.conn, backup)
        log.warning("migrating database", extra={"from": version, "to": FORMAT_VERSION, "backup": str(backup)})
        with self.write():
            for step in range(version, FORMAT_VERSION):
                for statement in MIGRATIONS[step]:
                    self.conn.execute(statement)
            self.conn.execute(
                "UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION),)
            )
        self.format_version = FORMAT_VERSION

    # -- store-wide facts -----------------------------------------------

    def get_meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or, with None, remove) a store-wide fact; call inside ``write()``."""
        if value is None:
            self.conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        else:
            self.conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- transactions ---------------------------------------------------

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Hold SQLite's write lock for the block; commit if it returns, roll back if it raises."""
        if self.readonly:
            raise StorageError("this store was opened read-only")
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StorageError(f"cannot take the database write lock: {exc}") from exc
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        else:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
                raise StorageError(f"commit failed, nothing was written: {exc}") from exc

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A consistent read of several statements (one WAL snapshot)."""
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    def data_version(self) -> int:
        """Changes whenever another connection commits: how ``serve`` notices the CLI."""
        return self.conn.execute("PRAGMA data_version").fetchone()[0]

    # -- logs -----------------------------------------------------------

    _LOG_COLUMNS = "lid, log_id, origin, verifier, own, size, root, checkpoint, pending, updated_ms"

    @staticmethod
    def _log_row(row: tuple) -> LogState:
        lid, log_id, origin, verifier, own, size, root, checkpoint, pending, updated_ms = row
        return LogState(
            lid=lid,
            log_id=log_id,
            origin=origin,
            verifier=verifier,
            own=bool(own),
            size=size,
            root=root,
            checkpoint=checkpoint,
            pending=pending,
            updated_ms=updated_ms,
        )

    def add_log(self, *, log_id: str, origin: str, verifier: str, own: bool, root: bytes) -> int:
        """Register a log (inside ``write()``); returns its local integer key."""
        cur = self.conn.execute(
            "INSERT INTO logs (log_id, origin, verifier, own, size, root) VALUES (?, ?, ?, ?, 0, ?)",
            (log_id, origin, verifier, int(own), root),
        )
        return int(cur.lastrowid)

    def logs(self) -> list[LogState]:
        rows = self.conn.execute(f"SELECT {self._LOG_COLUMNS} FROM logs ORDER BY log_id")
        return [self._log_row(r) for r in rows]

    def log(self, log_id: str) -> LogState:
        row = self.conn.execute(
            f"SELECT {self._LOG_COLUMNS} FROM logs WHERE log_id = ?", (log_id,)
        ).fetchone()
        if row is None:
            raise NotFound(f"no log {log_id[:64]} on this node")
        return self._log_row(row)

    def find_log(self, log_id: str) -> LogState | None:
        try:
            return self.log(log_id)
        except NotFound:
            return None

    def own_log(self) -> LogState:
        row = self.conn.execute(
            f"SELECT {self._LOG_COLUMNS} FROM logs WHERE own = 1"
        ).fetchone()
        if row is None:
            raise StorageError(f"{self.path} holds no log of this city: was 'solidarity init' interrupted?")
        return self._log_row(row)

    def set_head(
        self,
        lid: int,
        *,
        size: int,
        root: bytes,
        checkpoint: bytes | None,
        updated_ms: int,
        pending: bytes | None = None,
    ) -> None:
        self.conn.execute(
            "UPDATE logs SET size = ?, root = ?, checkpoint = ?, pending = ?, updated_ms = ? WHERE lid = ?",
            (size, root, checkpoint, pending, updated_ms, lid),
        )
        if pending is None:
            self.set_pending_edge(lid, None)

    def truncate(self, lid: int, size: int, root: bytes, updated_ms: int) -> None:
        """Drop entries past ``size`` that no held checkpoint covers (an abandoned sync)."""
        self.conn.execute("DELETE FROM entries WHERE lid = ? AND seq >= ?", (lid, size))
        self.conn.execute(
            "DELETE FROM hashes WHERE lid = ? AND ((idx + 1) << level) > ?", (lid, size)
        )
        self.conn.execute(
            "UPDATE logs SET size = ?, root = ?, pending = NULL, updated_ms = ? WHERE lid = ?",
            (size, root, updated_ms, lid),
        )
        self.set_pending_edge(lid, None)

    # The pending checkpoint's tree past what is held: the hashes of the complete subtrees
    # that cover leaves [size, pending size), left to right. With the held entries they
    # rebuild the pending root and any consistency proof from a size we hold to it, so a
    # fork against an unfinished sync can still be proven. Kept in ``meta`` (a few hundred
    # bytes per log being synced) under one key per log, gone once the sync ends.

    def pending_edge(self, lid: int) -> tuple[int, list[bytes]] | None:
        """(held size it starts at, subtree hashes), or None if none is held."""
        value = self.get_meta(f"pending_edge:{lid}")
        if value is None:
            return None
        size, _, hashes = value.partition(" ")
        data = bytes.fromhex(hashes)
        return int(size), [data[i : i + 32] for i in range(0, len(data), 32)]

    def set_pending_edge(self, lid: int, edge: tuple[int, Sequence[bytes]] | None) -> None:
        """Set (or, with None, drop) the pending checkpoint's edge; call inside ``write()``."""
        value = None if edge is None else f"{edge[0]} {b''.join(edge[1]).hex()}"
        self.set_meta(f"pending_edge:{lid}", value)

    # -- evidence -------------------------------------------------------

    def add_evidence(self, lid: int, evidence: bytes, found_ms: int) -> bool:
        """Keep the first evidence against a log; returns False if one was already held."""
        cur = self.conn.execute(
            "INSERT OR IGNORE INTO evidence (lid, evidence, found_ms) VALUES (?, ?, ?)",
            (lid, evidence, found_ms),
        )
        return cur.rowcount == 1

    def evidence(self) -> dict[str, tuple[bytes, int]]:
        """Evidence held, by log id: (encoded evidence, when it was found)."""
        rows = self.conn.execute(
            "SELECT logs.log_id, evidence.evidence, evidence.found_ms FROM evidence "
            "JOIN logs ON logs.lid = evidence.lid ORDER BY logs.log_id"
        )
        return {log_id: (ev, found) for log_id, ev, found in rows}

    # -- entries and hashes ---------------------------------------------

    def insert_entries(
        self,
        lid: int,
        first_seq: int,
        records: Sequence[tuple[bytes, bytes, bytes | None]],
        nodes: Sequence[tuple[int, int, bytes]],
    ) -> None:
        """Insert ``(leaf, entry, body)`` records from ``first_seq`` on, and the
        tile-level hashes they completed (inside ``write()``)."""
        self.conn.executemany(
            "INSERT INTO entries (lid, seq, leaf, entry, body) VALUES (?, ?, ?, ?, ?)",
            ((lid, first_seq + i, leaf, entry, body) for i, (leaf, entry, body) in enumerate(records)),
        )
        self.conn.executemany(
            "INSERT INTO hashes (lid, level, idx, hash) VALUES (?, ?, ?, ?)",
            ((lid, level, index, h) for level, index, h in nodes if level and level % 8 == 0),
        )

    def entries(self, lid: int, start: int = 0, end: int | None = None) -> Iterator[StoredEntry]:
        """Entries in sequence order, streamed (flat in memory whatever the log's size)."""
        if end is None:
            end = (1 << 63) - 1
        cur = self.conn.execute(
            # CAST: a damaged row whose value turned into TEXT still reads as bytes, so the
            # audit reports it as a bad entry instead of failing on UTF-8 decoding.
            "SELECT seq, CAST(leaf AS BLOB), CAST(entry AS BLOB), CAST(body AS BLOB) FROM entries "
            "WHERE lid = ? AND seq >= ? AND seq < ? ORDER BY seq",
            (lid, start, end),
        )
        for seq, leaf, entry, body in cur:
            yield StoredEntry(seq=seq, leaf=leaf, entry=entry, body=body)

    def stored_hashes(self, lid: int, level: int, start: int, count: int) -> list[bytes]:
        """The stored hashes at a tile level (a multiple of 8) from ``start``; exactly ``count`` of them."""
        if level == 0:
            rows = self.conn.execute(
                "SELECT leaf FROM entries WHERE lid = ? AND seq >= ? AND seq < ? ORDER BY seq",
                (lid, start, start + count),
            ).fetchall()
        else:
            rows = self.conn.execute(
                "SELECT hash FROM hashes WHERE lid = ? AND level = ? AND idx >= ? AND idx < ? ORDER BY idx",
                (lid, level, start, start + count),
            ).fetchall()
        if len(rows) != count:
            raise StorageError(
                f"log {lid}: expected {count} hashes at level {level} from index {start}, "
                f"found {len(rows)}: run 'solidarity verify'"
            )
        return [r[0] for r in rows]

    def bundle(self, lid: int, index: int, width: int, *, bodies: bool = False) -> list[bytes]:
        """Entries (or salted bodies, erased ones as ``b""``) of one 256-entry bundle."""
        column = "body" if bodies else "entry"
        start = index * 256
        rows = self.conn.execute(
            f"SELECT {column} FROM entries WHERE lid = ? AND seq >= ? AND seq < ? ORDER BY seq",
            (lid, start, start + width),
        ).fetchall()
        if len(rows) != width:
            raise StorageError(f"log {lid}: bundle {index} has {len(rows)} entries, expected {width}")
        return [r[0] if r[0] is not None else b"" for r in rows]

    def reader(self, lid: int) -> StoreHashReader:
        return StoreHashReader(self, lid)


def backup_database(conn: sqlite3.Connection, target: Path) -> None:
    """A consistent online copy through SQLite's backup API (safe while others write).

    Written to a temporary name, synced, then renamed: a crash never leaves a
    half-written file under the backup's name.
    """
    target = Path(target)
    tmp = target.with_name(target.name + ".partial")
    tmp.unlink(missing_ok=True)
    try:
        dest = sqlite3.connect(str(tmp))
        try:
            conn.backup(dest, pages=4096)
            dest.execute("PRAGMA journal_mode=DELETE")
        finally:
            dest.close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except (sqlite3.Error, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise StorageError(f"backup to {target} failed: {exc}") from exc


class StoreHashReader:
    """``protocol.merkle.HashReader`` over the stored tile-level hashes.

    A node at level ``8q + r`` is rebuilt from the ``2**r`` stored hashes at
    level ``8q`` beneath it (at most 128 hashes, one range query).
    """

    def __init__(self, store: Store, lid: int) -> None:
        self._store = store
        self._lid = lid

    def node(self, level: int, index: int) -> bytes:
        from protocol.merkle import node_hash

        r = level % 8
        row = self._store.stored_hashes(self._lid, level - r, index << r, 1 << r)
        while len(row) > 1:
            row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
        return row[0]


class ThreadLocalStores:
    """Read-only stores, one per worker thread, for the HTTP API's executor."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        self._all: list[Store] = []
        self._lock = threading.Lock()

    def get(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = Store(self._path, readonly=True)
            self._local.store = store
            with self._lock:
                self._all.append(store)
        return store

    def close(self) -> None:
        with self._lock:
            for store in self._all:
                with contextlib.suppress(sqlite3.Error):
                    store.close()
            self._all.clear()
