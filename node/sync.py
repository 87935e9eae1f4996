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
4. Bundle by bundle, each entry's leaf hash must equal its level-0 tile's hash
   and each body must match its entry; then the bundle, the tile hashes it
   completes and the new head are committed in one transaction.

So sync is interruptible and resumes where it stopped (the ``pending``
checkpoint remembers where it was going), memory stays flat (one bundle and
the tiles above level 0), and a relay that serves anything that does not
match the city-signed root is refused before a byte of it is stored.
"""

from __future__ import annotations

import asyncio
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
from protocol.merkle import EMPTY_ROOT, CompactTree, node_hash, prove_consistency, tree_root
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
#: Verified bundles committed per transaction while syncing.
COMMIT_BUNDLES = 16


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
    fetch and a retry. Tiles above level 0 are kept (1/256 of the log);
    level-0 tiles are dropped once their bundle is stored.
    """

    def __init__(self, size: int, root: bytes, fetch_tile: Callable[[Tile], Awaitable[bytes]]) -> None:
        self.size = size
        self.root = root
        self._fetch_tile = fetch_tile
        self._tiles: dict[tuple[int, int], list[bytes]] = {}

    async def load_edges(self) -> None:
        tiles = {t: await self._fetch_tile(t) for t in edge_tiles(self.size)}
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
        while (level, index) not in self._tiles:
            tile = tile_for_size(level, index, self.size)
            if tile is None:
                raise BadRelay(f"tile {level}/{index} is outside the tree of size {self.size}")
            data = await self._fetch_tile(tile)
            try:
                self._add(tile, data)
            except _Missing as missing:
                await self.ensure(missing.level, missing.index)
        return self._tiles[(level, index)]

    def forget(self, level: int, index: int) -> None:
        self._tiles.pop((level, index), None)

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
        local = await self._db(lambda s: s.find_log(member.log_id))
        if local is None:
            local = await self._db(lambda s: self._register(s, member))
        if local.verifier != str(member.verifier):
            raise NodeError(f"log {member.origin}: held under another key than the member's")
        held = await self._db(lambda s: member.log_id in s.evidence())
        if held:
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
            # Our extra entries came from an unfinished sync towards another checkpoint:
            # drop them (no checkpoint we hold covers them) and let the next round refetch.
            await self._abandon(member, local, held_cp)
            return SyncOutcome(log_id=member.log_id, state="behind-peer", size=held_cp.size if held_cp else 0)
        held_signed = open_checkpoint(local.checkpoint, member.verifier)
        old_subtree = our_root if _is_power_of_two(cp.size) else None
        result = compare_checkpoints(signed, held_signed, proof or [], old_subtree=old_subtree)
        if isinstance(result, Inconsistent):
            return await self._record(member, local, encode_evidence(result.evidence))
        raise BadRelay(f"{member.origin}: checkpoint disagrees with held entries but proves nothing")

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
            # Entries past our held checkpoint were fetched towards another checkpoint.
            if held_cp is not None:
                peer_root = await tree.compute(lambda r: tree_root(held_cp.size, r))
                if peer_root != held_cp.root:
                    return await self._evidence_from_peer(member, local, held_cp, signed, tree)
            await self._abandon(member, local, held_cp)
            return None
        return await self._evidence_from_peer(member, local, held_cp, signed, tree)

    async def _evidence_from_peer(self, member, local, held_cp, signed, tree: PeerTree) -> SyncOutcome:
        size = held_cp.size
        proof = await tree.compute(lambda r: prove_consistency(size, signed.checkpoint.size, r))
        subtree = await tree.compute(lambda r: tree_root(size, r)) if _is_power_of_two(size) else None
        held_signed = open_checkpoint(local.checkpoint, member.verifier)
        result = compare_checkpoints(held_signed, signed, proof, old_subtree=subtree)
        if isinstance(result, Inconsistent):
            return await self._record(member, local, encode_evidence(result.evidence))
        raise BadRelay(f"{member.origin}: tiles disagree with held entries but prove nothing")

    async def _fetch_entries(
        self, fetcher: Fetcher, member: Member, local: LogState, signed: SignedCheckpoint, tree: PeerTree
    ) -> SyncOutcome:
        cp = signed.checkpoint
        compact = await self._db(lambda s: CompactTree.from_reader(local.size, s.reader(local.lid)))
        if compact.root() != local.root and local.size:
            raise NodeError(f"log {member.origin}: stored hashes do not rebuild the stored root")
        fetched = 0
        prefix = f"/v1/logs/{member.log_id}/"
        start_wire = fetcher.wire_bytes
        # Bundles one at a time from a range, never a list: a city-signed size of 2**40 must
        # not make this node build billions of objects before the first request. Each call
        # fetches at most MAX_BUNDLES_PER_SYNC bundles; the next round resumes from `pending`.
        first, last = local.size // TILE_WIDTH, (cp.size - 1) // TILE_WIDTH
        end = min(last, first + MAX_BUNDLES_PER_SYNC - 1)
        # Verified bundles are committed COMMIT_BUNDLES at a time (one fsync, not sixteen);
        # an interrupted sync loses at most that much verified work and resumes from there.
        batch_records: list[tuple[bytes, bytes, bytes | None]] = []
        batch_nodes: list[tuple[int, int, bytes]] = []
        batch_bundles = 0
        for index in range(first, end + 1):
            bundle = tile_for_size(0, index, cp.size, entries=True)
            expected = await tree.ensure(0, bundle.index)
            path = tile_path(bundle)
            # Entries and bodies in parallel: two round trips become one.
            entries_data, bodies_data = await asyncio.gather(
                fetcher.get(prefix + path, limit=MAX_BUNDLE_BYTES),
                fetcher.get(prefix + "bodies/" + path.removeprefix("tile/entries/"), limit=MAX_BUNDLE_BYTES),
            )
            if entries_data is None or bodies_data is None:
                # A relay without the bodies is not one to sync from: storing the entries with
                # no bodies would lose them for good (an erased body is an empty item, not a 404).
                raise BadRelay(f"{member.origin}: bundle {path} or its bodies missing although its checkpoint covers it")
            records = self._verify_bundle(member, bundle, expected, entries_data, bodies_data)
            skip = max(0, compact.size - bundle.index * TILE_WIDTH)
            records = records[skip:]
            for leaf, _, _ in records:
                batch_nodes.extend(compact.append(leaf))
            batch_records.extend(records)
            batch_bundles += 1
            if bundle.is_full:
                tree.forget(0, bundle.index)
            done = compact.size == cp.size
            if done and compact.root() != cp.root:
                raise BadRelay(f"{member.origin}: entries do not rebuild the city-signed root")
            if not (done or index == end or batch_bundles >= COMMIT_BUNDLES):
                continue
            size, root = compact.size, compact.root()

            def write(store: Store, records=batch_records, nodes=batch_nodes, size=size, root=root,
                      done=done) -> None:
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

            await self._db(write)
            fetched += len(batch_records)
            batch_records, batch_nodes, batch_bundles = [], [], 0
        log.info("synced", extra={"log_id": member.log_id, "size": cp.size, "fetched": fetched,
                                  "peer": fetcher.base_url})
        return SyncOutcome(log_id=member.log_id, state="grew", size=compact.size, fetched=fetched,
                           wire_bytes=fetcher.wire_bytes - start_wire)

    @staticmethod
    def _verify_bundle(
        member: Member, bundle: Tile, expected: list[bytes], entries_data: bytes, bodies_data: bytes | None
    ) -> list[tuple[bytes, bytes, bytes | None]]:
        try:
            entries = decode_bundle(entries_data, count=bundle.width)
            bodies = decode_bundle(bodies_data, count=bundle.width)
        except ProtocolError as exc:
            raise BadRelay(f"{member.origin}: bundle {bundle.index}: {exc}") from exc
        records = []
        for i, (entry, body) in enumerate(zip(entries, bodies, strict=True)):
            leaf = entry_id(entry)
            if leaf != expected[i]:
                raise BadRelay(f"{member.origin}: entry {bundle.index * TILE_WIDTH + i} does not match its tile")
            stored_body: bytes | None = None
            try:
                decoded = decode_entry(entry)
            except ProtocolError:
                # Authentic (it is in the signed tree) but malformed: kept so the log stays
                # complete; the network view lists it as invalid. Its body cannot be checked.
                decoded = None
            if body and decoded is not None:
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
