"""The public read-only query API (docs/api.md) over a small network held by one node.

The network is built once per module, deterministically (fixed clock, salts
from ``random.Random(42)``, key seeds from the city names): four cities author
events in their own logs, and their logs are copied into Athens's store with
city-signed checkpoints, as sync would leave them. Berlin's log is held only up
to its second-last checkpoint for one entry, and evidence of equivocation is
held against Mallory.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import io
import json
import random
import re
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from node.app import create_app
from node.authoring import Event
from node.context import FEDERATION
from node.local import init_node
from node.view import ViewUpdater
from protocol.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint
from protocol.keys import parse_verifier_key
from protocol.merkle import EMPTY_ROOT, CompactTree, check_inclusion, leaf_hash

from .conftest import seed_for

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HOUR = 3_600_000
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


class Net(SimpleNamespace):
    """What the fixture built: nodes by name, entry ids by label, log ids by city."""


def _build(base: Path) -> Net:
    rng = random.Random(42)
    clock = iter(range(T0, T0 + 10_000 * HOUR, HOUR))
    nodes = {}
    for i, (name, country) in enumerate([("Athens", "GR"), ("Berlin", "DE"), ("Lyon", "FR"), ("Mallory", "DE")]):
        nodes[name], _ = init_node(
            base / name.lower(), city=name, country=country, url=f"http://127.0.0.1:{8801 + i}/{name.lower()}",
            network="test-net", seed=seed_for("api-" + name),
        )
    lids = {name: node.store.own_log().log_id for name, node in nodes.items()}
    ids: dict[str, str] = {}

    def author(name: str, label: str | None, type_: str, body: dict, *, unchecked: bool = False) -> str:
        a = nodes[name].author(clock_ms=lambda: next(clock), salt=lambda n: rng.randbytes(n))
        if unchecked:  # authentic but invalid, as a buggy or older node might write it
            a.validate = lambda events: [(e, 1) for e in events]
        [made] = a.append([Event(type=type_, body=body)])
        if label:
            ids[label] = made.id.hex()
        return made.id.hex()

    pledge = {"kind": "relocation", "places": 50, "from": "2026-01-01", "until": "2026-06-30"}
    offer = {"category": "housing", "quantity": 10, "unit": "places", "from": "2026-01-01",
             "until": "2026-12-31", "description": "Ten flats."}
    author("Berlin", "offer", "offer", offer)
    author("Berlin", "pledge_open", "pledge", pledge)
    author("Berlin", None, "progress", {"ref": ids["pledge_open"], "delivered": 20})
    author("Berlin", "pledge_done", "pledge", {**pledge, "kind": "resettlement", "places": 30, "until": "2026-12-31"})
    author("Berlin", None, "progress", {"ref": ids["pledge_done"], "delivered": 30})
    author("Berlin", "pledge_gone", "pledge", {**pledge, "places": 5})
    author("Berlin", "retract", "retract", {"ref": ids["pledge_gone"], "reason": "Plans changed."})
    author("Berlin", "request", "request", {**offer, "category": "interpretation", "quantity": 40,
                                            "unit": "person-days", "description": "Interpreters."})
    author("Berlin", "statement", "statement", {"title": "Safe passage", "text": "We call for safe passage."})
    author("Berlin", "report_old", "report", {"period_start": "2026-01-01", "period_end": "2026-03-31",
                                              "arrivals": 10, "in_reception": 100, "free_places": 5})
    author("Berlin", "report_new", "report", {"period_start": "2026-04-01", "period_end": "2026-06-30",
                                              "arrivals": 12, "in_reception": 90, "free_places": 7})
    author("Berlin", "late", "pledge", {**pledge, "places": 7})  # held beyond Berlin's checkpoint
    for n in range(10):
        author("Athens", f"athens_pledge_{n}", "pledge", {**pledge, "places": 10 + n, "until": "2026-12-31"})
    author("Athens", "accept_offer", "accept", {"log": lids["Berlin"], "ref": ids["offer"], "quantity": 6})
    author("Athens", "accept_request", "accept", {"log": lids["Berlin"], "ref": ids["request"]})
    author("Athens", "accept_missing", "accept", {"log": lids["Lyon"], "ref": "ab" * 32, "quantity": 1})
    author("Athens", "endorse", "endorse", {"log": lids["Berlin"], "ref": ids["statement"]})
    author("Athens", "bad_progress", "progress", {"ref": "cd" * 32, "delivered": 3})
    author("Athens", "bad_body", "pledge", {**pledge, "places": 0}, unchecked=True)
    author("Lyon", "accept_lyon", "accept", {"log": lids["Berlin"], "ref": ids["offer"], "quantity": 7})
    author("Lyon", "endorse_lyon", "endorse", {"log": lids["Berlin"], "ref": ids["statement"]})
    author("Lyon", "endorse_wrong_log", "endorse", {"log": lids["Athens"], "ref": ids["statement"]})
    author("Lyon", "lyon_offer", "offer", {**offer, "quantity": 5, "until": "2026-02-01"})
    author("Mallory", "mallory_pledge", "pledge", {**pledge, "places": 1000})
    author("Mallory", "accept_mallory", "accept", {"log": lids["Berlin"], "ref": ids["offer"], "quantity": 100})
    author("Mallory", "endorse_mallory", "endorse", {"log": lids["Berlin"], "ref": ids["statement"]})

    # Copy the other cities' logs into Athens's store, each under a checkpoint its city signed.
    athens = nodes["Athens"]
    for name in ("Berlin", "Lyon", "Mallory"):
        node = nodes[name]
        state = node.store.own_log()
        rows = list(node.store.entries(state.lid))
        tree, hashes = CompactTree(), []
        for stored in rows:
            hashes.extend(tree.append(stored.leaf))
        held = tree.size - 1 if name == "Berlin" else tree.size
        held_root = CompactTree()
        for stored in rows[:held]:
            held_root.append(stored.leaf)
        note = sign_checkpoint(Checkpoint(origin=state.origin, size=held, root=held_root.root()), node.signer)
        with athens.store.write():
            lid = athens.store.add_log(log_id=state.log_id, origin=state.origin, verifier=state.verifier,
                                       own=False, root=EMPTY_ROOT)
            athens.store.insert_entries(lid, 0, [(r.leaf, r.entry, r.body) for r in rows], hashes)
            athens.store.set_head(lid, size=tree.size, root=tree.root(), checkpoint=note, updated_ms=T0)
            if name == "Mallory":
                athens.store.add_evidence(lid, b"evidence of equivocation (test)", T0)
    ViewUpdater(athens.registry).catch_up(athens.store)
    return Net(nodes=nodes, lids=lids, ids=ids, athens=athens)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    net = _build(tmp_path_factory.mktemp("api-net"))
    yield net
    for node in net.nodes.values():
        node.close()


@pytest.fixture
async def client(net, aiohttp_client):
    return await aiohttp_client(create_app(net.athens.config, gossip=False))


async def get(client, url, status=200, **kwargs):
    response = await client.get(url, **kwargs)
    text = await response.text()
    assert response.status == status, text
    return response, (json.loads(text) if "json" in response.headers.get("Content-Type", "") and text else text)


async def all_rows(client, url):
    _, body = await get(client, url)
    return body["rows"]


def by_id(rows):
    return {r["id"]: r for r in rows}


# -- cities ---------------------------------------------------------------------------


async def test_cities_lists_every_log_with_profile_state_and_counts(client, net):
    _, body = await get(client, "/v1/cities")
    cities = {r["name"]: r for r in body["rows"]}
    assert set(cities) == {"Athens", "Berlin", "Lyon", "Mallory"}
    assert [r["log_id"] for r in body["rows"]] == sorted(r["log_id"] for r in body["rows"])
    berlin = cities["Berlin"]
    assert berlin["country"] == "DE" and berlin["log_id"] == net.lids["Berlin"]
    assert berlin["membership"] == "unknown"  # no network file installed
    assert cities["Mallory"]["membership"] == "equivocating"  # evidence wins
    assert berlin["size"] == 13 and berlin["checkpoint_size"] == 12
    assert berlin["counts"]["by_type"]["pledge"] == 4 and berlin["counts"]["valid"] == 13
    assert cities["Athens"]["own"] and cities["Athens"]["counts"]["invalid"] == 2
    assert body["next"] is None and body["next_url"] is None


async def test_membership_comes_from_the_federation(net, aiohttp_client):
    app = create_app(net.athens.config, gossip=False)
    verifier = {n: node.store.own_log().verifier for n, node in net.nodes.items()}
    members = SimpleNamespace(members=frozenset({verifier["Athens"], verifier["Berlin"]}),
                              revoked=frozenset({verifier["Lyon"]}))
    app[FEDERATION] = SimpleNamespace(membership=lambda store: members, network_digest=lambda store: "d" * 64)
    client = await aiohttp_client(app)
    _, body = await get(client, "/v1/cities")
    assert {r["name"]: r["membership"] for r in body["rows"]} == {
        "Athens": "member", "Berlin": "member", "Lyon": "former-member", "Mallory": "equivocating"}
    _, body = await get(client, "/v1/cities?membership=former-member")
    assert [r["name"] for r in body["rows"]] == ["Lyon"]
    _, summary = await get(client, "/v1/summary")
    assert summary["network_digest"] == "d" * 64
    assert summary["cities"]["by_membership"] == {"equivocating": 1, "former-member": 1, "member": 2}


async def test_one_city_with_latest_report_and_evidence(client, net):
    _, berlin = await get(client, f"/v1/cities/{net.lids['Berlin']}")
    assert berlin["name"] == "Berlin" and berlin["evidence"] is None
    assert berlin["latest_report"]["id"] == net.ids["report_new"]
    _, mallory = await get(client, f"/v1/cities/{net.lids['Mallory']}")
    assert mallory["evidence"]["url"] == f"/v1/evidence/{net.lids['Mallory']}"
    _, problem = await get(client, "/v1/cities/" + "0" * 64, 404)
    assert problem["status"] == 404
    _, problem = await get(client, "/v1/cities/Berlin", 400)
    assert problem["invalid-params"][0]["name"] == "log_id"


# -- pledges, offers, requests ----------------------------------------------------------


async def test_status_is_computed_as_of_a_day(client, net):
    rows = by_id(await all_rows(client, f"/v1/pledges?city={net.lids['Berlin']}&as_of=2026-05-01"))
    assert rows[net.ids["pledge_open"]]["status"] == "open"
    assert rows[net.ids["pledge_open"]]["delivered"] == 20
    assert rows[net.ids["pledge_done"]]["status"] == "fulfilled"
    gone = rows[net.ids["pledge_gone"]]
    assert gone["status"] == "retracted"
    assert gone["retraction"] == {"id": net.ids["retract"], "reason": "Plans changed."}
    later = by_id(await all_rows(client, f"/v1/pledges?city={net.lids['Berlin']}&as_of=2026-07-01"))
    assert later[net.ids["pledge_open"]]["status"] == "expired"
    assert later[net.ids["pledge_done"]]["status"] == "fulfilled"  # fulfilment outranks expiry
    _, body = await get(client, "/v1/pledges?as_of=2026-07-01&status=expired")
    assert {r["id"] for r in body["rows"]} == {net.ids["pledge_open"], net.ids["late"], net.ids["mallory_pledge"]}
    assert body["as_of"] == "2026-07-01"


async def test_oversubscription_is_shown_and_accepts_by_equivocators_do_not_count(client, net):
    [offer] = [r for r in await all_rows(client, "/v1/offers") if r["id"] == net.ids["offer"]]
    # Athens 6 + Lyon 7 = 13 of 10; Mallory's 100 is left out (equivocating).
    assert (offer["accepted"], offer["accepts"], offer["quantity"]) == (13, 2, 10)
    assert offer["oversubscribed"] is True and offer["status"] == "open"
    _, body = await get(client, "/v1/offers?oversubscribed=true")
    assert [r["id"] for r in body["rows"]] == [net.ids["offer"]]
    [request] = await all_rows(client, "/v1/requests")
    assert request["accepted"] == 40 and not request["oversubscribed"]  # an accept without quantity takes all


async def test_item_filters(client, net):
    async def ids(query):
        return {r["id"] for r in await all_rows(client, "/v1/pledges?limit=500&" + query)}

    athens = {net.ids[f"athens_pledge_{n}"] for n in range(10)}
    assert await ids(f"city={net.lids['Athens']}") == athens
    assert await ids("country=GR") == athens
    assert await ids("kind=resettlement") == {net.ids["pledge_done"]}
    first = T0 + 12 * HOUR  # the first Athens pledge (Berlin wrote 12 entries, one an hour, first)
    assert await ids(f"since={first}&until={first + HOUR}") == {net.ids["athens_pledge_0"], net.ids["athens_pledge_1"]}
    assert await ids("since=2026-01-02") == {net.ids["mallory_pledge"]}  # the only one written on day two
    assert await ids("until=2026-01-01&country=DE") == {
        net.ids["pledge_open"], net.ids["pledge_done"], net.ids["pledge_gone"], net.ids["late"]}
    assert await ids("status=retracted") == {net.ids["pledge_gone"]}
    offers = {r["id"] for r in await all_rows(client, "/v1/offers?category=housing&country=FR")}
    assert offers == {net.ids["lyon_offer"]}


async def test_equivocating_city_is_marked_and_left_out_of_totals(client, net):
    _, body = await get(client, "/v1/pledges?as_of=2026-05-01&limit=500")
    mallory = by_id(body["rows"])[net.ids["mallory_pledge"]]
    assert mallory["equivocating"] is True
    totals = body["totals"]
    counted = [r for r in body["rows"] if not r["equivocating"] and r["status"] != "retracted"]
    assert totals["items"] == len(body["rows"]) == 15
    assert totals["counted"] == len(counted) == 13
    [places] = totals["by_unit"]
    assert places["quantity"] == sum(r["quantity"] for r in counted) == 50 + 30 + 7 + sum(range(10, 20))
    assert places["delivered"] == 50


# -- accepts, reports, statements, invalid ---------------------------------------------


async def test_accepts_link_logs_and_resolve_when_the_target_arrives(client, net):
    rows = by_id(await all_rows(client, "/v1/accepts"))
    offer = rows[net.ids["accept_offer"]]
    assert offer["resolved"] is True and offer["city"] == "Athens"
    assert offer["target"] == {"log_id": net.lids["Berlin"], "id": net.ids["offer"], "city": "Berlin",
                               "type": "offer", "status": "valid", "kind": "housing", "quantity": 10,
                               "unit": "places"}
    missing = rows[net.ids["accept_missing"]]
    assert missing["resolved"] is False and missing["target"]["city"] == "Lyon"
    assert missing["target"]["type"] is None
    assert rows[net.ids["accept_mallory"]]["equivocating"] is True
    _, body = await get(client, "/v1/accepts?resolved=false")
    assert [r["id"] for r in body["rows"]] == [net.ids["accept_missing"]]
    _, body = await get(client, f"/v1/accepts?target_city={net.lids['Lyon']}")
    assert [r["id"] for r in body["rows"]] == [net.ids["accept_missing"]]


async def test_reports_history_and_latest(client, net):
    history = await all_rows(client, "/v1/reports")
    assert [r["id"] for r in history] == [net.ids["report_old"], net.ids["report_new"]]
    [latest] = await all_rows(client, "/v1/reports?latest=true")
    assert latest["id"] == net.ids["report_new"] and latest["free_places"] == 7


async def test_statements_list_the_cities_that_endorsed_them(client, net):
    [statement] = await all_rows(client, "/v1/statements")
    assert statement["id"] == net.ids["statement"] and statement["city"] == "Berlin"
    endorsers = {e["city"]: e for e in statement["endorsements"]}
    # Lyon's second endorse names the right entry but the wrong log: it endorses nothing here.
    assert [e["id"] for e in statement["endorsements"]] == [
        net.ids["endorse"], net.ids["endorse_lyon"], net.ids["endorse_mallory"]]
    assert endorsers["Mallory"]["equivocating"] is True


async def test_invalid_entries_are_listed_with_their_reasons(client, net):
    rows = by_id(await all_rows(client, "/v1/invalid"))
    assert set(rows) == {net.ids["bad_progress"], net.ids["bad_body"]}
    assert "not an earlier entry" in rows[net.ids["bad_progress"]]["reason"]
    assert rows[net.ids["bad_body"]]["status"] == "invalid" and rows[net.ids["bad_body"]]["reason"]
    _, body = await get(client, "/v1/invalid?type=progress")
    assert [r["id"] for r in body["rows"]] == [net.ids["bad_progress"]]


async def test_summary_totals(client, net):
    _, s = await get(client, "/v1/summary?as_of=2026-05-01")
    assert s["network_digest"] is None  # no network file
    assert s["equivocating"] == [net.lids["Mallory"]]
    assert s["pledges"] == {"count": 13, "by_status": {"open": 12, "fulfilled": 1, "expired": 0},
                            "places": 50 + 30 + 7 + sum(range(10, 20)), "delivered": 50}
    assert s["offers"]["count"] == 2 and s["requests"]["count"] == 1
    assert s["accepts"] == {"count": 4, "resolved": 3}
    assert s["statements"] == 1 and s["invalid"] == 2
    countries = {c["country"]: c for c in s["by_country"]}
    assert countries["DE"]["cities"] == 1 and countries["DE"]["places_pledged"] == 87  # Mallory left out
    assert countries["GR"]["pledges"] == 10
    assert s["pledges_by_city"][0]["city"] == "Athens"
    [housing] = [v for v in s["offers_vs_requests"] if v["category"] == "housing"]
    assert housing == {"category": "housing", "unit": "places", "offered": 15, "requested": 0, "offers": 2,
                       "requests": 0, "accepted_offers": 13, "accepted_requests": 0}


# -- one event with its proof -----------------------------------------------------------


async def test_event_proof_verifies_with_the_checkpoint_alone(client, net):
    verifier = parse_verifier_key(net.nodes["Berlin"].store.own_log().verifier)  # the key we trust
    _, ev = await get(client, f"/v1/events/{net.ids['pledge_open']}")
    assert ev["body"] == {"kind": "relocation", "places": 50, "from": "2026-01-01", "until": "2026-06-30"}
    assert ev["status"] == "valid" and ev["type"] == "pledge" and ev["entry"]["fields"]["seq"] == ev["seq"]
    cp = open_checkpoint(ev["checkpoint"].encode(), verifier).checkpoint
    entry = base64.b64decode(ev["entry"]["base64"])
    assert leaf_hash(entry).hex() == ev["id"]
    assert ev["proof"]["tree_size"] == cp.size == 12
    proof = [bytes.fromhex(h) for h in ev["proof"]["inclusion_path"]]
    check_inclusion(leaf=leaf_hash(entry), index=ev["proof"]["leaf_index"], size=cp.size, root=cp.root, proof=proof)


async def test_every_held_event_proves(client, net):
    for label in ("offer", "retract", "report_new", "athens_pledge_9", "bad_body", "mallory_pledge"):
        _, ev = await get(client, f"/v1/events/{net.ids[label]}")
        key = parse_verifier_key(ev["verifier_key"])
        cp = open_checkpoint(ev["checkpoint"].encode(), key).checkpoint
        check_inclusion(leaf=bytes.fromhex(ev["id"]), index=ev["seq"], size=cp.size, root=cp.root,
                        proof=[bytes.fromhex(h) for h in ev["proof"]["inclusion_path"]])


async def test_event_beyond_the_held_checkpoint_or_unknown_is_404(client, net):
    _, problem = await get(client, f"/v1/events/{net.ids['late']}", 404)
    assert "beyond the signed checkpoint" in problem["detail"]
    _, problem = await get(client, "/v1/events/" + "e" * 64, 404)
    assert "no entry" in problem["detail"]
    await get(client, "/v1/events/xyz", 400)


# -- pagination, csv, caching, CORS, errors -----------------------------------------------

LISTS = ["/v1/cities", "/v1/pledges", "/v1/offers", "/v1/requests", "/v1/accepts", "/v1/reports",
         "/v1/statements", "/v1/invalid"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("limit", [1, 3])
async def test_paging_through_every_page_gives_every_row_once(client, path, limit):
    everything = await all_rows(client, path + "?limit=500")
    seen, url, pages = [], f"{path}?limit={limit}", 0
    while url:
        _, body = await get(client, url)
        assert len(body["rows"]) <= limit
        seen.extend(body["rows"])
        url = body["next_url"]
        pages += 1
        if url:
            assert f"next={body['next']}" in url and f"limit={limit}" in url
    assert seen == everything
    assert pages == max(1, -(-len(everything) // limit))  # no empty last page


async def test_paging_keeps_the_filters(client, net):
    _, body = await get(client, "/v1/pledges?country=GR&limit=4")
    assert "country=GR" in body["next_url"]
    _, page2 = await get(client, body["next_url"])
    assert {r["country"] for r in page2["rows"]} == {"GR"}


@pytest.mark.parametrize("path", LISTS)
async def test_csv_has_a_header_and_the_same_rows(client, path):
    response, text = await get(client, path + "?format=csv")
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(text)))
    rows = await all_rows(client, path + "?limit=500")
    assert len(table) == 1 + len(rows)
    header = table[0]
    assert header[0] in ("id", "log_id")
    first = dict(zip(header, table[1], strict=True))
    assert first[header[0]] == rows[0][header[0]]


async def test_csv_flattens_nested_members_and_links_the_next_page(client, net):
    response, text = await get(client, "/v1/accepts?format=csv&limit=2")
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert "target_log_id" in header and "target_unit" in header and len(rows) == 2
    assert re.match(r'^</v1/accepts\?format=csv&limit=2&next=[A-Za-z0-9_-]+>; rel="next"$', response.headers["Link"])


def test_csv_cells_never_start_a_formula():
    from node.api_routes import csv_text

    schema = {"properties": {"a": {}, "b": {}, "c": {}}}
    text = csv_text([{"a": "=HYPERLINK(\"http://x\")", "b": "@SUM(1)", "c": 5}], schema)
    assert list(csv.reader(io.StringIO(text)))[1] == ["'=HYPERLINK(\"http://x\")", "'@SUM(1)", "5"]


async def test_etag_and_if_none_match(client):
    response, body = await get(client, "/v1/summary?as_of=2026-05-01")
    etag = response.headers["ETag"]
    assert etag.startswith('"') and response.headers["Cache-Control"].startswith("public")
    again = await client.get("/v1/summary?as_of=2026-05-01", headers={"If-None-Match": etag})
    assert again.status == 304 and await again.read() == b""
    assert again.headers["ETag"] == etag
    other = await client.get("/v1/summary?as_of=2026-07-01", headers={"If-None-Match": etag})
    assert other.status == 200
    weak = await client.get("/v1/summary?as_of=2026-05-01", headers={"If-None-Match": f'"x", W/{etag}'})
    assert weak.status == 304


async def test_head_answers_headers_only(client):
    response = await client.head("/v1/pledges")
    assert response.status == 200 and response.headers["ETag"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"


async def test_cors_on_answers_errors_and_preflight(client):
    response, _ = await get(client, "/v1/cities")
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    response, _ = await get(client, "/v1/pledges?bogus=1", 400)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    response, _ = await get(client, "/v1/events/" + "e" * 64, 404)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    pre = await client.options("/v1/pledges", headers={"Origin": "https://example.org",
                                                       "Access-Control-Request-Method": "GET"})
    assert pre.status == 204
    assert pre.headers["Access-Control-Allow-Origin"] == "*"
    assert "GET" in pre.headers["Access-Control-Allow-Methods"]


@pytest.mark.parametrize(("query", "names"), [
    ("/v1/pledges?bogus=1&other=2", ["bogus", "other"]),
    ("/v1/pledges?limit=0", ["limit"]),
    ("/v1/pledges?limit=501", ["limit"]),
    ("/v1/pledges?limit=ten", ["limit"]),
    ("/v1/pledges?as_of=2026-02-30", ["as_of"]),
    ("/v1/pledges?since=yesterday", ["since"]),
    ("/v1/pledges?status=lost&kind=holiday", ["status", "kind"]),
    ("/v1/pledges?city=Berlin", ["city"]),
    ("/v1/pledges?country=de", ["country"]),
    ("/v1/pledges?next=notatoken", ["next"]),
    ("/v1/pledges?next=WyJhIiwxXQ", ["next"]),  # ["a",1]: a token, but not of this list's shape
    ("/v1/pledges?limit=1&limit=2", ["limit"]),
    ("/v1/pledges?format=xml", ["format"]),
    ("/v1/offers?kind=housing", ["kind"]),  # offers filter by category
    ("/v1/accepts?resolved=yes", ["resolved"]),
    ("/v1/cities?membership=friend", ["membership"]),
    ("/v1/summary?limit=3", ["limit"]),
    ("/v1/events/" + "a" * 64 + "?x=1", ["x"]),
])
async def test_bad_parameters_are_named_in_a_problem(client, query, names):
    response, problem = await get(client, query, 400)
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert problem["status"] == 400 and problem["title"] == "bad request"
    assert [p["name"] for p in problem["invalid-params"]] == names
    for name in names:
        assert name in problem["detail"]


# -- the documents ---------------------------------------------------------------------


async def test_openapi_document_lists_every_read_endpoint(client):
    _, doc = await get(client, "/v1/openapi.json")
    assert doc["openapi"].startswith("3.1")
    documented = set(doc["paths"])
    for route in client.app.router.routes():
        path = route.resource.canonical if route.resource else ""
        if route.method == "GET" and path.startswith("/v1/"):
            assert path in documented, path


def test_docs_describe_every_endpoint_and_parameter():
    from node.api_routes import LISTS, openapi_document

    text = DOCS.read_text()
    for path in openapi_document()["paths"]:
        assert path.replace("{tail}", "...") in text, f"{path} is not in docs/api.md"
    for endpoint in LISTS:
        for param in endpoint.params:
            assert f"`{param.name}`" in text or f"`{param.name}=" in text, f"{param.name} is not in docs/api.md"


# -- schemathesis against the live application ------------------------------------------


@pytest.fixture(scope="module")
def live_url(net):
    """The app on a real loopback port, in its own thread and event loop."""
    from aiohttp import web

    loop = asyncio.new_event_loop()
    started = threading.Event()
    box = {}

    async def start():
        runner = web.AppRunner(create_app(net.athens.config, gossip=False))
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"] = runner
        box["url"] = "http://127.0.0.1:%d" % runner.addresses[0][1]
        started.set()

    def run():
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, name="api-live", daemon=True)
    thread.start()
    assert started.wait(10)
    yield box["url"]
    asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


@pytest.fixture(scope="module")
def live_schema(live_url):
    import schemathesis

    return schemathesis.openapi.from_url(f"{live_url}/v1/openapi.json")


def _operations():
    """(mode, method, path): valid requests for every operation, invalid ones where parameters
    have constraints (a parameterless operation has no invalid request to generate)."""
    from node.api_routes import openapi_document

    out = []
    for path, ops in openapi_document()["paths"].items():
        for method, op in ops.items():
            out.append(("positive", method.upper(), path))
            if op.get("parameters"):
                out.append(("negative", method.upper(), path))
    return out


@pytest.mark.parametrize(("mode", "method", "path"), _operations(), ids=[" ".join(o) for o in _operations()])
def test_live_api_conforms_to_its_openapi_document(live_schema, method, path, mode):
    """Requests generated from the served document, against the live app on a loopback port:
    every answer must have a documented status and content type and match its schema."""
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    operation = live_schema[path][method]
    strategy = operation.as_strategy(generation_mode=GenerationMode(mode))

    @given(case=strategy)
    @settings(max_examples=20, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case):
        case.call_and_validate(checks=checks)

    run()
