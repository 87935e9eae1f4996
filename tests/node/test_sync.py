"""Syncing a log from a peer: verified tile by tile, bundle by bundle; forks caught with evidence."""

from __future__ import annotations

import aiohttp
import pytest
from aiohttp import web

from node.app import create_app
from node.audit import audit_store
from node.authoring import Event
from node.sync import BadRelay, Fetcher, Member, Syncer
from protocol.entry import log_id
from protocol.evidence import check_evidence, decode_evidence

from .conftest import OFFER, PLEDGE


def member_of(node) -> Member:
    origin = node.config["node.origin"]
    return Member(log_id=log_id(origin), origin=origin, verifier=node.signer.verifier)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def serve_node(aiohttp_server, node):
    return await aiohttp_server(create_app(node.config))


async def evidence_from_twin(aiohttp_server, session, syncer, twin, member, berlin, athens):
    """Sync ``member`` from ``twin`` (same key, other history): equivocation, and the
    evidence Berlin stored verifies with protocol/ and Athens's key alone."""
    twin_server = await serve_node(aiohttp_server, twin)
    outcome = await syncer.sync_log(Fetcher(session, str(twin_server.make_url(""))), member)
    twin.close()
    assert outcome.state == "equivocation"
    [encoded] = [ev for ev, _ in berlin.store.evidence().values()]
    evidence = decode_evidence(encoded)
    check_evidence(evidence, athens.signer.verifier)
    return evidence


async def serve_relay(aiohttp_server, session, honest, change):
    """A relay in front of ``honest`` that passes every answer through ``change(path, status, data)``."""

    async def relayed(request: web.Request) -> web.StreamResponse:
        async with session.get(str(honest.make_url(request.path))) as response:
            data = await response.read()
        return web.Response(body=change(request.path, response.status, data), status=response.status)

    app = web.Application()
    app.router.add_get("/{tail:.*}", relayed)
    return await aiohttp_server(app)


async def test_sync_fetches_a_log_and_resumes_with_new_entries(make_node, aiohttp_server, session):
    athens = make_node("Athens")
    athens.author().append([Event(type="pledge", body=PLEDGE)] * 700)
    server = await serve_node(aiohttp_server, athens)
    berlin = make_node("Berlin", country="DE")
    syncer = Syncer(berlin.store)
    fetcher = Fetcher(session, str(server.make_url("")))
    outcome = await syncer.sync_log(fetcher, member_of(athens))
    assert (outcome.state, outcome.size, outcome.fetched) == ("grew", 701, 701)
    copy = berlin.store.log(member_of(athens).log_id)
    own = athens.store.own_log()
    assert (copy.size, copy.root, copy.checkpoint) == (own.size, own.root, own.checkpoint)

    athens.author().append([Event(type="offer", body=OFFER)] * 300)
    outcome = await syncer.sync_log(fetcher, member_of(athens))
    assert (outcome.state, outcome.size, outcome.fetched) == ("grew", 1001, 300)
    outcome = await syncer.sync_log(fetcher, member_of(athens))
    assert outcome.state == "up-to-date"
    sizes = {r.origin: r.size for r in audit_store(berlin.store)}
    assert sizes[member_of(athens).origin] == 1001


async def test_a_city_that_signs_two_histories_is_caught(make_node, aiohttp_server, session, tmp_path):
    athens = make_node("Athens")
    athens.author().append([Event(type="pledge", body=PLEDGE)] * 10)
    berlin = make_node("Berlin", country="DE")
    syncer = Syncer(berlin.store)
    server = await serve_node(aiohttp_server, athens)
    await syncer.sync_log(Fetcher(session, str(server.make_url(""))), member_of(athens))

    # A second copy of Athens's node (same key, same origin) that authored differently.
    from node.local import init_node
    from tests.node.conftest import seed_for

    twin, _ = init_node(tmp_path / "twin", city="Athens", country="GR", url=athens.config["node.public_url"],
                        network="test-net", seed=seed_for("Athens"))
    twin.author().append([Event(type="offer", body=OFFER)] * 30)
    twin_server = await serve_node(aiohttp_server, twin)
    outcome = await syncer.sync_log(Fetcher(session, str(twin_server.make_url(""))), member_of(athens))
    twin.close()
    assert outcome.state == "equivocation"
    [encoded] = [ev for ev, _ in berlin.store.evidence().values()]
    evidence = decode_evidence(encoded)
    check_evidence(evidence, athens.signer.verifier)  # verifies with protocol/ and the key alone
    # No new entries are taken for that log any more.
    again = await syncer.sync_log(Fetcher(session, str(server.make_url(""))), member_of(athens))
    assert again.state == "equivocation" and again.size == 11


