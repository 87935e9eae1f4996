"""Gossip benchmark: how fast a new entry reaches every node of a network of real processes.

Run from the repository root with the dev venv::

    python bench/gossip.py                         # 30 nodes, 5 runs (about 2 minutes on 2 cores)
    python bench/gossip.py --quick                 # 8 nodes, 2 runs (what the smoke test runs)
    python bench/gossip.py --nodes 16 --runs 9 --interval-ms 500

Prints ONE JSON object; every figure in it was measured in the same run and
comes with its baseline (the gossip interval, the bound). A cut of a full run
(2026-11-26, 2 cores; docs/scaling.md reads it)::

    {"nodes": 30, "interval_ms": 500, "initial_convergence_s": 51.97, "bound_intervals": 10,
     "runs": [{"converged_intervals": 4.23, "held_by_all_intervals": 2.47, "median_node_intervals": 0.89,
               "gossip_rounds_per_node": 1.6, "announces_sent_all_nodes": 1583, ...}, ...],
     "median_intervals": 4.03, "worst_intervals": 4.61, "target_met": true,
     "idle_node_cpu_ms_per_round": 18.87, "idle_node_cpu_share": 0.522,
     "exchange_bytes": {"request": 1270, "answer_same": 1258, "mean_head_bytes": 255, ...},
     "per_node_per_round": {"requests_sent": 2.01, "bytes_sent": 5076, ...},
     "checkpoint_verify_us": 74.1, "federation_ms": {"digest_parts": 2.988, "members": 0.357}}

What is measured, and why that way:

1. N nodes, each a real ``python -m node.cli serve --data DIR --listen
   127.0.0.1:PORT`` process in its own process group, data folders made with
   ``init_node`` (deterministic keys), one network file naming all N as
   founders and signed by all N, installed as ``DIR/network.toml``; gossip
   every ``SOLIDARITY_GOSSIP_INTERVAL_MS``.
2. Before the runs the network must converge once (every node holds every
   city's profile entry): the initial sync, reported apart. Then the nodes
   settle for a while (60 intervals; the CPU of all nodes is reported per
   window): start-up leaves N x N x (N-1) announcements to work off, and an
   entry authored in that tail took 10x longer to spread in our runs.
3. Each run authors one entry at a random node (a different one each run)
   from this process, as the CLI does (``open_node(load_config(dir)).author()
   .append(...)``). Every 50 ms the nodes' databases are read (read-only, as
   any reader may) to see when each holds the new checkpoint; then every
   node's ``GET /v1/status`` is polled until all report one network digest:
   that time, from the commit, in gossip intervals, is the run's figure.
   (Status is not polled from the start: each status makes a node recompute
   its digest, verifying every held checkpoint, and 30 of them every 100 ms
   would take the CPU the nodes gossip with.) The target: the median run
   within 2 x ceil(log2 N) intervals, the worst run within 3 times that.
4. Gossip cost: ``gossip_rounds`` and the Federation's counters
   (``gossip_stats``: gossip requests and their bytes sent, requests
   received, announcements sent) from each node's status, before and after;
   the sizes of one exchange measured against a live node (a request of the
   exact shape the node sends; the answer when digests agree, and when every
   bucket differs), since answers are not counted. Each node's CPU per round
   from /proc schedstat, during the runs and in a quiet period after them.

Everything listens on 127.0.0.1 only; every wait is bounded; every process is
stopped (SIGINT to its process group, then SIGKILL) and every folder removed,
also on failure. With 30 nodes on 2 cores the nodes share CPU: times are an
upper bound of what separate machines would see, but in intervals they are
comparable across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import selectors
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is bench/gossip.py: with bench/ first on sys.path, "import node"
# would import bench/node.py instead of the node package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import aiohttp  # noqa: E402

from bench.node import cpu_s, realistic_event  # noqa: E402
from node.config import load_config  # noqa: E402
from node.federation import ANNOUNCE_FANOUT  # noqa: E402
from node.local import init_node, open_node  # noqa: E402
from node.store import Store  # noqa: E402
from protocol.checkpoint import open_checkpoint  # noqa: E402
from protocol.keys import parse_verifier_key  # noqa: E402
from protocol.network import AdmissionRule, Founder, NetworkFile, format_network_file, sign_network_file  # noqa: E402

NETWORK = "bench-gossip"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
INITIAL_TIMEOUT_S = 300.0
#: How often every node's status is asked once the stores say all hold the entry, in intervals.
POLL_FRACTION = 0.2
#: Where /v1/status keeps the Federation's counters.
STATS = "gossip_stats"
#: Settle windows, in gossip intervals.
SETTLE_WINDOW = 4
#: How often the nodes' databases are read (read-only) to see who holds the entry.
HOLD_TICK_S = 0.05
WORST_FACTOR = 3


def seed_for(name: str) -> bytes:
    """Deterministic keys: the benchmark never depends on os.urandom for identities."""
    import hashlib

    return hashlib.sha256(b"solidarity-bench-gossip-seed:" + name.encode()).digest()


def free_port() -> int:
    """A loopback port nobody listens on now (the node binds it itself a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class BenchNode:
    name: str
    data: Path
    port: int
    proc: subprocess.Popen | None = None
    stderr_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def make_network(root: Path, n: int) -> list[BenchNode]:
    """N data folders and one network file naming all N as founders, signed by all N."""
    nodes, signers = [], []
    for i in range(n):
        name = f"Bench City {i:02d}"
        node = BenchNode(name=name, data=root / f"node-{i:02d}", port=free_port())
        local, _ = init_node(node.data, city=name, country="GR", url=node.url, network=NETWORK,
                             seed=seed_for(name))
        signers.append(local.signer)
        local.close()
        nodes.append(node)
    network = NetworkFile(
        name=NETWORK,
        rule=AdmissionRule(min_vouches=1, share_percent=50),
        founders=tuple(Founder(name=node.name, key=signer.verifier, url=node.url)
                       for node, signer in zip(nodes, signers, strict=True)),
        signatures=(),
    )
    for signer in signers:
        network = sign_network_file(network, signer)
    text = format_network_file(network)
    for node in nodes:
        (node.data / "network.toml").write_text(text)
    return nodes


def start_all(nodes: Sequence[BenchNode], work: Path, interval_ms: int) -> None:
    """Start every node (each in its own process group), then wait for each to serve."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SOLIDARITY_LOGGING_LEVEL": "warning",
           "SOLIDARITY_GOSSIP_INTERVAL_MS": str(interval_ms), "SOLIDARITY_GOSSIP_TIMEOUT_MS": "5000"}
    for node in nodes:
        node.stderr_path = work / f"{node.data.name}.err"
        with node.stderr_path.open("wb") as stderr:
            node.proc = subprocess.Popen(
                [sys.executable, "-m", "node.cli", "serve", "--data", str(node.data),
                 "--listen", f"127.0.0.1:{node.port}"],
                stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT, env=env, start_new_session=True,
            )
    deadline = time.monotonic() + START_TIMEOUT_S
    with selectors.DefaultSelector() as sel:
        for node in nodes:
            sel.register(node.proc.stdout, selectors.EVENT_READ, node)
        waiting = len(nodes)
        while waiting:
            left = deadline - time.monotonic()
            events = sel.select(max(0.0, left)) if left > 0 else []
            if not events:
                raise RuntimeError(f"{waiting} nodes did not start in {START_TIMEOUT_S:g} s")
            for key, _ in events:
                node = key.data
                line = node.proc.stdout.readline().decode(errors="replace").strip()
                sel.unregister(node.proc.stdout)
                waiting -= 1
                if line != f"serving on {node.url}":
                    raise RuntimeError(f"{node.name} did not start: {line!r}; stderr: "
                                       f"{node.stderr_path.read_text(errors='replace')[-2000:]}")


def stop_all(nodes: Sequence[BenchNode]) -> None:
    """SIGINT to each node's process group, then SIGKILL to any still there."""
    running = [n for n in nodes if n.proc is not None and n.proc.poll() is None]
    for node in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.proc.pid, signal.SIGINT)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for node in running:
        try:
            node.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.proc.pid, signal.SIGKILL)
            node.proc.wait(timeout=STOP_TIMEOUT_S)
    for node in nodes:
        if node.proc is not None and node.proc.stdout is not None:
            node.proc.stdout.close()


