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

    async def forged(request: web.Request) -> web.StreamResponse:
        async with session.get(str(honest.make_url(request.path))) as response:
            data = await response.read()
        if "/tile/entries/" in request.path:
            data = data[:-1] + bytes([data[-1] ^ 1])
        return web.Response(body=data, status=response.status)

    hostile_app = web.Application()
    hostile_app.router.add_get("/{tail:.*}", forged)
    hostile = await aiohttp_server(hostile_app)
    berlin = make_node("Berlin", country="DE")
    syncer = Syncer(berlin.store)
    with pytest.raises(BadRelay):
        await syncer.sync_log(Fetcher(session, str(hostile.make_url(""))), member_of(athens))
    assert berlin.store.log(member_of(athens).log_id).size == 0
    outcome = await syncer.sync_log(Fetcher(session, str(honest.make_url(""))), member_of(athens))
    assert outcome.size == 301
