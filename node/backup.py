"""Backups that are consistent while the node runs, and restores that never fork the log.

``backup_node`` copies the database through SQLite's online backup API (a
consistent snapshot even during a burst of writes) and audits the copy.
``restore_node`` audits a backup before putting it in place, then marks the
node as needing to catch up: the failure Secure Scuttlebutt users report most
is restoring an old backup, authoring again, and so signing two histories. A
restored node refuses to author until it has fetched its own log from a peer
that holds it (``solidarity sync`` or a running ``serve`` does that), unless
the operator overrides it with ``solidarity resume-authoring`` (logged).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from node.audit import AuditedLog, AuditFailure, audit_store
from node.config import Config
from node.errors import StorageError
from node.store import Store, backup_database

log = logging.getLogger(__name__)

#: Meta key set by a restore, cleared once a peer confirmed our own log.
CATCH_UP_KEY = "catch_up_required"


def backup_node(config: Config, out: Path) -> list[AuditedLog]:
    out = Path(out)
    if out.exists():
        raise StorageError(f"{out} already exists; refusing to overwrite it")
    with Store(config.database_path, readonly=True) as store:
        backup_database(store.conn, out)
    try:
        with Store(out, readonly=True) as copy:
            return audit_store(copy)
    except AuditFailure as exc:
        out.unlink(missing_ok=True)
        raise StorageError(f"the backup did not verify, so it was removed: {exc}") from exc


def restore_node(config: Config, backup: Path, verifier: str) -> list[AuditedLog]:
    backup = Path(backup)
    if not backup.exists():
        raise StorageError(f"backup {backup} does not exist")
    try:
        with Store(backup, readonly=True) as copy:
            results = audit_store(copy)
            own = copy.own_log()
    except AuditFailure as exc:
        raise StorageError(f"backup {backup} does not verify; nothing was changed: {exc}") from exc
    if own.origin != config["node.origin"] or own.verifier != verifier:
        raise StorageError(
            f"backup {backup} holds the log of {own.origin!r}, not this node's ({config['node.origin']!r})"
        )
    target = config.database_path
    tmp = target.with_name(target.name + ".restoring")
    data = backup.read_bytes()
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    for suffix in ("-wal", "-shm"):
        Path(str(target) + suffix).unlink(missing_ok=True)
    os.replace(tmp, target)
    with Store(target) as store, store.write():
        store.set_meta(CATCH_UP_KEY, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    log.warning("restored from backup; authoring waits for catch-up", extra={"backup": str(backup)})
    return results


def catch_up_required(store: Store) -> bool:
    return store.get_meta(CATCH_UP_KEY) is not None


def mark_caught_up(store: Store, *, forced: bool = False) -> bool:
    """Clear the restore mark; returns True if it was set."""
    if not catch_up_required(store):
        return False
    with store.write():
        store.set_meta(CATCH_UP_KEY, None)
    if forced:
        log.warning("authoring resumed by operator override without catching up from peers")
    else:
        log.info("own log confirmed by a peer after restore; authoring allowed again")
    return True
