"""Fetching another city's log from any node that holds it, verifying everything first.

Sync uses only what every node serves: the city-signed checkpoint, the hash
tiles and the entry bundles of C2SP tlog-tiles, plus the body bundles beside
them. The order makes "nothing unverified is ever stored" hold:

1. The checkpoint is verified with the city's key (a bad one is a bad relay).
2. The edge tiles of the checkpoint's tree must rebuild its root; every other
   tile is checked against the tile above it, top down (:class:`PeerTree`).
3. Before anything new is stored, the peer's tree must contain what we hold:
   its root at our size must be ours. If it is not, the city signed two
   histories, and the consistency proof from the peer's verified tiles is
   self-contained evidence (``protocol.evidence``).
4. Bundle by bundle, the entries' leaf hashes must be their verified tile: a
   full bundle's 256 leaf hashes must reduce to its slot in the level-1 tile
   (exactly the check that admits a level-0 tile, so level-0 tiles are never
   fetched for full bundles), the last partial bundle's must equal its
   level-0 edge tile; every entry is decoded canonically and each body must
   match its entry's size and SHA-256. Verified bundles, the tile hashes they
   complete and the new head are committed a batch per transaction.

The next bundles are fetched while one is verified and the previous batch is
written, so the peer, the event loop and the database thread work at once.
Sync is interruptible and resumes where it stopped (the ``pending``
checkpoint remembers where it was going, and the edge of its tree past what
is held, so a fork against it can still be proven), memory stays flat (a few
bundles, one batch and the tiles above level 0), and a relay that serves
anything that does not match the city-signed root is refused before a byte of
it is stored.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import aiohttp

from node.errors import NodeError
from node.store import LogState, Store
from protocol.checkpoint import SignedCheckpoint, open_checkpoint
from protocol.entry import MAX_BODY_SIZE, check_body_hash, decode_entry, entry_id
from protocol.errors import ProtocolError
from protocol.evidence import Inconsistent, compare_checkpoints, encode_evidence
from protocol.keys import VerifierKey
from protocol.merkle import EMPTY_ROOT, CompactTree, HashReader, node_hash, prove_consistency, tree_root
from protocol.note import MAX_NOTE_SIZE
from protocol.tiles import (
    TILE_HEIGHT,
    TILE_WIDTH,
    Tile,
    decode_bundle,
    edge_tiles,
    full_tile_hash,
    root_from_edge_tiles,
    tile_for_size,
    tile_hashes,
    tile_path,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Largest bundle a peer may send: 256 items of at most 65,535 bytes, framed.
MAX_BUNDLE_BYTES = TILE_WIDTH * (2 + MAX_BODY_SIZE)
REQUEST_TIMEOUT_S = 20.0
#: Bundles fetched by one sync call (1M entries); a longer log continues next round.
MAX_BUNDLES_PER_SYNC = 4096
#: Verified bundles committed per transaction while syncing (or fewer, past COMMIT_BYTES).
COMMIT_BUNDLES = 16
COMMIT_BYTES = 8 << 20
#: Bundles fetched ahead while one is verified (fewer when they are large).
PREFETCH_BUNDLES = 8
PREFETCH_BYTES = 4 << 20


class PeerError(NodeError):
    """A peer that cannot be reached, answers wrongly, or serves data that does not verify."""

    status = 502
    title = "bad peer"


class BadRelay(PeerError):
    """The peer served data that does not match the city-signed root: drop it, back off."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """A log this node should hold: its id, origin and the city's verifier key."""

    log_id: str
    origin: str
    verifier: VerifierKey


@dataclass(frozen=True, slots=True, kw_only=True)
class SyncOutcome:
    """What one sync of one log from one peer did."""

    log_id: str
    state: str  # "up-to-date", "grew", "not-held", "equivocation", "behind-peer"
    size: int
    fetched: int = 0
    wire_bytes: int = 0


