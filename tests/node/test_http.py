"""The log served over HTTP: /v1/logs and C2SP tlog-tiles under each log's prefix."""

from __future__ import annotations

import asyncio

import pytest

from node.app import create_app
from node.authoring import Event
from protocol.checkpoint import open_checkpoint
from protocol.entry import check_body, decode_entry
from protocol.tiles import decode_bundle

from .conftest import PLEDGE


@pytest.fixture
async def served(make_node, aiohttp_client):
    node = make_node("Athens")
    node.author().append([Event(type="pledge", body=PLEDGE)] * 600)  # 601 entries
    client = await aiohttp_client(create_app(node.config))
    state = node.store.own_log()
    return node, client, f"/v1/logs/{state.log_id}/"


async def test_healthz(served):
    _, client, _ = served
    response = await client.get("/healthz")
    assert response.status == 200 and (await response.json())["status"] == "ok"


async def test_logs_lists_the_own_log(served):
    node, client, prefix = served
    body = await (await client.get("/v1/logs")).json()
    [entry] = body["logs"]
    state = node.store.own_log()
    assert entry["prefix"] == prefix
    assert entry["size"] == 601 and entry["root"] == state.root.hex()
    assert entry["origin"] == node.config["node.origin"]
    assert entry["verifier_key"] == str(node.signer.verifier)


async def test_checkpoint_is_signed_plain_text_and_short_lived(served):
    node, client, prefix = served
    response = await client.get(prefix + "checkpoint")
    assert response.status == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "immutable" not in response.headers["Cache-Control"]
    cp = open_checkpoint(await response.read(), node.signer.verifier).checkpoint
    assert cp.size == 601


async def test_full_tile_is_immutable_and_holds_the_leaf_hashes(served):
    node, client, prefix = served
    response = await client.get(prefix + "tile/0/000")
    assert response.status == 200
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    data = await response.read()
    state = node.store.own_log()
    leaves = [e.leaf for e in node.store.entries(state.lid, 0, 256)]
    assert data == b"".join(leaves)


async def test_partial_tiles_at_every_level(served):
    _, client, prefix = served
    response = await client.get(prefix + "tile/0/002.p/89")  # 601 = 2*256 + 89
    assert response.status == 200 and len(await response.read()) == 89 * 32
    assert "immutable" not in response.headers["Cache-Control"]
    response = await client.get(prefix + "tile/1/000.p/2")
    assert response.status == 200 and len(await response.read()) == 64


@pytest.mark.parametrize(
    "path", ["tile/0/003", "tile/0/002", "tile/0/002.p/90", "tile/1/000", "tile/2/000.p/1", "tile/entries/003"]
)
async def test_tiles_beyond_the_size_are_404(served, path):
    _, client, prefix = served
    response = await client.get(prefix + path)
    assert response.status == 404
    assert response.headers["Content-Type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    "path",
    ["tile/0/01", "tile/00/000", "tile/0/x000", "tile/0/000.p/0", "tile/0/000.p/256", "tile/64/000",
     "tile/0/000.p/", "tile/entries/1", "tile/x/000", "tile/0/-01", "tile/0/000/", "bodies/0"],
)
async def test_malformed_paths_are_400_never_500(served, path):
    _, client, prefix = served
    response = await client.get(prefix + path)
    assert response.status == 400, path
    problem = await response.json()
    assert problem["status"] == 400 and problem["detail"]


async def test_entry_bundle_matches_stored_entries_and_is_gzipped(served):
    node, client, prefix = served
    response = await client.get(prefix + "tile/entries/001", headers={"Accept-Encoding": "gzip"})
    assert response.status == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    entries = decode_bundle(await response.read())
    assert [decode_entry(e).seq for e in entries] == list(range(256, 512))


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        ("gzip, deflate", "gzip"),
        ("deflate", "deflate"),
        ("br;q=1.0, deflate;q=0.5", "deflate"),
        ("gzip;q=0, deflate", "deflate"),
        ("GZIP", "gzip"),
        ("*", "gzip"),
        ("identity", None),
        ("", None),
        ("gzip;q=0", None),
        ("gzip;q=nonsense", None),
    ],
)
def test_accepted_coding(header, coding):
    from node.tlog_routes import accepted_coding

    assert accepted_coding(header) == coding


@pytest.mark.parametrize("coding", ["gzip", "deflate", "identity"])
async def test_bundles_in_every_coding_are_the_same_bytes_also_when_cached(served, coding):
    node, client, prefix = served
    state = node.store.own_log()
    for path, column in (("tile/entries/000", "entry"), ("bodies/000", "body")):
        want = [r[0] for r in node.store.conn.execute(
            f"SELECT {column} FROM entries WHERE lid = ? AND seq < 256 ORDER BY seq", (state.lid,))]
        for _ in range(2):  # the second answer of a full entry bundle comes from the cache
            response = await client.get(prefix + path, headers={"Accept-Encoding": coding})
            assert response.status == 200
            assert response.headers.get("Content-Encoding", "identity") == coding
            assert response.headers["Vary"] == "Accept-Encoding"
            assert decode_bundle(await response.read()) == want


def test_bundle_cache_is_bounded_in_bytes():
    from node.tlog_routes import BundleCache

    cache = BundleCache(limit=100)
    for i in range(10):
        cache.put(i, bytes(30))
    assert cache.get(0) is None and cache.get(9) == bytes(30)
    assert sum(cache.get(i) is not None for i in range(10)) == 3
    cache.put("huge", bytes(101))
    assert cache.get("huge") is None


async def test_body_bundle_is_aligned_and_checks_against_entries(served):
    _, client, prefix = served
    entries = decode_bundle(await (await client.get(prefix + "tile/entries/002.p/89")).read())
    response = await client.get(prefix + "bodies/002.p/89")
    assert response.status == 200
    assert "immutable" not in response.headers["Cache-Control"]
    bodies = decode_bundle(await response.read())
    assert len(bodies) == len(entries) == 89
    for entry, body in zip(entries, bodies, strict=True):
        assert check_body(decode_entry(entry), body) == PLEDGE


async def test_erased_body_is_served_as_empty(served):
    node, client, prefix = served
    node.store.conn.execute("UPDATE entries SET body = NULL WHERE seq = 5")
    bodies = decode_bundle(await (await client.get(prefix + "bodies/000")).read())
    assert bodies[5] == b"" and bodies[4] != b""


async def test_unknown_and_malformed_log_ids(served):
    _, client, _ = served
    assert (await client.get("/v1/logs/" + "0" * 64 + "/checkpoint")).status == 404
    assert (await client.get("/v1/logs/ATHENS/checkpoint")).status == 400
    response = await client.get("/no/such/route")
    assert response.status == 404 and (await response.json())["status"] == 404


async def test_serve_notices_entries_appended_by_another_writer(served):
    from node.context import WATCHER

    node, client, _ = served
    watcher = client.app[WATCHER]
    seen = []
    watcher.subscribe(lambda log_id, size: seen.append(size))
    node.author().append([Event(type="pledge", body=PLEDGE)])
    for _ in range(50):  # bounded: 50 x 0.1 s
        if seen:
            break
        await asyncio.sleep(0.1)
    assert seen == [602]
