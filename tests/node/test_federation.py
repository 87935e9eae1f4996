"""Real nodes on loopback converge: topologies, partitions, restarts, forks, membership."""

from __future__ import annotations

import asyncio
import hashlib
import random

import aiohttp
import pytest
from aiohttp import web

from node.audit import audit_store
from node.store import Store

from node.authoring import Event
from protocol.evidence import check_evidence, decode_evidence
from protocol.keys import parse_verifier_key

from .conftest import OFFER, PLEDGE
from .harness import Network

pytestmark = pytest.mark.slow


def line(n: int) -> dict[int, set[int]]:
    return {i: {j for j in (i - 1, i + 1) if 0 <= j < n} for i in range(n)}


def ring(n: int) -> dict[int, set[int]]:
    return {i: {(i - 1) % n, (i + 1) % n} for i in range(n)}


def random_graph(n: int, seed: int = 42) -> dict[int, set[int]]:
    rng = random.Random(seed)
    edges = line(n)  # connected backbone, then random extra edges
    for _ in range(n):
        a, b = rng.sample(range(n), 2)
        edges[a].add(b)
        edges[b].add(a)
    return edges


@pytest.fixture
async def network(tmp_path):
    net = Network(tmp_path, 10)
    yield net
    await net.stop_all()


@pytest.mark.parametrize("topology", [line, ring, random_graph], ids=["line", "ring", "random"])
async def test_ten_nodes_converge(network, topology):
    for i, node in enumerate(network.nodes):
        node.author([Event(type="pledge", body=PLEDGE)] * (i + 1))
    await network.start_all()
    network.restrict(topology(10))
    digest = await network.converge(timeout=90)
    sizes = network.nodes[0].sizes()
    assert len(sizes) == 10
    assert sorted(sizes.values()) == [i + 2 for i in range(10)]
    assert all(n.digest() == digest for n in network.nodes)


async def test_partition_then_heal_converges(network):
    await network.start_all()
    full = {i: set(range(10)) - {i} for i in range(10)}
    network.restrict(full)
    await network.converge(timeout=60)
    left, right = set(range(5)), set(range(5, 10))
    network.restrict({i: (left if i in left else right) - {i} for i in range(10)})
    await network.quiesce()  # exchanges already under way when the partition began finish first
    network.nodes[0].author([Event(type="pledge", body=PLEDGE)] * 3)
    network.nodes[9].author([Event(type="offer", body=OFFER)] * 4)
    await network.converge(timeout=60, nodes=network.nodes[:5])
    await network.converge(timeout=60, nodes=network.nodes[5:])
    assert network.nodes[0].digest() != network.nodes[9].digest()
    network.restrict(full)
    await network.converge(timeout=60)
    sizes = network.nodes[5].sizes()
    assert sizes[network.nodes[0].federation.store.own_log().origin] == 4
    assert sizes[network.nodes[9].federation.store.own_log().origin] == 5


async def test_node_stopped_mid_sync_resumes_without_refetching(tmp_path, monkeypatch):
    import node.sync as sync_module
    from node.audit import audit_store
    from node.context import METRICS
    from node.sync import Fetcher, Member, Syncer
    from protocol.keys import parse_verifier_key

    net = Network(tmp_path, 2, interval_ms=50)
    try:
        big, follower = net.nodes
        big.author([Event(type="offer", body=OFFER)] * 6000)
        await net.start(big)
        own = big.federation.store.own_log()
        member = Member(log_id=own.log_id, origin=own.origin, verifier=parse_verifier_key(own.verifier))
        # The follower's first sync ends after 4 bundles, exactly as if the node stopped there
        # (deterministic: no race between a running sync and the stop).
        monkeypatch.setattr(sync_module, "MAX_BUNDLES_PER_SYNC", 4)
        store = Store(follower.data / "solidarity.db")
        syncer = Syncer(store)
        async with aiohttp.ClientSession() as session:
            outcome = await syncer.sync_log(Fetcher(session, big.url), member)
        syncer.executor.shutdown(wait=True)
        store.close()
        monkeypatch.undo()
        partial = follower.sizes()[own.origin]
        assert outcome.size == partial == 4 * 256
        await net.start(follower)
        await net.converge(timeout=60)
        assert follower.sizes()[own.origin] == 6001
        # After the restart only what was missing was fetched: nothing verified before came again.
        assert follower.app[METRICS].synced._value.get() == 6001 - partial  # noqa: SLF001
        with Store(follower.data / "solidarity.db", readonly=True) as store:
            assert {r.origin: r.size for r in audit_store(store)}[own.origin] == 6001
    finally:
        await net.stop_all()