class Fetcher:
    """GETs from one peer with a timeout and a size limit on every answer."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, *, timeout: float = REQUEST_TIMEOUT_S):
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self.wire_bytes = 0

    async def get(self, path: str, *, limit: int) -> bytes | None:
        """The body, or None for 404; PeerError for anything else that is not 200."""
        url = self.base_url + path
        try:
            async with self.session.get(url, timeout=self.timeout) as response:
                if response.status == 404:
                    return None
                if response.status != 200:
                    raise PeerError(f"{url}: answered {response.status}")
                length = response.content_length
                if length is not None and length > limit:
                    raise PeerError(f"{url}: {length} bytes, more than the {limit} allowed")
                chunks, total = [], 0
                async for chunk in response.content.iter_chunked(65536):
                    total += len(chunk)
                    if total > limit:
                        raise PeerError(f"{url}: more than the {limit} bytes allowed")
                    chunks.append(chunk)
                # Bytes on the wire: the compressed length where the peer says it.
                self.wire_bytes += int(response.headers.get("Content-Length", total))
                return b"".join(chunks)
        except (aiohttp.ClientError, TimeoutError, asyncio.TimeoutError) as exc:
            raise PeerError(f"{url}: {type(exc).__name__}: {str(exc)[:200]}") from exc


class _Missing(Exception):
    """A hash tile the computation needs and has not fetched yet."""

    def __init__(self, level: int, index: int) -> None:
        self.level, self.index = level, index


class PeerTree:
    """A peer's tree of one city-signed size, built from tiles verified top down.

    Implements ``protocol.merkle.HashReader``: asking for a node whose tile has
    not been fetched raises ``_Missing``, which :meth:`compute` turns into a
    fetch and a retry. Tiles above level 0 are kept (1/256 of the log); of
    level 0, only the edge tile and any a computation asks for are fetched.
    """

    def __init__(self, size: int, root: bytes, fetch_tile: Callable[[Tile], Awaitable[bytes]]) -> None:
        self.size = size
        self.root = root
        self._fetch_tile = fetch_tile
        self._tiles: dict[tuple[int, int], list[bytes]] = {}

    async def load_edges(self) -> None:
        edges = edge_tiles(self.size)
        # One round trip for all of them, not one per level.
        tiles = dict(zip(edges, await asyncio.gather(*(self._fetch_tile(t) for t in edges)), strict=True))
        try:
            root = root_from_edge_tiles(self.size, tiles)
        except ProtocolError as exc:
            raise BadRelay(f"edge tiles: {exc}") from exc
        if root != self.root:
            raise BadRelay(f"edge tiles of size {self.size} do not rebuild the city-signed root")
        for tile, data in tiles.items():
            self._tiles[(tile.level, tile.index)] = tile_hashes(data, tile.width)

    def _add(self, tile: Tile, data: bytes) -> None:
        try:
            hashes = tile_hashes(data, tile.width)
        except ProtocolError as exc:
            raise BadRelay(f"tile {tile_path(tile)}: {exc}") from exc
        if not tile.is_full:
            raise BadRelay(f"tile {tile_path(tile)}: a partial tile that is not an edge tile")
        parent = self._tiles.get((tile.level + 1, tile.index // TILE_WIDTH))
        if parent is None:
            raise _Missing(tile.level + 1, tile.index // TILE_WIDTH)
        if full_tile_hash(data) != parent[tile.index % TILE_WIDTH]:
            raise BadRelay(f"tile {tile_path(tile)} does not match its parent tile")
        self._tiles[(tile.level, tile.index)] = hashes

    async def ensure(self, level: int, index: int) -> list[bytes]:
        hashes = self._tiles.get((level, index))
        if hashes is not None:
            return hashes
        tile = tile_for_size(level, index, self.size)
        if tile is None:
            raise BadRelay(f"tile {level}/{index} is outside the tree of size {self.size}")
        data = await self._fetch_tile(tile)
        try:
            self._add(tile, data)
        except _Missing as missing:
            # Verify the parent first, then this same tile against it: fetched once, not twice.
            await self.ensure(missing.level, missing.index)
            self._add(tile, data)
        return self._tiles[(level, index)]

    def node(self, level: int, index: int) -> bytes:
        r = level % TILE_HEIGHT
        base = level - r
        start = index << r
        hashes = self._tiles.get((base // TILE_HEIGHT, start // TILE_WIDTH))
        if hashes is None:
            raise _Missing(base // TILE_HEIGHT, start // TILE_WIDTH)
        offset = start % TILE_WIDTH
        row = hashes[offset : offset + (1 << r)]
        if len(row) != 1 << r:
            raise BadRelay(f"tile at level {base} index {start // TILE_WIDTH} is too short")
        while len(row) > 1:
            row = [node_hash(row[i], row[i + 1]) for i in range(0, len(row), 2)]
        return row[0]

    async def compute(self, fn: Callable[[PeerTree], T]) -> T:
        """Run a sync hash computation, fetching each tile it turns out to need."""
        for _ in range(10_000):
            try:
                return fn(self)
            except _Missing as missing:
                await self.ensure(missing.level, missing.index)
        raise BadRelay("too many tiles needed for one computation")


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class Syncer:
    """Syncs logs into one writable store; one log at a time per store.

    Database work runs in a worker thread (``asyncio.to_thread``) so the event
    loop keeps serving; an asyncio lock keeps this process's sync writes in
    order, and SQLite's write lock orders them with the CLI.
    """

    def __init__(
        self,
        store: Store,
        *,
        on_evidence: Callable[[str], None] | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        self.store = store
        self.lock = asyncio.Lock()
        self.on_evidence = on_evidence
        # One thread owns the connection: sqlite3 connections must not be used by two
        # threads at once (and must not be closed while one does).
        self.executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-db")

    async def _db(self, fn: Callable[[Store], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, self.store)

    async def sync_log(self, fetcher: Fetcher, member: Member) -> SyncOutcome:
        async with self.lock:
            return await self._sync_log(fetcher, member)

    async def _fetch_checkpoint(self, fetcher: Fetcher, member: Member) -> SignedCheckpoint | None:
        data = await fetcher.get(f"/v1/logs/{member.log_id}/checkpoint", limit=MAX_NOTE_SIZE)
        if data is None:
            return None
        try:
            return open_checkpoint(data, member.verifier)
        except ProtocolError as exc:
            raise BadRelay(f"checkpoint of {member.origin}: {exc}") from exc

    async def _sync_log(self, fetcher: Fetcher, member: Member) -> SyncOutcome:
        signed = await self._fetch_checkpoint(fetcher, member)
        if signed is None:
            return SyncOutcome(log_id=member.log_id, state="not-held", size=0)
        return await self._offer(fetcher, member, signed)

    async def offer_checkpoint(self, fetcher: Fetcher, member: Member, signed: SignedCheckpoint) -> SyncOutcome:
        """Act on a verified city-signed checkpoint already in hand (from gossip or an
        announcement): compare it with what is held, record evidence, or fetch from ``fetcher``."""
        async with self.lock:
            return await self._offer(fetcher, member, signed)

    async def _offer(self, fetcher: Fetcher, member: Member, signed: SignedCheckpoint) -> SyncOutcome:
        cp = signed.checkpoint

        def held(store: Store) -> tuple[LogState, bool]:
            # One trip to the database thread: it matters when syncing many small logs.
            local = store.find_log(member.log_id) or self._register(store, member)
            return local, member.log_id in store.evidence()

        local, equivocating = await self._db(held)
        if local.verifier != str(member.verifier):
            raise NodeError(f"log {member.origin}: held under another key than the member's")
        if equivocating:
            return SyncOutcome(log_id=member.log_id, state="equivocation", size=local.size)
        held_cp = open_checkpoint(local.checkpoint, member.verifier).checkpoint if local.checkpoint else None

        if cp.size <= local.size:
            return await self._compare_held(member, local, held_cp, signed)

        tree = PeerTree(cp.size, cp.root, lambda t: self._fetch_tile(fetcher, member, t))
        await tree.load_edges()
        if local.size:
            peer_root = await tree.compute(lambda r: tree_root(local.size, r))
            if peer_root != local.root:
                outcome = await self._diverged(member, local, held_cp, signed, tree)
                if outcome is not None:
                    return outcome
                local = await self._db(lambda s: s.log(member.log_id))
        pending = _opened_pending(local, member)
        if pending is not None and pending.checkpoint.size <= cp.size:
            # The peer's tree holds our entries; it must also hold the tree we were fetching.
            size = pending.checkpoint.size
            if await tree.compute(lambda r: tree_root(size, r)) != pending.checkpoint.root:
                return await self._evidence_from_peer(member, local, pending, signed, tree)
        return await self._fetch_entries(fetcher, member, local, signed, tree)

    def _register(self, store: Store, member: Member) -> LogState:
        with store.write():
            if store.find_log(member.log_id) is None:
                store.add_log(
                    log_id=member.log_id, origin=member.origin, verifier=str(member.verifier),
                    own=False, root=EMPTY_ROOT,
                )
        return store.log(member.log_id)

    async def _fetch_tile(self, fetcher: Fetcher, member: Member, tile: Tile) -> bytes:
        data = await fetcher.get(f"/v1/logs/{member.log_id}/{tile_path(tile)}", limit=TILE_WIDTH * 32)
        if data is None:
            raise BadRelay(f"{member.origin}: tile {tile_path(tile)} missing although its checkpoint covers it")
        return data

    async def _record(self, member: Member, local: LogState, evidence_bytes: bytes) -> SyncOutcome:
        now = time.time_ns() // 1_000_000

        def write(store: Store) -> bool:
            with store.write():
                return store.add_evidence(local.lid, evidence_bytes, now)

        if await self._db(write):
            log.error("equivocation", extra={"log_id": member.log_id, "origin": member.origin})
            if self.on_evidence:
                self.on_evidence(member.log_id)
        return SyncOutcome(log_id=member.log_id, state="equivocation", size=local.size)

    async def _compare_held(
        self, member: Member, local: LogState, held_cp, signed: SignedCheckpoint
    ) -> SyncOutcome:
        """The peer's checkpoint is not beyond what we hold: it must agree with our entries."""
        cp = signed.checkpoint

        def ours(store: Store) -> tuple[bytes, list[bytes] | None]:
            reader = store.reader(local.lid)
            root = tree_root(cp.size, reader) if cp.size else EMPTY_ROOT
            proof = None
            if held_cp is not None and cp.size < held_cp.size and root != cp.root:
                proof = prove_consistency(cp.size, held_cp.size, reader)
            return root, proof

        our_root, proof = await self._db(ours)
        if our_root == cp.root:
            if held_cp is None or cp.size > held_cp.size:
                # A checkpoint covering entries we already verified (e.g. an interrupted sync).
                def advance(store: Store) -> None:
                    with store.write():
                        now = store.log(member.log_id)
                        if now.checkpoint != local.checkpoint:
                            return  # another writer (e.g. 'solidarity sync') moved it meanwhile
                        pending = now.pending if now.size < cp.size else None
                        store.set_head(now.lid, size=now.size, root=now.root, checkpoint=signed.note,
                                       updated_ms=time.time_ns() // 1_000_000, pending=pending)

                await self._db(advance)
            return SyncOutcome(log_id=member.log_id, state="up-to-date", size=local.size)
        if held_cp is None or cp.size > held_cp.size:
            # Our entries past the held checkpoint were verified against the pending one,
            # and this city-signed checkpoint contradicts them: prove it against that one.
            pending = _opened_pending(local, member)
            if pending is not None:
                outcome = await self._evidence_from_pending(member, local, pending, signed, our_root)
                if outcome is not None:
                    return outcome
            # No pending checkpoint or no edge of its tree (written by an older release):
            # nothing to prove it with; drop the entries no held checkpoint covers.
            await self._abandon(member, local, held_cp)
            return SyncOutcome(log_id=member.log_id, state="behind-peer", size=held_cp.size if held_cp else 0)
        held_signed = open_checkpoint(local.checkpoint, member.verifier)
        old_subtree = our_root if _is_power_of_two(cp.size) else None
        result = compare_checkpoints(signed, held_signed, proof or [], old_subtree=old_subtree)
        if isinstance(result, Inconsistent):
            return await self._record(member, local, encode_evidence(result.evidence))
        raise BadRelay(f"{member.origin}: checkpoint disagrees with held entries but proves nothing")

    async def _evidence_from_pending(
        self, member: Member, local: LogState, pending: SignedCheckpoint, signed: SignedCheckpoint, our_root: bytes
    ) -> SyncOutcome | None:
        """``signed`` (no larger than what we hold) contradicts entries verified against the
        pending checkpoint: the consistency proof from its size to the pending tree, rebuilt
        from the held entries and the pending tree's stored edge; None without that edge."""
        size, pending_size = signed.checkpoint.size, pending.checkpoint.size

        def prove(store: Store) -> list[bytes] | None:
            edge = store.pending_edge(local.lid)
            if edge is None or edge[0] != local.size:
                return None
            reader = _PendingTree(store.reader(local.lid), local.size, pending_size, edge[1])
            return prove_consistency(size, pending_size, reader)

        proof = await self._db(prove)
        if proof is None:
            return None
        old_subtree = our_root if _is_power_of_two(size) else None
        result = compare_checkpoints(signed, pending, proof, old_subtree=old_subtree)
        if isinstance(result, Inconsistent):
            return await self._record(member, local, encode_evidence(result.evidence))
        raise NodeError(f"log {member.origin}: the pending checkpoint's stored edge proves nothing; "
                        "run 'solidarity verify'")

    async def _abandon(self, member: Member, local: LogState, held_cp) -> None:
        size = held_cp.size if held_cp else 0

        def drop(store: Store) -> None:
            with store.write():
                state = store.log(member.log_id)
                if state.checkpoint != local.checkpoint or state.size != local.size:
                    # Decided on what was held before the lock; another process changed it.
                    raise PeerError(f"{member.origin}: log changed under this sync; retrying later")
                root = tree_root(size, store.reader(state.lid)) if size else EMPTY_ROOT
                store.truncate(state.lid, size, root, time.time_ns() // 1_000_000)

        await self._db(drop)
        log.warning("abandoned unfinished sync", extra={"log_id": member.log_id, "size": size})

    async def _diverged(self, member: Member, local: LogState, held_cp, signed, tree: PeerTree):
        """The city-signed tree does not contain our entries: evidence, or an abandoned sync."""
        if held_cp is None or held_cp.size < local.size:
            # Entries past our held checkpoint were verified against the pending checkpoint.
            if held_cp is not None:
                peer_root = await tree.compute(lambda r: tree_root(held_cp.size, r))
                if peer_root != held_cp.root:
                    held_signed = open_checkpoint(local.checkpoint, member.verifier)
                    return await self._evidence_from_peer(member, local, held_signed, signed, tree)
            pending = _opened_pending(local, member)
            if pending is not None:
                if pending.checkpoint.size <= signed.checkpoint.size:
                    # The peer's tree reaches the pending size and differs from it below.
                    return await self._evidence_from_peer(member, local, pending, signed, tree)
                # The fork lies below entries we hold, inside the pending tree, but at a size
                # where we hold neither tree's hashes: keep the pending sync (finishing it
                # elsewhere makes the fork provable) rather than drop verified entries for an
                # unproven branch.
                raise PeerError(
                    f"{member.origin}: checkpoint of size {signed.checkpoint.size} forks from the "
                    f"pending sync to size {pending.checkpoint.size} below the {local.size} entries held"
                )
            await self._abandon(member, local, held_cp)
            return None
        held_signed = open_checkpoint(local.checkpoint, member.verifier)
        return await self._evidence_from_peer(member, local, held_signed, signed, tree)

    async def _evidence_from_peer(
        self, member: Member, local: LogState, older: SignedCheckpoint, signed: SignedCheckpoint, tree: PeerTree
    ) -> SyncOutcome:
        """``older`` (held or pending) is not in the peer's verified tree: prove it from the tiles."""
        size = older.checkpoint.size
        proof = await tree.compute(lambda r: prove_consistency(size, signed.checkpoint.size, r))
        subtree = await tree.compute(lambda r: tree_root(size, r)) if _is_power_of_two(size) else None
        result = compare_checkpoints(older, signed, proof, old_subtree=subtree)
        if isinstance(result, Inconsistent):
            return await self._record(member, local, encode_evidence(result.evidence))
        raise BadRelay(f"{member.origin}: tiles disagree with held entries but prove nothing")

    async def _fetch_bundle(self, fetcher: Fetcher, member: Member, bundle: Tile) -> tuple[bytes, bytes]:
        path = tile_path(bundle)
        prefix = f"/v1/logs/{member.log_id}/"
        # Entries and bodies in parallel: two round trips become one.
        entries_data, bodies_data = await asyncio.gather(
            fetcher.get(prefix + path, limit=MAX_BUNDLE_BYTES),
            fetcher.get(prefix + "bodies/" + path.removeprefix("tile/entries/"), limit=MAX_BUNDLE_BYTES),
        )
        if entries_data is None or bodies_data is None:
            # A relay without the bodies is not one to sync from: storing the entries with
            # no bodies would lose them for good (an erased body is an empty item, not a 404).
            raise BadRelay(f"{member.origin}: bundle {path} or its bodies missing although its checkpoint covers it")
        return entries_data, bodies_data

    async def _fetch_entries(
        self, fetcher: Fetcher, member: Member, local: LogState, signed: SignedCheckpoint, tree: PeerTree
    ) -> SyncOutcome:
        cp = signed.checkpoint
        compact = await self._db(lambda s: CompactTree.from_reader(local.size, s.reader(local.lid)))
        if compact.root() != local.root and local.size:
            raise NodeError(f"log {member.origin}: stored hashes do not rebuild the stored root")
        fetched = 0
        start_wire = fetcher.wire_bytes
        # Bundles one at a time from a range, never a list: a city-signed size of 2**40 must
        # not make this node build billions of objects before the first request. Each call
        # fetches at most MAX_BUNDLES_PER_SYNC bundles; the next round resumes from `pending`.
        first, last = local.size // TILE_WIDTH, (cp.size - 1) // TILE_WIDTH
        bundles = iter(range(first, min(last, first + MAX_BUNDLES_PER_SYNC - 1) + 1))
        # The next bundles are fetched while one is verified and a batch is written, so the
        # peer, this event loop and the database thread work at once. How many are in flight
        # follows the bytes of the last one: flat memory whatever the bundles weigh.
        inflight: collections.deque[tuple[Tile, asyncio.Future[tuple[bytes, bytes]]]] = collections.deque()
        depth = 2

        def launch() -> None:
            while len(inflight) < depth:
                index = next(bundles, None)
                if index is None:
                    return
                bundle = tile_for_size(0, index, cp.size, entries=True)
                inflight.append((bundle, asyncio.ensure_future(self._fetch_bundle(fetcher, member, bundle))))

        # Verified bundles are committed COMMIT_BUNDLES (or COMMIT_BYTES) at a time: one fsync,
        # not one per bundle; an interrupted sync loses at most that much verified work and
        # resumes from there. One transaction is in flight while the next batch is verified.
        batch_records: list[tuple[bytes, bytes, bytes | None]] = []
        batch_nodes: list[tuple[int, int, bytes]] = []
        batch_bundles = batch_bytes = 0
        writing: asyncio.Future[None] | None = None
        launch()
        try:
            while inflight:
                bundle, future = inflight.popleft()
                entries_data, bodies_data = await future
                size_in = len(entries_data) + len(bodies_data)
                depth = max(1, min(PREFETCH_BUNDLES, PREFETCH_BYTES // max(1, size_in)))
                launch()
                if bundle.is_full:
                    # tlog-tiles: a full bundle's 256 leaf hashes are its level-0 tile, whose hash
                    # is that tile's slot in the level-1 tile (verified up to the signed root).
                    parent = await tree.ensure(1, bundle.index // TILE_WIDTH)
                    expected, parent_hash = None, parent[bundle.index % TILE_WIDTH]
                else:
                    # The last, partial bundle: its level-0 tile is an edge tile, already verified.
                    expected, parent_hash = await tree.ensure(0, bundle.index), None
                records = self._verify_bundle(member, bundle, entries_data, bodies_data, expected, parent_hash)
                skip = compact.size - bundle.index * TILE_WIDTH
                if skip == 0 and parent_hash is not None:
                    # A whole bundle joins the tree as one level-8 node (the hash just verified).
                    compact, nodes = _append_subtree(compact, parent_hash)
                    batch_nodes.extend(nodes)
                else:
                    records = records[skip:]
                    for leaf, _, _ in records:
                        batch_nodes.extend(compact.append(leaf))
                batch_records.extend(records)
                batch_bundles += 1
                batch_bytes += size_in
                done = compact.size == cp.size
                if done and compact.root() != cp.root:
                    raise BadRelay(f"{member.origin}: entries do not rebuild the city-signed root")
                if not (done or not inflight or batch_bundles >= COMMIT_BUNDLES or batch_bytes >= COMMIT_BYTES):
                    continue
                size, root = compact.size, compact.root()
                edge = None
                if not done:
                    # What lets a fork against this unfinished sync still be proven (_PendingTree).
                    blocks = _subtrees_between(size, cp.size)
                    edge = (size, await tree.compute(lambda r, blocks=blocks: [r.node(lv, i) for lv, i in blocks]))

                def write(store: Store, records=batch_records, nodes=batch_nodes, size=size, root=root,
                          done=done, edge=edge) -> None:
                    with store.write():
                        now = store.log(member.log_id)
                        if now.size != size - len(records):
                            raise PeerError(f"{member.origin}: log changed under this sync; retrying later")
                        store.insert_entries(now.lid, now.size, records, nodes)
                        store.set_head(
                            now.lid, size=size, root=root,
                            checkpoint=signed.note if done else now.checkpoint,
                            pending=None if done else signed.note,
                            updated_ms=time.time_ns() // 1_000_000,
                        )
                        if edge is not None:
                            store.set_pending_edge(now.lid, edge)

                if writing is not None:
                    await writing  # one transaction in flight: commits stay in order
                writing = asyncio.ensure_future(self._db(write))
                fetched += len(batch_records)
                batch_records, batch_nodes, batch_bundles, batch_bytes = [], [], 0, 0
            if writing is not None:
                await writing
                writing = None
        finally:
            for _, future in inflight:
                future.cancel()
            leftovers = [f for _, f in inflight] + ([writing] if writing is not None else [])
            if leftovers:
                # Collected, so no task is left running (or unretrieved) after this sync.
                await asyncio.gather(*leftovers, return_exceptions=True)
        log.info("synced", extra={"log_id": member.log_id, "size": cp.size, "fetched": fetched,
                                  "peer": fetcher.base_url})
        return SyncOutcome(log_id=member.log_id, state="grew", size=compact.size, fetched=fetched,
                           wire_bytes=fetcher.wire_bytes - start_wire)

    @staticmethod
    def _verify_bundle(
        member: Member, bundle: Tile, entries_data: bytes, bodies_data: bytes,
        expected: list[bytes] | None, parent_hash: bytes | None,
    ) -> list[tuple[bytes, bytes, bytes | None]]:
        """Decode and check one bundle against its verified tile: the level-0 tile's hashes
        (``expected``) or, for a full bundle, its slot in the level-1 tile (``parent_hash``)."""
        try:
            entries = decode_bundle(entries_data, count=bundle.width)
            bodies = decode_bundle(bodies_data, count=bundle.width)
        except ProtocolError as exc:
            raise BadRelay(f"{member.origin}: bundle {bundle.index}: {exc}") from exc
        leaves = [entry_id(entry) for entry in entries]
        if expected is None:
            if _full_tile_hash(leaves) != parent_hash:
                raise BadRelay(f"{member.origin}: bundle {bundle.index} does not match its level-1 tile")
        elif leaves != expected:
            bad = next(i for i, (a, b) in enumerate(zip(leaves, expected, strict=True)) if a != b)
            raise BadRelay(f"{member.origin}: entry {bundle.index * TILE_WIDTH + bad} does not match its tile")
        records = []
        for i, (leaf, entry, body) in enumerate(zip(leaves, entries, bodies, strict=True)):
            stored_body: bytes | None = None
            try:
                decoded = decode_entry(entry)
            except ProtocolError:
                # Authentic (it is in the signed tree) but malformed: kept so the log stays
                # complete; the network view lists it as invalid. Its body cannot be checked.
                decoded = None
            if decoded is not None:
                if not body:
                    # An empty item would mean "erased". Erasing will take a request signed by
                    # the log's author (not built yet); until then a relay that drops a body is
                    # not synced from, or one hostile peer could erase bodies network-wide.
                    raise BadRelay(
                        f"{member.origin}: body of entry {bundle.index * TILE_WIDTH + i} missing: "
                        "a relay cannot erase a body"
                    )
                # Size and SHA-256 prove the body is the entry's; decoding it is left to the
                # network view, which decodes and validates it anyway (saves ~3 us per entry).
                try:
                    check_body_hash(decoded, body)
                except ProtocolError as exc:
                    # The entry is authentic (it is in the signed tree) but this body is not its body.
                    raise BadRelay(
                        f"{member.origin}: body of entry {bundle.index * TILE_WIDTH + i}: {exc}"
                    ) from exc
                stored_body = body
            records.append((leaf, entry, stored_body))
        return records


def _full_tile_hash(hashes: list[bytes]) -> bytes:
    """What ``protocol.tiles.full_tile_hash`` computes for 256 hashes, pairwise level by level
    (for a power of two that is RFC 9162's MTH; the reference recursion costs 60% more)."""
    sha256 = hashlib.sha256
    while len(hashes) > 1:
        # RFC 9162 2.1.1: MTH(D[n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n])), k = n/2 here
        hashes = [sha256(b"\x01" + hashes[i] + hashes[i + 1]).digest() for i in range(0, len(hashes), 2)]
    return hashes[0]


def _opened_pending(local: LogState, member: Member) -> SignedCheckpoint | None:
    """The checkpoint an unfinished sync was fetching towards (verified again), if any."""
    return open_checkpoint(local.pending, member.verifier) if local.pending else None


def _append_subtree(compact: CompactTree, node: bytes) -> tuple[CompactTree, list[tuple[int, int, bytes]]]:
    """``compact`` (of a size that is a multiple of 256) with 256 more leaves whose subtree
    hash is ``node``; and the nodes created, as ``CompactTree.append`` reports them.

    Above level 8 a tree of 256*k leaves merges exactly as one of k leaves whose hashes
    are its level-8 nodes (RFC 9162 2.1.1: the same HASH(0x01 || left || right) at every
    level), so the edge is a compact tree of level-8 nodes, shifted."""
    upper = CompactTree(size=compact.size >> TILE_HEIGHT, hashes=compact.hashes)
    created = upper.append(node)
    grown = CompactTree(size=compact.size + TILE_WIDTH, hashes=upper.hashes)
    return grown, [(level + TILE_HEIGHT, index, h) for level, index, h in created]


def _subtrees_between(start: int, size: int) -> list[tuple[int, int]]:
    """(level, index) of the largest complete subtrees covering leaves [start, size), in order."""
    out = []
    pos = start
    while pos < size:
        level = (size - pos).bit_length() - 1
        if pos:
            level = min(level, (pos & -pos).bit_length() - 1)
        out.append((level, pos >> level))
        pos += 1 << level
    return out


class _PendingTree:
    """``HashReader`` of an unfinished sync's checkpoint tree: nodes below the held size from
    the store, past it from the stored edge (:func:`_subtrees_between`), and nodes across
    both folded from their halves. Enough for its root and for any consistency proof from
    a held size to it; a node strictly inside one edge subtree is not known."""

    def __init__(self, held: HashReader, held_size: int, size: int, edge: list[bytes]) -> None:
        blocks = _subtrees_between(held_size, size)
        if len(blocks) != len(edge):
            raise NodeError(f"pending edge: {len(edge)} hashes stored, expected {len(blocks)}")
        self._held, self._held_size = held, held_size
        self._edge = dict(zip(blocks, edge, strict=True))

    def node(self, level: int, index: int) -> bytes:
        if (index + 1) << level <= self._held_size:
            return self._held.node(level, index)
        known = self._edge.get((level, index))
        if known is not None:
            return known
        if level == 0:
            raise NodeError(f"pending edge: leaf {index} is inside a subtree known only by its hash")
        # RFC 9162 2.1.1: HASH(0x01 || left || right)
        return node_hash(self.node(level - 1, 2 * index), self.node(level - 1, 2 * index + 1))
