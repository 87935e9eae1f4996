"""The read API's response cache: answers kept per database state, never served after a change.

Entries are appended through the node's own store (another connection, as the CLI
or sync write) and the view caught up, as ``serve`` does; the very next request
must see them, without waiting for any poll.
"""

from __future__ import annotations

import random

from node.api_routes import API_RESPONSES, API_TILES
from node.app import create_app
from node.authoring import Event
from node.view import ViewUpdater

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PLEDGE = {"kind": "relocation", "places": 10, "from": "2026-01-01", "until": "2026-12-31"}


def _author(node, *bodies: dict) -> list[str]:
    rng = random.Random(len(bodies) + node.store.own_log().size)
    clock = iter(range(T0 + node.store.own_log().size * 60_000, T0 + 10_000 * 60_000, 60_000))
    author = node.author(clock_ms=lambda: next(clock), salt=lambda n: rng.randbytes(n))
    made = author.append([Event(type="pledge", body=b) for b in bodies])
    ViewUpdater(node.registry).catch_up(node.store)
    return [m.id.hex() for m in made]


async def test_cached_answers_change_when_a_new_entry_arrives(make_node, aiohttp_client):
    node = make_node()
    [first] = _author(node, PLEDGE)
    app = create_app(node.config, gossip=False)
    client = await aiohttp_client(app)

    async def get(path: str) -> dict:
        response = await client.get(path)
        assert response.status == 200, await response.text()
        return await response.json()

    paths = (f"/v1/events/{first}", "/v1/pledges?limit=1", "/v1/summary")
    answers = [await get(p) for p in paths]
    kept = len(app[API_RESPONSES])
    assert kept == len(paths)
    assert [await get(p) for p in paths] == answers  # served from the cache: nothing new kept
    assert len(app[API_RESPONSES]) == kept

    _author(node, {**PLEDGE, "places": 5})  # appended and viewed by another connection
    event, pledges, summary = [await get(p) for p in paths]
    assert event["proof"]["tree_size"] == answers[0]["proof"]["tree_size"] + 1
    assert event["checkpoint"] != answers[0]["checkpoint"]
    assert pledges["totals"]["items"] == answers[1]["totals"]["items"] + 1
    assert summary["pledges"]["places"] == answers[2]["pledges"]["places"] + 5


async def test_if_none_match_is_answered_304_until_the_answer_changes(make_node, aiohttp_client):
    node = make_node()
    _author(node, PLEDGE)
    client = await aiohttp_client(create_app(node.config, gossip=False))
    first = await client.get("/v1/pledges")
    etag = first.headers["ETag"]
    again = await client.get("/v1/pledges", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    assert again.headers["ETag"] == etag
    _author(node, PLEDGE)
    changed = await client.get("/v1/pledges", headers={"If-None-Match": etag})
    assert changed.status == 200 and changed.headers["ETag"] != etag


async def test_errors_and_unknown_entries_are_not_kept(make_node, aiohttp_client):
    node = make_node()
    _author(node, PLEDGE)
    app = create_app(node.config, gossip=False)
    client = await aiohttp_client(app)
    assert (await client.get("/v1/pledges?limit=0")).status == 400
    assert (await client.get("/v1/events/" + "0" * 64)).status == 404
    assert len(app[API_RESPONSES]) == 0


async def test_proofs_of_a_log_that_grew_verify_against_the_new_checkpoint(make_node, aiohttp_client):
    """Tiles kept for one checkpoint's proofs must not leak into the next one's."""
    from base64 import b64decode

    from protocol.merkle import check_inclusion

    node = make_node()
    ids = _author(node, *[{**PLEDGE, "places": i + 1} for i in range(300)])
    app = create_app(node.config, gossip=False)
    client = await aiohttp_client(app)
    for _ in range(2):
        for entry_id in (ids[0], ids[150], ids[-1]):
            event = await (await client.get(f"/v1/events/{entry_id}")).json()
            proof = event["proof"]
            check_inclusion(leaf=bytes.fromhex(entry_id), index=proof["leaf_index"], size=proof["tree_size"],
                            root=b64decode(event["checkpoint"].split("\n")[2]),
                            proof=[bytes.fromhex(h) for h in proof["inclusion_path"]])
        assert len(app[API_TILES]) > 0
        ids += _author(node, PLEDGE)


async def test_answers_are_compact_utf8_json_as_json_dumps_writes_it(make_node, aiohttp_client):
    """The encoder (msgspec) must write what ``json.dumps(..., ensure_ascii=False,
    separators=(",", ":"))`` writes: same bytes, so the same ETags."""
    import json

    node = make_node()
    [first] = _author(node, {**PLEDGE, "description": "Ünïcödé, \u2028 \"quoted\" / \\ \t 😀"})
    client = await aiohttp_client(create_app(node.config, gossip=False))
    for path in (f"/v1/events/{first}", "/v1/pledges", "/v1/summary", "/v1/cities", "/v1/openapi.json"):
        body = await (await client.get(path)).read()
        assert body == json.dumps(json.loads(body), ensure_ascii=False, separators=(",", ":")).encode(), path