# -- status polling ---------------------------------------------------------------------


async def status(session: aiohttp.ClientSession, node: BenchNode) -> dict:
    async with session.get(node.url + "/v1/status") as response:
        if response.status != 200:
            raise RuntimeError(f"{node.name}: status answered {response.status}")
        return await response.json()


async def statuses(session: aiohttp.ClientSession, nodes: Sequence[BenchNode]) -> list[dict]:
    return list(await asyncio.gather(*(status(session, n) for n in nodes)))


class StoreWatch:
    """Read-only connections to every node's database: which logs each holds completely.

    Cheap enough to ask every 50 ms without taking CPU from the nodes (a status
    request makes a node recompute its digest, verifying every held checkpoint)."""

    def __init__(self, nodes: Sequence[BenchNode]) -> None:
        self.stores = [Store(node.data / "solidarity.db", readonly=True) for node in nodes]

    def heads(self, i: int) -> dict[str, int]:
        """log id -> size, for the logs node i holds up to a checkpoint (no sync under way)."""
        rows = self.stores[i].conn.execute(
            "SELECT log_id, size FROM logs WHERE checkpoint IS NOT NULL AND pending IS NULL")
        return dict(rows.fetchall())

    def holds(self, i: int, want: dict[str, int]) -> bool:
        heads = self.heads(i)
        return all(heads.get(log_id, -1) >= size for log_id, size in want.items())

    def close(self) -> None:
        for store in self.stores:
            store.close()