async def test_city_signing_two_histories_is_caught_by_every_node(tmp_path):
    net = Network(tmp_path, 4)
    try:
        net.nodes[0].author([Event(type="pledge", body=PLEDGE)] * 5)
        await net.start_all()
        await net.converge(timeout=60)
        victim = net.nodes[0]
        origin = victim.federation.store.own_log().origin
        entry_verifier = victim.federation.store.own_log().verifier
        # A copy of Athens's node signs another history with the same key at the same address.
        await net.stop(victim)
        import shutil

        from node.local import init_node
        from tests.node.conftest import seed_for

        network_file = (victim.data / "network.toml").read_text()
        shutil.rmtree(victim.data)
        init_node(victim.data, city="Athens", country="GR", url=victim.url, network="test-net",
                  seed=seed_for("Athens"))[0].close()
        (victim.data / "network.toml").write_text(network_file)
        victim.author([Event(type="offer", body=OFFER)] * 9)
        await net.start(victim)
        await net.converge(timeout=60, sizes_too=False)
        for node in net.nodes:
            status = node.federation.status(node.federation.store)
            [entry] = [x for x in status["logs"] if x["origin"] == origin]
            assert entry["state"] == "equivocating"
            [encoded] = [ev for ev, _ in node.federation.store.evidence().values()]
            check_evidence(decode_evidence(encoded), parse_verifier_key(entry_verifier))
        assert victim.federation.own_evidence
        from node.errors import AuthoringRefused

        with pytest.raises(AuthoringRefused, match="two histories"):
            victim.author([Event(type="pledge", body=PLEDGE)])
    finally:
        await net.stop_all()


async def test_vouched_city_is_fetched_once_the_rule_is_met_never_before(tmp_path):
    net = Network(tmp_path, 4, founders=3, min_vouches=2, share=50)
    try:
        newcomer = net.nodes[3]
        await net.start_all()
        founders = net.nodes[:3]
        await net.converge(timeout=60, nodes=founders)
        key = newcomer.federation.store.own_log().verifier
        origin = newcomer.federation.store.own_log().origin
        vouch = {"key": key, "origin": origin, "name": newcomer.name, "url": newcomer.url,
                 "reason": "Member of the Eurocities migration working group."}
        founders[0].author([Event(type="vouch", body=vouch)])
        await net.converge(timeout=60, nodes=founders)
        await asyncio.sleep(1.0)  # ten gossip intervals: time enough for a wrong fetch to happen
        for node in founders:
            assert origin not in node.sizes(), "fetched before the rule was met"
        founders[1].author([Event(type="vouch", body=vouch)])
        await net.converge(timeout=60)
        for node in net.nodes:
            assert node.sizes()[origin] == 1
    finally:
        await net.stop_all()


def hostile_app(honest_url: str, network_hash_hex: str, forged_note: bytes) -> web.Application:
    """A member's node gone bad: it relays honest data, corrupted in every way it can think of."""
    counter = {"n": 0}

    async def relay(request: web.Request, path: str) -> tuple[int, bytes]:
        async with aiohttp.ClientSession() as session:
            async with session.get(honest_url + path) as response:
                return response.status, await response.read()

    async def any_get(request: web.Request) -> web.StreamResponse:
        counter["n"] += 1
        mode = counter["n"] % 6
        path = request.path
        if mode == 0:
            await asyncio.sleep(10)  # slower than the 2 s timeout the nodes use
            return web.Response(body=b"late")
        if mode == 1:
            return web.Response(body=bytes(range(64)))  # malformed bytes
        if mode == 2:
            return web.Response(body=b"x" * (20 * 1024 * 1024))  # oversized
        if path.endswith("/checkpoint") and mode == 3:
            return web.Response(body=forged_note)  # signed by a key no member has
        status, data = await relay(request, path)
        if status == 200 and ("/tile/" in path or "/bodies/" in path) and data:
            data = data[:-1] + bytes([data[-1] ^ 0x40])  # forged entries, bodies, wrong hashes
        return web.Response(status=status, body=data)

    async def gossip(request: web.Request) -> web.Response:
        # Claims to differ everywhere and to hold every log, so honest nodes come to pull from it.
        heads = {}
        async with aiohttp.ClientSession() as session:
            async with session.get(honest_url + "/v1/logs") as response:
                for held in (await response.json())["logs"]:
                    async with session.get(honest_url + held["prefix"] + "checkpoint") as cp:
                        heads[held["log_id"]] = (await cp.read()).decode()
        heads[hashlib.sha256(forged_note.split(b"\n")[0]).hexdigest()] = forged_note.decode()
        return web.json_response({"network": network_hash_hex, "digest": "00" * 32,
                                  "buckets": ["00" * 32] * 16, "heads": heads, "evidence": []})

    async def announce(request: web.Request) -> web.Response:
        return web.json_response({}, status=202)

    app = web.Application()
    app.router.add_post("/v1/gossip", gossip)
    app.router.add_post("/v1/announce", announce)
    app.router.add_get("/{tail:.*}", any_get)
    return app


