"""node.queries.Memo: aggregates kept per view state are recomputed as soon as the view changes.

The read API keeps list totals, the summary and verified checkpoints in a Memo
keyed by ``view_state``; an answer served from it must never outlive a change
of the view, a log or the evidence held.
"""

from __future__ import annotations

import random
import threading
import time

from node.app import create_app
from node.authoring import Event
from node.queries import Memo, view_state
from node.store import Store
from node.view import ViewUpdater

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PLEDGE = {"kind": "relocation", "places": 10, "from": "2026-01-01", "until": "2026-12-31"}


def _author(node, *bodies: dict) -> None:
    rng = random.Random(len(bodies))
    clock = iter(range(T0, T0 + 1000 * 60_000, 60_000))
    author = node.author(clock_ms=lambda: next(clock), salt=lambda n: rng.randbytes(n))
    author.append([Event(type="pledge", body=b) for b in bodies])
    ViewUpdater(node.registry).catch_up(node.store)


def test_view_state_changes_with_the_view_the_logs_and_the_evidence(make_node):
    node = make_node()
    ViewUpdater(node.registry).catch_up(node.store)
    before = view_state(node.store)
    assert view_state(node.store) == before
    _author(node, PLEDGE)
    grown = view_state(node.store)
    assert grown != before
    with node.store.write():
        node.store.add_evidence(node.store.own_log().lid, b"evidence (test)", T0)
    assert view_state(node.store) != grown


def test_memo_computes_once_per_state(make_node):
    node = make_node()
    ViewUpdater(node.registry).catch_up(node.store)
    memo, calls = Memo(), []

    def compute():
        calls.append(1)
        return len(calls)

    assert memo.get(node.store, "k", compute) == 1
    assert memo.get(node.store, "k", compute) == 1
    assert memo.get(node.store, "other", compute) == 2
    _author(node, PLEDGE)
    assert memo.get(node.store, "k", compute) == 3


def test_memo_is_bounded(make_node):
    node = make_node()
    ViewUpdater(node.registry).catch_up(node.store)
    memo = Memo(size=2)
    for key in ("a", "b", "c"):
        memo.get(node.store, key, lambda: key)
    calls = []
    memo.get(node.store, "a", lambda: calls.append(1))  # evicted: the oldest goes first
    assert calls == [1]


def test_concurrent_askers_of_one_key_compute_it_once(make_node):
    node = make_node()
    ViewUpdater(node.registry).catch_up(node.store)
    path = node.config.database_path
    memo, calls, results = Memo(), [], []
    started = threading.Event()

    def compute():
        calls.append(1)
        started.set()
        time.sleep(0.2)
        return "answer"

    def ask():
        with Store(path, readonly=True) as store:
            results.append(memo.get(store, "k", compute))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert results == ["answer"] * 4
    assert calls == [1]


def test_memo_forgets_a_failed_computation(make_node):
    node = make_node()
    ViewUpdater(node.registry).catch_up(node.store)
    memo = Memo()

    def fail():
        raise RuntimeError("boom")

    for _ in range(2):
        try:
            memo.get(node.store, "k", fail)
        except RuntimeError:
            pass
    assert memo.get(node.store, "k", lambda: "ok") == "ok"


async def test_totals_and_summary_follow_new_entries(make_node, aiohttp_client):
    node = make_node()
    _author(node, PLEDGE)
    client = await aiohttp_client(create_app(node.config, gossip=False))

    async def figures():
        pledges = await (await client.get("/v1/pledges?limit=1")).json()
        summary = await (await client.get("/v1/summary")).json()
        return pledges["totals"]["items"], summary["pledges"]["count"], summary["pledges"]["places"]

    assert await figures() == (1, 1, 10)
    assert await figures() == (1, 1, 10)  # served from the memo
    _author(node, {**PLEDGE, "places": 5})  # another process (the CLI) appends; the view catches up
    assert await figures() == (2, 2, 15)


def test_memo_is_bounded_by_bytes_and_keeps_nothing_too_heavy():
    memo = Memo(size=100, max_bytes=800)
    for key in range(10):
        memo.put(key, f"answer {key}", 100)
    assert memo.bytes <= 800 and len(memo) == 8
    assert memo.peek(0) is None and memo.peek(1) is None  # the least recently used went first
    assert memo.peek(9) == "answer 9"
    memo.put("heavy", "too big", 101)  # over an eighth of the bound: answered, not kept
    assert memo.peek("heavy") is None
    memo.put(9, "answer 9 again", 50)  # replacing a value frees its weight
    assert memo.bytes == 750