async def wait_until_held(watch: StoreWatch, n: int, want: dict[str, int], tick_s: float, timeout_s: float,
                          start: float) -> list[float]:
    """Seconds from ``start`` until each node held every log in ``want`` at least at that size."""
    deadline = start + timeout_s
    reached: dict[int, float] = {}
    while True:
        for i in range(n):
            if i not in reached and watch.holds(i, want):
                reached[i] = time.monotonic() - start
        if len(reached) == n:
            return [reached[i] for i in range(n)]
        if time.monotonic() > deadline:
            raise RuntimeError(f"entry not everywhere in {timeout_s:g} s: {n - len(reached)} nodes lack it")
        await asyncio.sleep(tick_s)


async def wait_for_one_digest(session: aiohttp.ClientSession, nodes: Sequence[BenchNode], tick_s: float,
                              timeout_s: float, start: float) -> tuple[float, str]:
    """Poll every node's status until all report one network digest: (seconds from start, digest)."""
    deadline = time.monotonic() + timeout_s
    while True:
        digests = {s["network_digest"] for s in await statuses(session, nodes)}
        if len(digests) == 1:
            return time.monotonic() - start, digests.pop()
        if time.monotonic() > deadline:
            raise RuntimeError(f"no single network digest in {timeout_s:g} s: {len(digests)} digests")
        await asyncio.sleep(tick_s)


# -- exchange sizes ---------------------------------------------------------------------


def encode_json(payload: dict) -> bytes:
    """As node.federation.encode_json: compact JSON."""
    return json.dumps(payload, separators=(",", ":")).encode()