async def test_hostile_peer_gets_nothing_stored_and_honest_nodes_converge(tmp_path):
    net = Network(tmp_path, 4, interval_ms=100)
    try:
        for node in net.nodes:
            node.author([Event(type="pledge", body=PLEDGE)] * 300)
        honest, bad = net.nodes[:3], net.nodes[3]
        bad_origin = Store(bad.data / "solidarity.db", readonly=True).own_log().origin
        for node in honest:
            await net.start(node)
        from protocol.checkpoint import Checkpoint, sign_checkpoint
        from protocol.keys import signer_from_seed

        impostor = signer_from_seed(bad_origin, b"\x07" * 32)
        forged = sign_checkpoint(Checkpoint(origin=bad_origin, size=10**6, root=b"\x01" * 32), impostor)
        from protocol.network import network_hash

        runner = web.AppRunner(hostile_app(honest[0].url, network_hash(net.network).hex(), forged))
        await runner.setup()
        await web.SockSite(runner, bad.sock).start()
        try:
            await net.converge(timeout=60, nodes=honest)
            await asyncio.sleep(2.0)  # more rounds with the hostile peer
            for node in honest:
                sizes = node.sizes()
                assert sizes.get(bad_origin, 0) == 0
                assert sorted(v for k, v in sizes.items() if k != bad_origin) == [301, 301, 301]
                with Store(node.data / "solidarity.db", readonly=True) as store:
                    audit_store(store)
                peers = {p["url"]: p for p in node.federation.status(node.federation.store)["peers"]}
                assert peers[bad.url]["last_error"], "the hostile peer was never refused"
                async with aiohttp.ClientSession() as session:
                    async with session.get(node.url + "/healthz") as response:
                        assert response.status == 200
        finally:
            await runner.cleanup()
    finally:
        for node in net.nodes[:3]:
            await net.stop(node)
        for node in net.nodes:
            node.sock.close()


async def test_head_watcher_during_close_no_longer_hits_a_shut_down_executor(tmp_path):
    """Bug: Ctrl-C on 'solidarity demo' (or 'serve') just after a sync sometimes logged
    "Task exception was never retrieved ... cannot schedule new futures after shutdown": the
    app's head watcher still runs while Federation.close() waits, and the announce it started
    for a log that had just grown ran after the database thread was shut down."""
    from node.federation import Federation

    net = Network(tmp_path, 2)
    node = net.nodes[0]
    for n in net.nodes:
        n.sock.close()
    with Store(node.data / "solidarity.db") as store:
        async with aiohttp.ClientSession() as session:
            federation = Federation(store, net.network, own_url=node.url, session=session)
            own = store.own_log().log_id
            closing = asyncio.create_task(federation.close())
            await asyncio.sleep(0)  # close() has begun and is waiting for the database thread
            federation.log_grew(own, 2)
            federation.schedule_exchange(net.nodes[1].url)
            assert not federation._pulls  # noqa: SLF001 - nothing was started
            await closing
            federation.log_grew(own, 3)
            assert not federation._pulls  # noqa: SLF001


async def test_bug_announce_made_the_node_fetch_from_any_address_it_named(tmp_path):
    net = Network(tmp_path, 2)
    try:
        await net.start_all()
        await net.converge(timeout=60)
        a, b = net.nodes
        b.author([Event(type="pledge", body=PLEDGE)])
        async with aiohttp.ClientSession() as session:
            origin = b.federation.store.own_log().log_id
            async with session.get(f"{b.url}/v1/logs/{origin}/checkpoint") as response:
                note = (await response.read()).decode()
            unknown = "http://127.0.0.1:9"  # not a peer of this network
            async with session.post(f"{a.url}/v1/announce", json={"checkpoint": note, "from": unknown}) as response:
                assert response.status in (200, 202)
                body = await response.json()
        assert unknown not in a.federation.peers
        if response.status == 202:
            assert "known peers" in body["detail"]
    finally:
        await net.stop_all()
