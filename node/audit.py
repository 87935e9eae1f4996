"""A full audit of every log in the store (``solidarity verify``).

Trusts nothing the store says about itself: every entry is decoded and its
position checked, every leaf hash recomputed, every body that is still
present checked against its entry, the tree rebuilt from the leaves and every
stored tile hash compared, and the final root compared with the latest
checkpoint, whose signature is checked with the log's verifier key. The first
problem found is reported with the log and position it concerns.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass

from node.store import LogState, Store
from protocol.checkpoint import open_checkpoint
from protocol.entry import check_body, decode_entry, entry_id
from protocol.errors import ProtocolError
from protocol.keys import parse_verifier_key
from protocol.merkle import EMPTY_ROOT, CompactTree


class AuditFailure(Exception):
    """The first problem the audit found (the CLI prints it and exits 1)."""


@dataclass(frozen=True, slots=True)
class AuditedLog:
    log_id: str
    origin: str
    size: int
    bodies: int


def _fail(state: LogState, message: str) -> AuditFailure:
    return AuditFailure(f"log {state.origin} ({state.log_id[:16]}): {message}")


def audit_log(store: Store, state: LogState) -> AuditedLog:
    verifier = parse_verifier_key(state.verifier)
    signed = None
    if state.checkpoint is not None:
        try:
            signed = open_checkpoint(state.checkpoint, verifier).checkpoint
        except ProtocolError as exc:
            raise _fail(state, f"checkpoint: {exc}") from exc
        if signed.size > state.size:
            raise _fail(state, f"checkpoint signs size {signed.size} but only {state.size} entries are held")
    elif state.size and state.own:
        raise _fail(state, "no signed checkpoint for a non-empty log")
    if state.pending is not None:
        try:
            open_checkpoint(state.pending, verifier)
        except ProtocolError as exc:
            raise _fail(state, f"pending checkpoint: {exc}") from exc
    root_at_checkpoint = EMPTY_ROOT
    tree = CompactTree()
    stored_nodes = {}
    for level, idx, h in store.conn.execute(
        "SELECT level, idx, hash FROM hashes WHERE lid = ? ORDER BY level, idx", (state.lid,)
    ):
        stored_nodes[(level, idx)] = h
    expected_nodes = 0
    bodies = 0
    for stored in store.entries(state.lid):
        if stored.seq != tree.size:
            raise _fail(state, f"entry {tree.size} is missing (next stored entry is {stored.seq})")
        try:
            entry = decode_entry(stored.entry)
        except ProtocolError as exc:
            raise _fail(state, f"entry {stored.seq}: {exc}") from exc
        if entry.seq != stored.seq:
            raise _fail(state, f"entry {stored.seq}: sequence {entry.seq}, expected {stored.seq}")
        if entry.origin != state.origin:
            raise _fail(state, f"entry {stored.seq}: origin {entry.origin!r}, expected {state.origin!r}")
        leaf = entry_id(stored.entry)
        if leaf != stored.leaf:
            raise _fail(state, f"entry {stored.seq}: stored leaf hash does not match the entry")
        if stored.body is not None:
            try:
                check_body(entry, stored.body)
            except ProtocolError as exc:
                raise _fail(state, f"entry {stored.seq}: body: {exc}") from exc
            bodies += 1
        for level, idx, h in tree.append(leaf):
            if level and level % 8 == 0:
                expected_nodes += 1
                if stored_nodes.get((level, idx)) != h:
                    raise _fail(state, f"tile hash at level {level} index {idx} is missing or wrong")
        if signed is not None and tree.size == signed.size:
            root_at_checkpoint = tree.root()
    if tree.size != state.size:
        raise _fail(state, f"log holds {tree.size} entries but its head says {state.size}")
    if expected_nodes != len(stored_nodes):
        raise _fail(state, f"{len(stored_nodes) - expected_nodes} stored tile hashes beyond the log's size")
    root = tree.root() if tree.size else EMPTY_ROOT
    if root != state.root:
        raise _fail(state, f"rebuilt root at size {tree.size} differs from the stored root")
    if signed is not None and signed.root != root_at_checkpoint:
        raise _fail(state, f"checkpoint signs size {signed.size} with another root than the entries held")
    if state.own and (signed is None or signed.size != tree.size):
        raise _fail(state, f"own log holds {tree.size} entries but its checkpoint is not for that size")
    return AuditedLog(log_id=state.log_id, origin=state.origin, size=tree.size, bodies=bodies)


def audit_store(store: Store, progress: Callable[[AuditedLog], None] | None = None) -> list[AuditedLog]:
    """Audit the database file and then every log; raises AuditFailure at the first problem."""
    try:
        problems = [r[0] for r in store.conn.execute("PRAGMA quick_check").fetchall()]
    except sqlite3.DatabaseError as exc:
        raise AuditFailure(f"database file {store.path} is corrupted: {exc}") from exc
    if problems != ["ok"]:
        raise AuditFailure(f"database file {store.path} is corrupted: {problems[0][:200]}")
    missing = {"meta", "logs", "entries", "hashes", "evidence"} - set(store.db.table_names())
    if missing:
        raise AuditFailure(f"database file {store.path} lacks tables: {', '.join(sorted(missing))}")
    results = []
    try:
        logs = store.logs()
    except sqlite3.DatabaseError as exc:
        raise AuditFailure(f"database file {store.path} is corrupted: {exc}") from exc
    for state in logs:
        try:
            result = audit_log(store, state)
        except sqlite3.DatabaseError as exc:
            raise _fail(state, f"database read failed: {exc}") from exc
        results.append(result)
        if progress:
            progress(result)
    return results