async def test_forged_bundle_is_refused_and_nothing_stored(make_node, aiohttp_server, session):
    athens = make_node("Athens")
    athens.author().append([Event(type="pledge", body=PLEDGE)] * 300)
    real = create_app(athens.config)
    honest = await aiohttp_server(real)

    def forged(path: str, status: int, data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if "/tile/entries/" in path else data

    hostile = await serve_relay(aiohttp_server, session, honest, forged)
    berlin = make_node("Berlin", country="DE")
    syncer = Syncer(berlin.store)
    with pytest.raises(BadRelay):
        await syncer.sync_log(Fetcher(session, str(hostile.make_url(""))), member_of(athens))
    assert berlin.store.log(member_of(athens).log_id).size == 0
    outcome = await syncer.sync_log(Fetcher(session, str(honest.make_url(""))), member_of(athens))
    assert outcome.size == 301


async def test_bug_huge_signed_size_exhausted_memory_before_any_fetch(tmp_path):
    """A city may sign any size; 2**40 once made sync build a list of 4 billion tiles."""
    import random

    from node.store import Store
    from node.sync import BadRelay
    from protocol.checkpoint import Checkpoint, sign_checkpoint
    from protocol.keys import signer_from_seed
    from protocol.tiles import edge_tiles, root_from_edge_tiles, tile_path

    origin = "huge.example/log"
    signer = signer_from_seed(origin, b"\x07" * 32)
    size = 2**40 + 3
    rng = random.Random(42)
    edges = {t: rng.randbytes(32 * t.width) for t in edge_tiles(size)}
    note = sign_checkpoint(Checkpoint(origin=origin, size=size, root=root_from_edge_tiles(size, edges)), signer)
    files = {f"/v1/logs/{log_id(origin)}/checkpoint": note}
    files.update({f"/v1/logs/{log_id(origin)}/{tile_path(t)}": d for t, d in edges.items()})
    asked = []

    class Peer:
        base_url, wire_bytes = "http://127.0.0.1:1", 0

        async def get(self, path, *, limit):
            asked.append(path)
            return files.get(path)

    store = Store.create(tmp_path / "db.sqlite")
    member = Member(log_id=log_id(origin), origin=origin, verifier=signer.verifier)
    with pytest.raises(BadRelay):  # the first full tile it needs does not exist: refused, quickly
        await Syncer(store).sync_log(Peer(), member)
    assert len(asked) < 20
    assert store.log(member.log_id).size == 0


async def test_bug_large_gossip_answer_was_read_cut_short(aiohttp_server):
    """StreamReader.read(n) returns what is buffered; a 500 KB answer arrived truncated."""
    from node.federation import read_limited

    payload = b'{"x": "' + b"y" * 500_000 + b'"}'

    async def big(request):
        return web.Response(body=payload, content_type="application/json")

    app = web.Application()
    app.router.add_get("/", big)
    server = await aiohttp_server(app)
    async with aiohttp.ClientSession() as session:
        async with session.get(str(server.make_url("/"))) as response:
            assert await read_limited(response.content, 4 * 1024 * 1024) == payload
        async with session.get(str(server.make_url("/"))) as response:
            assert await read_limited(response.content, 1000) is None


def twin_of(node, tmp_path, name: str):
    """A second copy of a city's node (same key, same origin) that will author differently."""
    from node.local import init_node
    from tests.node.conftest import seed_for

    city = node.config["node.origin"]
    twin, _ = init_node(tmp_path / name, city="Athens", country="GR", url=node.config["node.public_url"],
                        network="test-net", seed=seed_for("Athens"))
    assert twin.config["node.origin"] == city
    return twin


async def stop_after(syncer, fetcher, member, bundles: int, monkeypatch):
    """A first sync that ends after ``bundles`` bundles, as if the node stopped there."""
    import node.sync as sync_module

    monkeypatch.setattr(sync_module, "MAX_BUNDLES_PER_SYNC", bundles)
    outcome = await syncer.sync_log(fetcher, member)
    monkeypatch.undo()
    return outcome


@pytest.mark.parametrize("twin_entries", [30, 700], ids=["fork-below-held", "fork-past-pending"])
async def test_bug_fork_against_an_unfinished_sync_was_abandoned_not_proven(
    make_node, aiohttp_server, session, tmp_path, monkeypatch, twin_entries
):
    """A checkpoint contradicting entries held only towards a pending checkpoint was dropped as
    an abandoned sync; the city signed both, so it is equivocation, with evidence."""
    athens = make_node("Athens")
    athens.author().append([Event(type="pledge", body=PLEDGE)] * 600)  # pending: size 601
    server = await serve_node(aiohttp_server, athens)
    berlin = make_node("Berlin", country="DE")
    syncer = Syncer(berlin.store)
    member = member_of(athens)
    outcome = await stop_after(syncer, Fetcher(session, str(server.make_url(""))), member, 2, monkeypatch)
    held = berlin.store.log(member.log_id)
    assert (outcome.size, held.checkpoint, held.pending) == (512, None, athens.store.own_log().checkpoint)

    # Size 31: inside what Berlin holds; size 701: past the pending 601.
    twin = twin_of(athens, tmp_path, "twin")
    twin.author().append([Event(type="offer", body=OFFER)] * twin_entries)
    evidence = await evidence_from_twin(aiohttp_server, session, syncer, twin, member, berlin, athens)
    assert athens.store.own_log().checkpoint in (evidence.older, evidence.newer)
    assert berlin.store.log(member.log_id).size == 512  # nothing verified was dropped


async def test_fork_inside_the_pending_tree_keeps_the_sync_until_it_can_be_proven(
    make_node, aiohttp_server, session, tmp_path, monkeypatch
):
    """Between the held entries and the pending size neither tree's hashes are held: the
    pending sync is kept (not dropped for the other branch), and once finished the fork
    is proven."""
    from node.sync import PeerError

    athens = make_node("Athens")
    athens.author().append([Event(type="pledge", body=PLEDGE)] * 1500)  # pending: size 1501
    server = await serve_node(aiohttp_server, athens)
    honest = Fetcher(session, str(server.make_url("")))
    berlin = make_node("Berlin", country="DE")
    syncer = Syncer(berlin.store)
    member = member_of(athens)
    await stop_after(syncer, honest, member, 2, monkeypatch)
    pending = berlin.store.log(member.log_id).pending

    twin = twin_of(athens, tmp_path, "twin")
    twin.author().append([Event(type="offer", body=OFFER)] * 700)  # size 701: 512 < 701 < 1501
    twin_server = await serve_node(aiohttp_server, twin)
    forked = Fetcher(session, str(twin_server.make_url("")))
    with pytest.raises(PeerError, match="forks from the pending sync"):
        await syncer.sync_log(forked, member)
    held = berlin.store.log(member.log_id)
    assert (held.size, held.pending, berlin.store.evidence()) == (512, pending, {})

    assert (await syncer.sync_log(honest, member)).size == 1501
    outcome = await syncer.sync_log(forked, member)
    twin.close()
    assert outcome.state == "equivocation"
    [encoded] = [ev for ev, _ in berlin.store.evidence().values()]
    check_evidence(decode_evidence(encoded), athens.signer.verifier)


async def test_bug_parent_tile_fetch_refetched_the_child_tile():
    """PeerTree.ensure fetched a tile, found its parent missing, fetched the parent, then
    fetched the same tile again; each tile is fetched once now."""
    import random

    from node.sync import PeerTree
    from protocol.merkle import LeafHashes, root_of
    from protocol.tiles import read_tile, tile_path

    rng = random.Random(42)
    leaves = [rng.randbytes(32) for _ in range(70_000)]  # level-1 tile 0 is full: not an edge tile
    reader = LeafHashes(leaves)
    asked: list[str] = []

    async def fetch_tile(tile):
        asked.append(tile_path(tile))
        return read_tile(tile, reader)

    tree = PeerTree(len(leaves), root_of(leaves), fetch_tile)
    await tree.load_edges()
    assert await tree.ensure(0, 3) == leaves[3 * 256 : 4 * 256]
    assert sorted(asked) == sorted(set(asked))
    assert "tile/1/000" in asked and "tile/0/003" in asked


def test_full_tile_hash_matches_the_protocol_reference():
    import random

    from node.sync import _full_tile_hash
    from protocol.tiles import full_tile_hash

    rng = random.Random(42)
    for _ in range(20):
        hashes = [rng.randbytes(32) for _ in range(256)]
        assert _full_tile_hash(hashes) == full_tile_hash(b"".join(hashes))


async def test_a_peer_that_shares_the_held_entries_but_not_the_pending_tree_is_caught(
    make_node, aiohttp_server, session, tmp_path, monkeypatch
):
    """The peer's tree holds the entries held so far, and reaches the pending size with another
    root: syncing from it would have replaced the pending checkpoint and lost the fork."""
    import shutil

    from node.config import load_config
    from node.local import open_node

    athens = make_node("Athens")
    athens.author().append([Event(type="pledge", body=PLEDGE)] * 599)  # 600: both copies share these
    athens.store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    shutil.copytree(athens.config.data_dir, tmp_path / "twin")
    athens.author().append([Event(type="pledge", body=PLEDGE)] * 1)  # pending: size 601
    twin = open_node(load_config(tmp_path / "twin"))
    twin.author().append([Event(type="offer", body=OFFER)] * 100)  # 700, the other branch from 600
    server = await serve_node(aiohttp_server, athens)
    berlin = make_node("Berlin", country="DE")
    syncer = Syncer(berlin.store)
    member = member_of(athens)
    await stop_after(syncer, Fetcher(session, str(server.make_url(""))), member, 2, monkeypatch)
    assert berlin.store.log(member.log_id).size == 512

    evidence = await evidence_from_twin(aiohttp_server, session, syncer, twin, member, berlin, athens)
    assert evidence.older == athens.store.own_log().checkpoint


@pytest.mark.parametrize("forge", ["/bodies/000", "/tile/entries/000", "/tile/entries/001.p/45", "/tile/1/000.p/1", "/tile/0/001.p/45"])
async def test_a_relay_forging_one_item_gets_nothing_stored(make_node, aiohttp_server, session, forge):
    """One forged full body bundle, full entry bundle (checked through its level-1 slot only),
    level-1 edge tile or level-0 edge tile: refused, and not a byte of that sync stored."""
    athens = make_node("Athens")
    athens.author().append([Event(type="pledge", body=PLEDGE)] * 300)  # 301: bundles 000 and 001.p/45
    honest = await aiohttp_server(create_app(athens.config))

    def forged(path: str, status: int, data: bytes) -> bytes:
        if path.endswith(forge):
            at = len(data) // 2
            data = data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]
        return data

    hostile = await serve_relay(aiohttp_server, session, honest, forged)
    berlin = make_node("Berlin", country="DE")
    with pytest.raises(BadRelay):
        await Syncer(berlin.store).sync_log(Fetcher(session, str(hostile.make_url(""))), member_of(athens))
    assert berlin.store.log(member_of(athens).log_id).size == 0


