"""Federation: membership, peers, push-pull gossip, announcements and evidence.

A node under a network file keeps a verified copy of every member city's log.
Each gossip round it sends one or a few random peers a small digest of what it
holds (the network digest and 16 bucket digests, by first hex digit of log
id). Only when buckets differ does the answer carry per-log checkpoints, and
only for those buckets; each side then pulls what it lacks through
:mod:`node.sync`. A node that accepts no inbound connections converges too:
it pulls from whomever it asks.

When any log grows here (authored, or synced), its new checkpoint is announced
to the peers at once (modelled on C2SP tlog-witness ``add-checkpoint``): the
receiver verifies the city's signature before acting, pulls from the
announcer, and announces onwards, so a new entry spreads in a few hops.

The network digest is the hex SHA-256 of the canonical MessagePack of
``[network file hash, sorted [log id, size, root] of member logs without
evidence, sorted log ids with evidence]``: nodes that hold the same verified
data have the same digest, also after an equivocation, whichever branch each
saw first.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import aiohttp

from node.errors import BadRequest, PeerRefused
from node.store import Store
from node.sync import Fetcher, Member, PeerError, SyncOutcome, Syncer
from protocol.checkpoint import open_checkpoint, parse_checkpoint
from protocol.encoding import encode
from protocol.entry import decode_body, decode_entry, log_id as compute_log_id
from protocol.errors import ProtocolError
from protocol.evidence import check_evidence, decode_evidence, encode_evidence
from protocol.keys import parse_verifier_key
from protocol.membership import Membership, Vote, compute_membership
from protocol.network import NetworkFile, network_hash, verify_network_signatures
from protocol.note import MAX_NOTE_SIZE, parse_note

log = logging.getLogger(__name__)

BUCKETS = 16
GOSSIP_INTERVAL_S = 2.0
FANOUT = 2
MAX_BACKOFF_S = 60.0
MAX_EVIDENCE_BYTES = 64 * 1024
MAX_GOSSIP_BYTES = 4 * 1024 * 1024
#: Exchanges with peers under way at once (each may include pulls).
MAX_EXCHANGES = 8
#: Peers told about each new checkpoint (push); the rest learn it from them or by gossip.
ANNOUNCE_FANOUT = 6
#: Clocks further apart than this (seconds) are logged as a warning.
CLOCK_WARNING_S = 300


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(slots=True)
class PeerState:
    url: str
    failures: int = 0
    next_try: float = 0.0
    last_success_ms: int | None = None
    last_error: str | None = None
    last_error_ms: int | None = None

    def ok(self) -> None:
        self.failures = 0
        self.next_try = 0.0
        self.last_success_ms = now_ms()

    def failed(self, error: str, clock: float) -> None:
        self.failures += 1
        self.last_error = error[:300]
        self.last_error_ms = now_ms()
        self.next_try = clock + min(MAX_BACKOFF_S, 2.0 ** min(self.failures, 10) * 0.25)

    def as_json(self) -> dict:
        return {
            "url": self.url,
            "failures": self.failures,
            "last_success_ms": self.last_success_ms,
            "last_error": self.last_error,
            "last_error_ms": self.last_error_ms,
            "backed_off": self.failures > 0,
        }


@dataclass(slots=True)
class _LogScan:
    """What has been read from one member log: votes and the latest profile URLs."""

    scanned: int = 0
    votes: list[Vote] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    name: str = ""


class Federation:
    """One node's view of the network and its gossip with peers."""

    def __init__(
        self,
        store: Store,
        network: NetworkFile,
        *,
        own_url: str,
        session: aiohttp.ClientSession,
        interval: float = GOSSIP_INTERVAL_S,
        fanout: int = FANOUT,
        timeout: float = 20.0,
        rng: random.Random | None = None,
        clock=time.monotonic,
    ) -> None:
        self.store = store
        self.network = network
        self.network_hash = network_hash(network)
        self.signed_by = tuple(f.name for f in verify_network_signatures(network))
        self.own_url = own_url.rstrip("/")
        self.session = session
        self.interval = interval
        self.fanout = fanout
        self.timeout = timeout
        self.rng = rng or random.Random()
        self.clock = clock
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="federation-db")
        self.syncer = Syncer(store, on_evidence=self._evidence_found, executor=self.executor)
        self.own_log_id = store.own_log().log_id
        #: _scans and _membership are shared by the gossip thread and the API's readers.
        self._scan_lock = threading.Lock()
        self.peers: dict[str, PeerState] = {}
        self.rounds = 0
        self.own_evidence = False
        self._scans: dict[str, _LogScan] = {}
        self._membership: Membership | None = None
        self._pulls: set[asyncio.Task] = set()
        #: Set by close(): nothing new may start once the database thread is being shut down.
        self._closing = False
        self._exchanging: set[str] = set()
        self._checkpoints: dict[bytes, tuple[int, bytes]] = {}
        self._announced: dict[str, bytes] = {}
        self._announced_pulls: set[str] = set()
        #: Tests restrict who may be contacted to build topologies and partitions.
        self.allowed_peers: set[str] | None = None
        #: node.metrics.Metrics when served by an app (None in the CLI's one-shot sync).
        self.metrics = None
        #: Exchanges and pulls under way (tests wait for none before cutting a partition).
        self.in_flight = 0
        #: Our clock minus the last peer's (from its Date header), for /v1/status.
        self.clock_skew_s: float | None = None
        self.stats = {"gossip_sent": 0, "gossip_bytes_sent": 0, "gossip_received": 0, "announces_sent": 0}
        self._founder_urls = {str(f.key): f.url for f in network.founders}

    def fetcher(self, url: str) -> Fetcher:
        return Fetcher(self.session, url, timeout=self.timeout)

    # -- membership and peers ------------------------------------------

    def _db(self, fn):
        return asyncio.get_running_loop().run_in_executor(self.executor, fn, self.store)

    def _scan(self, store: Store) -> None:
        """Read new entries of held member logs for votes and profiles (incremental)."""
        for state in store.logs():
            scan = self._scans.setdefault(state.log_id, _LogScan())
            if state.size <= scan.scanned:
                continue
            for stored in store.entries(state.lid, scan.scanned, state.size):
                try:
                    entry = decode_entry(stored.entry)
                except ProtocolError:
                    continue
                if entry.type not in ("vouch", "revoke", "city") or stored.body is None:
                    continue
                try:
                    _, body = decode_body(stored.body)
                except ProtocolError:
                    continue
                if entry.type == "city":
                    urls = body.get("urls")
                    if isinstance(urls, list):
                        scan.urls = [u for u in urls if isinstance(u, str)][:8]
                    scan.name = str(body.get("name", ""))[:200]
                elif isinstance(body.get("key"), str):
                    scan.votes.append(
                        Vote(
                            voter=state.verifier,
                            subject=body["key"],
                            kind=entry.type,
                            origin=str(body.get("origin", "")),
                            url=str(body.get("url", "")),
                            name=str(body.get("name", "")),
                            ref=stored.leaf.hex(),
                        )
                    )
            scan.scanned = state.size

    def membership(self, store: Store) -> Membership:
        with self._scan_lock:
            self._scan(store)
            evidence = set(store.evidence())
            votes = [v for log_id, scan in self._scans.items() if log_id not in evidence for v in scan.votes]
            founders = [str(f.key) for f in self.network.founders]
            self._membership = compute_membership(founders, self.network.rule, votes)
            return self._membership

    def members(self, store: Store) -> list[Member]:
        out = []
        for key in sorted(self.membership(store).members):
            try:
                vk = parse_verifier_key(key)
            except ProtocolError:
                continue
            out.append(Member(log_id=compute_log_id(vk.name), origin=vk.name, verifier=vk))
        return out

    def peer_urls(self, store: Store) -> list[str]:
        membership = self.membership(store)
        urls: set[str] = set()
        scans = dict(self._scans)
        for key in membership.members:
            if key in self._founder_urls:
                urls.add(self._founder_urls[key])
            vote = membership.admitted.get(key)
            if vote is not None and vote.url:
                urls.add(vote.url)
            try:
                scan = scans.get(compute_log_id(parse_verifier_key(key).name))
            except ProtocolError:
                scan = None
            if scan:
                urls.update(scan.urls)
        urls = {u.rstrip("/") for u in urls if u.startswith(("http://", "https://"))}
        urls.discard(self.own_url)
        if self.allowed_peers is not None:
            urls &= self.allowed_peers
        for url in urls:
            self.peers.setdefault(url, PeerState(url=url))
        return sorted(urls)

    # -- digests ---------------------------------------------------------

    def _heads(self, store: Store, members: Iterable[Member]) -> tuple[dict[str, tuple[int, bytes, bytes]], list[str]]:
        """Per member log without evidence: (size, root, checkpoint) held; and logs with evidence."""
        evidence = store.evidence()
        heads = {}
        for member in members:
            if member.log_id in evidence:
                continue
            state = store.find_log(member.log_id)
            if state is None or state.checkpoint is None:
                continue
            size, root = self._held_checkpoint(state.checkpoint)
            heads[member.log_id] = (size, root, state.checkpoint)
        return heads, sorted(evidence)

    def _held_checkpoint(self, note: bytes) -> tuple[int, bytes]:
        """Size and root of a checkpoint the store holds. Its signature was verified before
        it was stored, so it is only parsed here (memoised): digests are computed for every
        exchange, answer and status, and re-verifying each signature each time cost ~75 us
        per log."""
        hit = self._checkpoints.get(note)
        if hit is None:
            cp = parse_checkpoint(parse_note(note).text)
            if len(self._checkpoints) > 4 * BUCKETS * 1024:
                self._checkpoints.clear()
            hit = self._checkpoints[note] = (cp.size, cp.root)
        return hit

    def digest_parts(self, store: Store) -> tuple[str, list[str], dict, list[str]]:
        members = self.members(store)
        heads, evidence = self._heads(store, members)
        rows = sorted([log_id, size, root] for log_id, (size, root, _) in heads.items())
        digest = hashlib.sha256(encode([self.network_hash, rows, evidence])).hexdigest()
        buckets = []
        for b in range(BUCKETS):
            prefix = format(b, "x")
            part = [r for r in rows if r[0].startswith(prefix)]
            part_ev = [e for e in evidence if e.startswith(prefix)]
            buckets.append(hashlib.sha256(encode([part, part_ev])).hexdigest())
        return digest, buckets, heads, evidence

    def network_digest(self, store: Store) -> str:
        return self.digest_parts(store)[0]

    # -- gossip (both sides) ---------------------------------------------

    def gossip_answer(self, store: Store, request: dict) -> dict:
        """The responder's side of one exchange (runs in a worker thread)."""
        digest, buckets, heads, evidence = self.digest_parts(store)
        answer = {"network": self.network_hash.hex(), "digest": digest, "buckets": buckets}
        theirs = request.get("buckets")
        if request.get("digest") == digest or not isinstance(theirs, list) or len(theirs) != BUCKETS:
            return answer
        differ = {format(b, "x") for b in range(BUCKETS) if theirs[b] != buckets[b]}
        answer["heads"] = {
            log_id: note.decode() for log_id, (_, _, note) in heads.items() if log_id[0] in differ
        }
        answer["evidence"] = [e for e in evidence if e[0] in differ]
        return answer

    def _pick_peers(self, store: Store) -> list[PeerState]:
        urls = self.peer_urls(store)
        clock = self.clock()
        ready = [self.peers[u] for u in urls if self.peers[u].next_try <= clock]
        self.rng.shuffle(ready)
        return ready[: self.fanout]

    async def gossip_round(self) -> None:
        """Start exchanges with a few random peers, without waiting for them to finish.

        An exchange may include a long pull (a newcomer fetching a large log): the next
        rounds, with other peers, must not wait for it. A peer already being exchanged
        with is skipped, and at most MAX_EXCHANGES run at once."""
        self.rounds += 1
        if self.metrics is not None:
            self.metrics.gossip_rounds.inc()
        for peer in await self._db(self._pick_peers):
            self._start_exchange(peer)

    async def exchange(self, peer: PeerState) -> None:
        """Push-pull with one peer: digests first, heads only where they differ, then pull."""
        self.in_flight += 1
        try:
            await self._exchange(peer)
        finally:
            self.in_flight -= 1

    async def _exchange(self, peer: PeerState) -> None:
        try:
            digest, buckets, _, _ = await self._db(self.digest_parts)
            payload = {"network": self.network_hash.hex(), "digest": digest, "buckets": buckets, "from": self.own_url}
            answer = await self._post_json(peer.url + "/v1/gossip", payload)
            if answer.get("digest") != digest and isinstance(answer.get("heads"), dict):
                await self._act_on_heads(peer, answer["heads"], answer.get("evidence", []))
            peer.ok()
            # A restored node has caught up once a peer that holds our own log holds no more
            # of it than we do: equal digests, or an equal bucket for our log id, or its head
            # for our log was just compared and pulled.
            b = int(self.own_log_id[0], 16)
            theirs = answer.get("buckets")
            if (
                answer.get("digest") == digest
                or (isinstance(theirs, list) and len(theirs) == BUCKETS and theirs[b] == buckets[b])
                or self.own_log_id in (answer.get("heads") or {})
            ):
                await self._db(self._confirm_own)
        except (PeerError, ProtocolError) as exc:
            peer.failed(str(exc), self.clock())
            log.info("gossip failed", extra={"peer": peer.url, "error": str(exc)[:200]})

    async def _post_json(self, url: str, payload: dict) -> dict:
        body = encode_json(payload)
        self.stats["gossip_sent"] += 1
        self.stats["gossip_bytes_sent"] += len(body)
        try:
            async with self.session.post(
                url, data=body, headers={"Content-Type": "application/json"},
                timeout=aiohttp.ClientTimeout(total=self.timeout),
            ) as response:
                data = await read_limited(response.content, MAX_GOSSIP_BYTES)
                if data is None:
                    raise PeerError(f"{url}: answer larger than {MAX_GOSSIP_BYTES} bytes")
                self._check_clock(url, response.headers.get("Date"))
                if response.status == 409:
                    raise PeerError(f"{url}: runs under a different network file")
                if response.status != 200:
                    raise PeerError(f"{url}: answered {response.status}")
                try:
                    answer = json.loads(data)
                except ValueError as exc:
                    raise PeerError(f"{url}: answer is not JSON") from exc
                if not isinstance(answer, dict):
                    raise PeerError(f"{url}: answer is not a JSON object")
                if answer.get("network") != self.network_hash.hex():
                    raise PeerError(f"{url}: runs under a different network file")
                return answer
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise PeerError(f"{url}: {type(exc).__name__}: {str(exc)[:200]}") from exc

    async def _act_on_heads(self, peer: PeerState, heads: dict, evidence: list) -> None:
        members = {m.log_id: m for m in await self._db(self.members)}
        held, held_evidence = await self._db(lambda s: self._heads(s, members.values()))
        fetcher = self.fetcher(peer.url)
        # A set: a hostile answer repeating one log id must not make us fetch it again and again.
        wanted = {e for e in evidence if isinstance(e, str)} if isinstance(evidence, list) else set()
        for log_id in sorted(wanted & members.keys() - set(held_evidence)):
            await self.fetch_evidence(fetcher, members[log_id])
        for log_id, note in list(heads.items())[: len(members) + 1]:
            member = members.get(log_id)
            if member is None or not isinstance(note, str) or len(note) > MAX_NOTE_SIZE:
                continue
            ours = held.get(log_id)
            try:
                signed = open_checkpoint(note.encode(), member.verifier)
            except ProtocolError as exc:
                raise PeerError(f"{peer.url}: head for {member.origin} does not verify: {exc}") from exc
            cp = signed.checkpoint
            if ours is not None and ours[0] == cp.size and ours[1] == cp.root:
                continue
            # The signed head is in hand: compared locally when it is not beyond what we
            # hold (evidence if it forks), fetched from this peer only when it is.
            await self.pull(fetcher, member, signed)

    async def pull(self, fetcher: Fetcher, member: Member, signed=None) -> SyncOutcome | None:
        """Sync one log from one peer: from its current checkpoint, or from ``signed`` if given."""
        try:
            if signed is None:
                outcome = await self.syncer.sync_log(fetcher, member)
            else:
                outcome = await self.syncer.offer_checkpoint(fetcher, member, signed)
        except PeerError as exc:
            self._count_error(exc)
            raise
        except ProtocolError as exc:
            self._count_error(exc)
            raise PeerError(f"{fetcher.base_url}: {exc}") from exc
        if self.metrics is not None:
            self.metrics.sync_runs.labels(outcome.state).inc()
            self.metrics.synced.inc(outcome.fetched)
        return outcome

    def _check_clock(self, url: str, date: str | None) -> None:
        """Warn when our clock and a peer's disagree by minutes: author times would be wrong."""
        if not date:
            return
        try:
            theirs = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            return
        skew = time.time() - theirs
        self.clock_skew_s = round(skew, 1)
        if abs(skew) > CLOCK_WARNING_S:
            log.warning(
                "clock differs from a peer's by more than %d s: check NTP on this server",
                CLOCK_WARNING_S, extra={"peer": url, "skew_s": round(skew)},
            )

    def _confirm_own(self, store: Store) -> None:
        from node.backup import mark_caught_up

        mark_caught_up(store)

    def _count_error(self, exc: Exception) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(type(exc).__name__).inc()

    async def fetch_evidence(self, fetcher: Fetcher, member: Member) -> bool:
        data = await fetcher.get(f"/v1/evidence/{member.log_id}", limit=MAX_EVIDENCE_BYTES)
        if data is None:
            return False
        try:
            evidence = decode_evidence(data)
            check_evidence(evidence, member.verifier)
        except ProtocolError as exc:
            raise PeerError(f"{fetcher.base_url}: evidence against {member.origin} does not verify: {exc}") from exc

        def store_it(store: Store) -> bool:
            state = store.find_log(member.log_id)
            with store.write():
                if state is None:
                    from protocol.merkle import EMPTY_ROOT

                    lid = store.add_log(log_id=member.log_id, origin=member.origin,
                                        verifier=str(member.verifier), own=False, root=EMPTY_ROOT)
                else:
                    lid = state.lid
                return store.add_evidence(lid, encode_evidence(evidence), now_ms())

        if await self._db(store_it):
            self._evidence_found(member.log_id)
        return True

    def _evidence_found(self, log_id: str) -> None:
        if self.metrics is not None:
            self.metrics.evidence_found.inc()
            if log_id == self.own_log_id:
                self.metrics.own_evidence.set(1)
        if log_id == self.own_log_id:
            self.own_evidence = True
            log.critical(
                "evidence against our own city: authoring stopped; someone else holds our key "
                "or a copy of this server is running",
                extra={"log_id": log_id},
            )
        else:
            log.error("city equivocated", extra={"log_id": log_id})

    # -- announcements ---------------------------------------------------

    async def announce(self, log_id: str) -> None:
        """Tell a few random reachable peers about our newest checkpoint of a log.

        Each receiver pulls and announces onwards, so a new entry spreads epidemically in
        about log(N) hops with ANNOUNCE_FANOUT messages per node, not N per node (N**2 in
        all); gossip rounds catch whoever announcements missed."""
        state = await self._db(lambda s: s.find_log(log_id))
        if state is None or state.checkpoint is None or self._announced.get(log_id) == state.checkpoint:
            return  # nothing new to tell (e.g. a sync grew the log but has not finished)
        self._announced[log_id] = state.checkpoint
        payload = {"checkpoint": state.checkpoint.decode(), "from": self.own_url}
        urls = await self._db(self.peer_urls)
        clock = self.clock()
        targets = [self.peers[u] for u in urls if self.peers[u].next_try <= clock]
        self.rng.shuffle(targets)
        targets = targets[: max(ANNOUNCE_FANOUT, self.fanout)]

        async def one(peer: PeerState) -> None:
            try:
                async with self.session.post(
                    peer.url + "/v1/announce", data=encode_json(payload),
                    headers={"Content-Type": "application/json"}, timeout=aiohttp.ClientTimeout(total=self.timeout),
                ) as response:
                    await response.read()
                    self.stats["announces_sent"] += 1
                    if response.status >= 500:
                        raise PeerError(f"{peer.url}: answered {response.status}")
            except (aiohttp.ClientError, TimeoutError, PeerError) as exc:
                peer.failed(str(exc), self.clock())

        await asyncio.gather(*(one(p) for p in targets))

    async def receive_announce(self, body: dict) -> tuple[int, dict]:
        """add-checkpoint-like: 200 held already, 202 will pull, 403 not a member, 422 bad signature."""
        note = body.get("checkpoint")
        source = body.get("from")
        if not isinstance(note, str) or len(note) > MAX_NOTE_SIZE:
            raise BadRequest("announce: 'checkpoint' must be a signed checkpoint note")
        try:
            cp = parse_checkpoint(parse_note(note.encode()).text)
        except ProtocolError as exc:
            raise BadRequest(f"announce: {exc}") from exc
        members = {m.log_id: m for m in await self._db(self.members)}
        member = members.get(compute_log_id(cp.origin))
        if member is None:
            raise PeerRefused(f"announce: {cp.origin[:100]!r} is not a member of this network")
        try:
            signed = open_checkpoint(note.encode(), member.verifier)
        except ProtocolError as exc:
            return 422, {"detail": f"checkpoint does not verify with the member's key: {exc}"}
        state = await self._db(lambda s: s.find_log(member.log_id))
        if state is not None and state.checkpoint is not None:
            held = open_checkpoint(state.checkpoint, member.verifier).checkpoint
            if held.size >= cp.size:
                if held.size == cp.size and held.root == cp.root:
                    return 200, {"detail": "already held"}
                # Older or conflicting: compare against what we hold (evidence if it forks).
                outcome = await self.syncer.offer_checkpoint(self.fetcher(self.own_url), member, signed)
                if outcome.state == "equivocation":
                    return 409, {"detail": "conflicts with a checkpoint held here; evidence recorded"}
                return 200, {"detail": "older than what is held"}
        # Pull only from a known peer (an announcement must not make this node fetch from
        # any address it names), and one pull per log at a time however often it is announced.
        url = source.rstrip("/") if isinstance(source, str) else ""
        known = await self._db(self.peer_urls)
        if url not in known:
            return 202, {"detail": "noted; will fetch from known peers by gossip"}
        if member.log_id not in self._announced_pulls:
            self._announced_pulls.add(member.log_id)
            self._spawn(self._pull_and_pass_on(url, member))
        return 202, {"detail": "will fetch"}

    async def _pull_and_pass_on(self, url: str, member: Member) -> None:
        self.in_flight += 1
        try:
            await self._pull_from_announcer(url, member)
        finally:
            self.in_flight -= 1
            self._announced_pulls.discard(member.log_id)

    async def _pull_from_announcer(self, url: str, member: Member) -> None:
        peer = self.peers.setdefault(url, PeerState(url=url))
        try:
            outcome = await self.pull(self.fetcher(url), member)
            peer.ok()
        except PeerError as exc:
            peer.failed(str(exc), self.clock())
            return
        # No announcement here: the head watcher sees the log grow and announces it once.

    def _spawn(self, coro) -> None:
        if self._closing:
            # The app's head watcher and request handlers still run while close() waits;
            # a task started now would find the database thread gone.
            coro.close()
            return
        task = asyncio.create_task(coro)
        self._pulls.add(task)
        task.add_done_callback(self._pulls.discard)

    def schedule_exchange(self, url: str) -> None:
        """Exchange with a peer soon (it showed us a different digest); ignored if unknown."""
        peer = self.peers.get(url.rstrip("/"))
        if peer is not None and peer.next_try <= self.clock():
            self._start_exchange(peer)

    def _start_exchange(self, peer: PeerState) -> None:
        if peer.url in self._exchanging or len(self._exchanging) >= MAX_EXCHANGES:
            return
        self._exchanging.add(peer.url)

        async def run() -> None:
            try:
                await self.exchange(peer)
            finally:
                self._exchanging.discard(peer.url)

        self._spawn(run())

    def log_grew(self, log_id: str, size: int) -> None:
        """Watcher callback: a log grew here (authored or synced); announce it promptly."""
        self._spawn(self.announce(log_id))

    async def run(self) -> None:
        """The gossip loop: every interval, exchange with a few random peers."""
        while True:
            try:
                await self.gossip_round()
            except Exception:  # a bug in one round must not stop gossip for good
                log.exception("gossip round failed")
            await asyncio.sleep(self.interval * (0.5 + self.rng.random()))

    async def sync_all(self) -> list[SyncOutcome]:
        """Pull every member log once from every peer (``solidarity sync``)."""
        outcomes = []
        for url in await self._db(self.peer_urls):
            peer = self.peers[url]
            fetcher = self.fetcher(url)
            for member in await self._db(self.members):
                try:
                    outcome = await self.pull(fetcher, member)
                    peer.ok()
                except PeerError as exc:
                    peer.failed(str(exc), self.clock())
                    continue
                if outcome is not None:
                    outcomes.append(outcome)
                    if member.log_id == self.own_log_id and outcome.state in ("up-to-date", "grew"):
                        await self._db(self._confirm_own)
        return outcomes

    async def close(self) -> None:
        """Cancel pulls under way and wait for the database thread: then the store may close."""
        self._closing = True
        for task in list(self._pulls):
            task.cancel()
        await asyncio.gather(*self._pulls, return_exceptions=True)
        await asyncio.get_running_loop().run_in_executor(None, self.executor.shutdown, True)

    # -- status ----------------------------------------------------------

    def status(self, store: Store) -> dict:
        digest, _, heads, evidence = self.digest_parts(store)
        membership = self._membership
        logs = []
        for state in store.logs():
            entry = {
                "log_id": state.log_id,
                "origin": state.origin,
                "size": state.size,
                "root": state.root.hex(),
                "updated_ms": state.updated_ms,
                "own": state.own,
            }
            if state.log_id in evidence:
                entry["state"] = "equivocating"
            elif membership is not None and state.verifier in membership.revoked:
                entry["state"] = "former-member"
            elif state.pending is not None:
                entry["state"] = "syncing"
            else:
                entry["state"] = "ok"
            logs.append(entry)
        return {
            "network": {
                "name": self.network.name,
                "file_hash": self.network_hash.hex(),
                "signed_by": list(self.signed_by),
                "founders": len(self.network.founders),
            },
            "network_digest": digest,
            "members": len(membership.members) if membership else 0,
            "logs": logs,
            "evidence": evidence,
            "own_evidence": self.own_evidence,
            "peers": [self.peers[u].as_json() for u in sorted(self.peers)],
            "gossip_rounds": self.rounds,
            "gossip_stats": dict(self.stats),
            "clock_skew_s": self.clock_skew_s,
        }


async def read_limited(stream: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body, or None if it is longer than ``limit``.

    (``StreamReader.read(n)`` returns only what is buffered so far, so a large
    answer read that way arrives cut short.)"""
    chunks, total = [], 0
    async for chunk in stream.iter_chunked(65536):
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def encode_json(payload: dict) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()

