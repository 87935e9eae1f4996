"""Appending events to the city's own log.

Everything is validated before the write lock is taken, so bad input never
costs a write. The append itself (entries, tile hashes, the new signed
checkpoint) is one SQLite transaction under the write lock, with the log's
size re-read inside it: two processes authoring at once queue on the lock and
can never give two entries the same sequence number (which would be a fork of
our own log, i.e. evidence of equivocation against our own city).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from node.errors import AuthoringRefused, StorageError
from node.store import LogState, Store
from protocol.checkpoint import Checkpoint, sign_checkpoint
from protocol.entry import SALT_SIZE, Entry, entry_id, make_entry
from protocol.errors import SchemaError
from protocol.keys import Signer
from protocol.merkle import CompactTree
from protocol.schema import SchemaRegistry

log = logging.getLogger(__name__)

#: Most events one append may carry (an import of a large spreadsheet is split
#: into transactions of this size only by the caller, never silently).
MAX_BATCH = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """An event to author: its type and body (schema version defaults to the latest)."""

    type: str
    body: dict
    schema: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Authored:
    """One entry as appended (or as it would be, for a dry run)."""

    entry: Entry
    entry_bytes: bytes
    salted_body: bytes
    body: dict

    @property
    def id(self) -> bytes:
        return entry_id(self.entry_bytes)


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Author:
    """Authors entries into the own log of the store, signing with ``signer``."""

    def __init__(
        self,
        store: Store,
        signer: Signer,
        registry: SchemaRegistry,
        *,
        network: str,
        clock_ms: Callable[[], int] = _now_ms,
        salt: Callable[[int], bytes] = os.urandom,
        guard: Callable[[Store, LogState], None] | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.registry = registry
        self.network = network
        self.clock_ms = clock_ms
        self.salt = salt
        #: Called under the write lock before appending; raises to refuse
        #: (e.g. evidence against our own city, or a restored node behind its peers).
        self.guard = guard

    def validate(self, events: Sequence[Event]) -> list[tuple[Event, int]]:
        """Check every event against its schema; the error names the event's position."""
        if not events:
            raise AuthoringRefused("nothing to append: no events given")
        if len(events) > MAX_BATCH:
            raise AuthoringRefused(f"at most {MAX_BATCH} events per append, got {len(events)}")
        checked = []
        for n, event in enumerate(events, start=1):
            version = event.schema
            try:
                if version is None:
                    version = self.registry.latest(event.type)
                if not self.registry.knows(event.type, version):
                    raise SchemaError(
                        f"unknown event type {event.type[:40]!r} version {version}; known types: "
                        + ", ".join(self.registry.types())
                    )
                self.registry.validate(event.type, version, event.body)
            except SchemaError as exc:
                prefix = f"event {n}: " if len(events) > 1 else ""
                raise SchemaError(f"{prefix}{exc}") from exc
            checked.append((event, version))
        return checked

    def _build(self, state: LogState, checked: list[tuple[Event, int]], time_ms: int) -> list[Authored]:
        out = []
        for i, (event, version) in enumerate(checked):
            entry, entry_bytes, salted = make_entry(
                network=self.network,
                origin=state.origin,
                seq=state.size + i,
                time_ms=time_ms,
                type=event.type,
                schema=version,
                body=event.body,
                salt=self.salt(SALT_SIZE),
            )
            out.append(Authored(entry=entry, entry_bytes=entry_bytes, salted_body=salted, body=event.body))
        return out

    def preview(self, events: Sequence[Event]) -> list[Authored]:
        """What ``append`` would write now; writes nothing (``--dry-run``)."""
        checked = self.validate(events)
        return self._build(self.store.own_log(), checked, self.clock_ms())

    def append(self, events: Sequence[Event]) -> list[Authored]:
        """Append all events in one transaction under one new signed checkpoint."""
        checked = self.validate(events)
        store = self.store
        with store.write():
            state = store.own_log()  # re-read under the lock: the size is ours now
            if self.guard is not None:
                self.guard(store, state)
            tree = CompactTree.from_reader(state.size, store.reader(state.lid))
            if tree.root() != state.root:
                raise StorageError(
                    f"own log: stored root does not match the stored hashes at size {state.size}: "
                    "run 'solidarity verify'"
                )
            now = self.clock_ms()
            authored = self._build(state, checked, now)
            records = []
            nodes: list[tuple[int, int, bytes]] = []
            for a in authored:
                leaf = a.id
                nodes.extend(tree.append(leaf))
                records.append((leaf, a.entry_bytes, a.salted_body))
            root = tree.root()
            size = state.size + len(authored)
            note = sign_checkpoint(Checkpoint(origin=state.origin, size=size, root=root), self.signer)
            store.insert_entries(state.lid, state.size, records, nodes)
            store.set_head(state.lid, size=size, root=root, checkpoint=note, updated_ms=now)
        log.info(
            "appended",
            extra={"log_id": state.log_id, "first_seq": state.size, "count": len(authored), "size": size},
        )
        return authored