async def exchange_sizes(session: aiohttp.ClientSession, node: BenchNode, network_hash: str) -> dict:
    """Bytes of one gossip exchange with a live node, in the shape Federation.exchange sends.

    No ``from``: the node must not schedule an exchange back to this process."""
    st = await status(session, node)
    request = {"network": network_hash, "digest": st["network_digest"], "buckets": ["0" * 64] * 16}
    sent_shape = encode_json({**request, "from": node.url})  # what a peer sends: with its URL

    async def post(payload: dict) -> bytes:
        async with session.post(node.url + "/v1/gossip", data=encode_json(payload),
                                headers={"Content-Type": "application/json"}) as response:
            body = await response.read()
            if response.status != 200:
                raise RuntimeError(f"{node.name}: gossip answered {response.status}: {body[:200]!r}")
            return body

    own = next(s for s in st["logs"] if s["own"])
    with Store(node.data / "solidarity.db", readonly=True) as store:
        note = store.log(own["log_id"]).checkpoint.decode()
    announce = encode_json({"checkpoint": note, "from": node.url})
    same = await post(request)
    every = await post({**request, "digest": "f" * 64, "buckets": ["f" * 64] * 16})
    heads = json.loads(every)["heads"]
    head_bytes = [len(json.dumps(note)) + len(log_id) + 4 for log_id, note in heads.items()]
    return {
        "request": len(sent_shape),
        "announce_request": len(announce),
        "answer_same": len(same),
        "answer_all_buckets_differ": len(every),
        "heads_in_full_answer": len(heads),
        "mean_head_bytes": round(statistics.mean(head_bytes), 1) if head_bytes else 0,
    }


def checkpoint_verify_us(nodes: Sequence[BenchNode]) -> float:
    """Microseconds to verify one city-signed checkpoint: the digest re-verifies every head."""
    with Store(nodes[0].data / "solidarity.db", readonly=True) as store:
        logs = [(s.checkpoint, parse_verifier_key(s.verifier)) for s in store.logs() if s.checkpoint]
    start = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        for note, key in logs:
            open_checkpoint(note, key)
    return (time.perf_counter() - start) / (rounds * len(logs)) * 1e6


def federation_costs(node: BenchNode) -> dict:
    """Milliseconds of what each exchange, answer, status and announcement recomputes, on one
    node's store (all N logs held), in this process: the digest (membership, then every held
    checkpoint verified) and the member list alone."""
    from node.federation import Federation
    from node.local import load_network

    config = load_config(node.data)
    store = Store(config.database_path, readonly=True)
    try:
        federation = Federation(store, load_network(config), own_url=node.url, session=None)
        federation.digest_parts(store)  # warm: the membership scan reads every entry once
        out = {}
        for name, fn in (("digest_parts", federation.digest_parts), ("members", federation.members)):
            rounds = 20
            start = time.perf_counter()
            for _ in range(rounds):
                fn(store)
            out[name] = round((time.perf_counter() - start) / rounds * 1000, 3)
        federation.executor.shutdown(wait=True)
    finally:
        store.close()
    return out


# -- main -----------------------------------------------------------------------------------


def author_one(node: BenchNode, rng: random.Random) -> None:
    """Append one entry as the CLI would: its own connection, SQLite's write lock."""
    local = open_node(load_config(node.data))
    try:
        local.author().append([realistic_event(rng)])
    finally:
        local.close()