async def test_bug_a_relay_could_erase_bodies_by_serving_them_empty(make_node, aiohttp_server, session):
    """An empty body item reads as "erased"; a relay serving one is refused, nothing stored,
    and the honest peer's bodies arrive whole."""
    from protocol.tiles import decode_bundle, encode_bundle

    athens = make_node("Athens")
    athens.author().append([Event(type="pledge", body=PLEDGE)] * 300)
    honest = await aiohttp_server(create_app(athens.config))

    def emptied(path: str, status: int, data: bytes) -> bytes:
        if "/bodies/" in path and status == 200:
            data = encode_bundle([b"" if i == 7 else item for i, item in enumerate(decode_bundle(data))])
        return data

    hostile = await serve_relay(aiohttp_server, session, honest, emptied)
    berlin = make_node("Berlin", country="DE")
    syncer = Syncer(berlin.store)
    with pytest.raises(BadRelay, match="cannot erase"):
        await syncer.sync_log(Fetcher(session, str(hostile.make_url(""))), member_of(athens))
    assert berlin.store.log(member_of(athens).log_id).size == 0
    outcome = await syncer.sync_log(Fetcher(session, str(honest.make_url(""))), member_of(athens))
    assert outcome.size == 301
    missing = berlin.store.conn.execute("SELECT count(*) FROM entries WHERE body IS NULL").fetchone()[0]
    assert missing == 0