async def run_bench(nodes: list[BenchNode], args, rng: random.Random) -> dict:
    n = len(nodes)
    interval = args.interval_ms / 1000
    tick = interval * POLL_FRACTION
    bound = 2 * math.ceil(math.log2(n))
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=64)
    watch = StoreWatch(nodes)
    try:
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            started = time.monotonic()
            # Initially every node holds only its own log (its profile entry).
            want = {}
            for i in range(n):
                want.update(watch.heads(i))
            held = await wait_until_held(watch, n, want, HOLD_TICK_S, INITIAL_TIMEOUT_S, started)
            initial_s, digest = await wait_for_one_digest(session, nodes, tick, INITIAL_TIMEOUT_S, started)
            result: dict = {"initial_held_s": round(max(held), 2), "initial_convergence_s": round(initial_s, 2),
                            "initial_convergence_note": f"from the last node serving until every node holds every "
                                                        f"city's profile entry (each syncs {n - 1} logs), then until "
                                                        "every status shows one digest"}
            if any(len(s["logs"]) != n for s in await statuses(session, nodes)):
                raise RuntimeError("converged, but not every node holds every log")
            # Settle: once every node holds every log, announcements and pulls of the start-up
            # are still being worked off; the CPU of all nodes per window shows when that ends.
            windows = []
            for _ in range(math.ceil(args.settle_intervals / SETTLE_WINDOW)):
                cpu_before = sum(cpu_s(node.proc.pid) for node in nodes)
                await asyncio.sleep(SETTLE_WINDOW * interval)
                share = (sum(cpu_s(node.proc.pid) for node in nodes) - cpu_before) / (SETTLE_WINDOW * interval)
                windows.append(round(share / (os.cpu_count() or 1), 2))
            result["settle_cpu_share_per_window"] = windows
            result["settle_note"] = (f"all nodes' CPU / machine per {SETTLE_WINDOW} intervals after the initial "
                                     "convergence, before the runs (--settle-intervals)")
            first = await statuses(session, nodes)
            network_hash = first[0]["network"]["file_hash"]
            cpu0 = [cpu_s(node.proc.pid) for node in nodes]
            t0 = time.monotonic()
            runs = []
            # Distinct authoring nodes while there are enough of them.
            authors = rng.sample(range(n), args.runs) if args.runs <= n else [rng.randrange(n) for _ in range(args.runs)]
            for at in authors:
                before = await statuses(session, nodes)
                backed_off = statistics.mean(sum(p["backed_off"] for p in b["peers"]) for b in before)
                author_one(nodes[at], rng)
                committed = time.monotonic()  # the clock starts at the commit
                want = {log_id: size for log_id, size in watch.heads(at).items()}
                held = await wait_until_held(watch, n, want, HOLD_TICK_S,
                                             interval * bound * WORST_FACTOR + 30, committed)
                equal_s, new_digest = await wait_for_one_digest(session, nodes, tick, 30, committed)
                if new_digest == digest:
                    raise RuntimeError("the network digest did not change with the new entry")
                digest = new_digest
                after = await statuses(session, nodes)
                rounds = [a["gossip_rounds"] - b["gossip_rounds"] for a, b in zip(after, before, strict=True)]
                others = sorted(t for i, t in enumerate(held) if i != at)
                runs.append({
                    "author": at,
                    "converged_s": round(equal_s, 3),
                    "converged_intervals": round(equal_s / interval, 2),
                    "held_by_all_intervals": round(max(held) / interval, 2),
                    "median_node_intervals": round(statistics.median(others) / interval, 2),
                    "gossip_rounds_per_node": round(statistics.mean(rounds), 2),
                    "backed_off_peers_per_node": round(backed_off, 2),
                })
                if STATS in after[0]:
                    # Announcements the whole network sent for this one new checkpoint.
                    runs[-1]["announces_sent_all_nodes"] = sum(
                        a[STATS]["announces_sent"] - b[STATS]["announces_sent"] for a, b in zip(after, before))
                await asyncio.sleep(interval)  # let the last announcements and pulls settle
            elapsed = time.monotonic() - t0
            last = await statuses(session, nodes)
            cpu = [cpu_s(node.proc.pid) - c for node, c in zip(nodes, cpu0, strict=True)]
            total_rounds = [b["gossip_rounds"] - a["gossip_rounds"] for a, b in zip(first, last, strict=True)]
            # Idle: nothing authored, nobody polling; what gossip alone costs each node per round.
            idle_cpu0 = [cpu_s(node.proc.pid) for node in nodes]
            idle_start = time.monotonic()
            await asyncio.sleep(args.idle_intervals * interval)
            idle_s = time.monotonic() - idle_start
            idle_cpu = [cpu_s(node.proc.pid) - c for node, c in zip(nodes, idle_cpu0, strict=True)]
            idle_last = await statuses(session, nodes)
            idle_rounds = [b["gossip_rounds"] - a["gossip_rounds"] for a, b in zip(last, idle_last, strict=True)]
            sizes = await exchange_sizes(session, nodes[0], network_hash)
            result["total_s"] = round(time.monotonic() - started, 1)
    finally:
        watch.close()

    times = [r["converged_intervals"] for r in runs]
    median, worst = statistics.median(times), max(times)
    mean_rounds = statistics.mean(total_rounds)
    idle_stats = _stats_delta(last, idle_last, idle_rounds) if STATS in last[0] else None
    per_round = _per_round(sizes, args.fanout, n, idle_stats)
    result.update({
        "runs": runs,
        "median_intervals": median,
        "worst_intervals": worst,
        "bound_intervals": bound,
        "bound_note": f"2 x ceil(log2 {n}) gossip intervals of {args.interval_ms} ms",
        "worst_bound_intervals": WORST_FACTOR * bound,
        "worst_over_median": round(worst / median, 2) if median else None,
        "target_met": median <= bound and worst <= WORST_FACTOR * bound,
        "measured_s": round(elapsed, 1),
        "gossip_rounds_per_node": round(mean_rounds, 1),
        "gossip_rounds_per_node_per_s": round(mean_rounds / elapsed, 3),
        "node_cpu_ms_per_round": round(statistics.mean(c / max(r, 1) for c, r in zip(cpu, total_rounds)) * 1000, 2),
        "node_cpu_share": round(sum(cpu) / elapsed / (os.cpu_count() or 1), 3),
        "node_cpu_note": "CPU of each node over the measured runs (gossip, answering, announcements, pulls, "
                         "status polls) divided by its gossip rounds; share = all nodes' CPU / machine",
        "idle_s": round(idle_s, 1),
        "idle_gossip_rounds_per_node": round(statistics.mean(idle_rounds), 1),
        "idle_node_cpu_ms_per_round": round(
            statistics.mean(c / max(r, 1) for c, r in zip(idle_cpu, idle_rounds)) * 1000, 2),
        "idle_node_cpu_share": round(sum(idle_cpu) / idle_s / (os.cpu_count() or 1), 3),
        "idle_note": "a quiet period after the runs: gossip alone (digests agree), no status polls",
        "node_rss_mb": round(statistics.mean(rss_mb(node.proc.pid) for node in nodes), 1),
        "exchange_bytes": sizes,
        "per_node_per_round": per_round,
    })
    if STATS in last[0]:
        result["stats_per_node_per_round_runs"] = _stats_delta(first, last, total_rounds)
        result["stats_per_node_per_round_idle"] = idle_stats
        result["stats_note"] = (f"/v1/status {STATS} (the Federation's counters) per node per gossip round, "
                                "over the runs and over the quiet period")
    else:
        result["missing_status_fields"] = [
            f"{STATS}: the Federation's counters gossip_sent, gossip_bytes_sent, gossip_received, "
            f"announces_sent (Federation.status: \"{STATS}\": dict(self.stats)); per_node_per_round "
            "is derived from measured exchange sizes instead",
        ]
    return result


def _stats_delta(before: Sequence[dict], after: Sequence[dict], rounds: Sequence[int]) -> dict:
    """The Federation's counters per node per gossip round, from two status snapshots."""
    out = {}
    for key in sorted(after[0][STATS]):
        per = [(a[STATS][key] - b[STATS].get(key, 0)) / max(r, 1)
               for a, b, r in zip(after, before, rounds, strict=True)]
        out[key] = round(statistics.mean(per), 2)
    return out


def _per_round(sizes: dict, fanout: int, n: int, stats: dict | None) -> dict:
    """What a node sends and receives per gossip round when nothing changes.

    From the counters of the quiet period when the node exposes them (requests
    and their bytes; answers are not counted, so their bytes are the measured
    size of an answer when digests agree); otherwise derived from one
    exchange's sizes: it starts ``fanout`` exchanges and, on average, answers as many."""
    if stats is not None:
        sent, received = stats["gossip_sent"], stats["gossip_received"]
        request_bytes = stats["gossip_bytes_sent"]
        source = "counters (quiet period)"
    else:
        sent = received = fanout
        request_bytes = fanout * sizes["request"]
        source = "derived from exchange sizes and the fan-out"
    return {
        "source": source,
        "requests_sent": sent,
        "requests_received": received,
        "messages": round(2 * (sent + received), 2),
        "messages_note": "requests sent and their answers, requests received and the answers to them",
        "bytes_sent": round(request_bytes + received * sizes["answer_same"]),
        "bytes_received": round(received * sizes["request"] + sent * sizes["answer_same"]),
        "bytes_note": "requests (16 bucket digests, no heads) and answers when digests agree",
        "announcements_per_new_checkpoint": min(n - 1, max(ANNOUNCE_FANOUT, fanout)),
        "announcements_note": "each node whose held checkpoint of a log changes tells that many random peers "
                              "(node.federation.ANNOUNCE_FANOUT), who pass it on; gossip rounds catch the rest",
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 nodes, 2 runs (unless given)")
    parser.add_argument("--nodes", type=int, help="number of nodes (default 30, quick 8)")
    parser.add_argument("--runs", type=int, help="entries authored, one per run (default 5, quick 2)")
    parser.add_argument("--interval-ms", type=int, default=500, help="gossip interval (default 500)")
    parser.add_argument("--idle-intervals", type=int, help="quiet period measured after the runs "
                        "(default 20 intervals, quick 4)")
    parser.add_argument("--settle-intervals", type=int, help="wait after the initial convergence before the "
                        "runs, while start-up announcements are worked off (default 60, quick 4; 0: none)")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    args.nodes = args.nodes or (8 if args.quick else 30)
    args.runs = args.runs or (2 if args.quick else 5)
    args.idle_intervals = args.idle_intervals or (4 if args.quick else 20)
    if args.settle_intervals is None:
        args.settle_intervals = 4 if args.quick else 60
    if not 2 <= args.nodes <= 200 or not 1 <= args.runs <= 100:
        parser.error("--nodes must be 2..200 and --runs 1..100")
    rng = random.Random(args.seed)
    result: dict = {"quick": args.quick, "date": time.strftime("%Y-%m-%d"), "python": sys.version.split()[0],
                    "cpus": os.cpu_count(), "nodes": args.nodes, "interval_ms": args.interval_ms,
                    # Other work on the machine moves every time here: the load says how much there was.
                    "loadavg_1m_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="solidarity-bench-gossip-") as tmp:
        work = Path(tmp)
        nodes = make_network(work, args.nodes)
        args.fanout = load_config(nodes[0].data)["gossip.fanout"]  # the nodes run with the default
        result["fanout"] = args.fanout
        try:
            started = time.monotonic()
            start_all(nodes, work, args.interval_ms)
            result["start_s"] = round(time.monotonic() - started, 1)
            result.update(asyncio.run(run_bench(nodes, args, rng)))
        finally:
            stop_all(nodes)
        # Measured with the nodes stopped, so they do not share the cores with it.
        result["checkpoint_verify_us"] = round(checkpoint_verify_us(nodes), 1)
        result["checkpoint_verify_note"] = ("open_checkpoint (parse the note, Ed25519-verify it): the node's "
                                            "digest re-verifies every held head on each exchange and status")
        result["federation_ms"] = federation_costs(nodes[0])
    result["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
