"""Sync benchmark: a fresh node fetches logs from one peer over loopback, against its ceiling.

Run from the repository root with the dev venv::

    python bench/sync.py             # the full run (about 6 minutes on 2 cores)
    python bench/sync.py --quick     # small counts, < 30 s (what the smoke test runs)
    python bench/sync.py --profile   # also sync the 100k log under cProfile (both threads)
    python bench/sync.py --no-variants   # skip the Syncer variants (about 3 minutes less)

Prints ONE JSON object; every figure in it was measured in the same run, on
this machine, so each rate has its baseline beside it. A cut of a full run
(2026-11-26, 2 cores shared with other work, load 3.7 at the start; commit
4d31030; docs/scaling.md reads it); keys ending ``_note`` say what a figure
divides by::

    {"store_bytes_per_entry": 470.4, "view_entries_per_s": 10958, "view_bytes_per_entry": 1051.1,
     "one_log": {"entries": 1000000, "entries_per_s": 70245, "ceiling_entries_per_s": 114115,
                 "share_of_ceiling": 0.616, "protocol_ceiling_entries_per_s": 113023,
                 "wire_per_raw_entry_byte": 0.316, "wire_per_raw_byte_with_bodies": 0.261,
                 "requests": {"checkpoint": 1, "tiles": 18, "entries": 3907, "bodies": 3907},
                 "time_split_s": {"loop_verify": 5.1, "loop_other": 5.26, "loop_idle": 3.87,
                                  "db_thread": 12.36},
                 "syncer_cpu_us_per_entry": 10.4, "server_cpu_us_per_entry": 5.4,
                 "rss_start_mb": 52.3, "rss_end_mb": 62.3, ...},
     "many_logs": {"entries_per_s": 75446, "ceiling_entries_per_s": 119831, "share_of_ceiling": 0.63, ...},
     "small_log": {...},
     "targets": {"share_of_ceiling": {"target": ">= 0.5", "value": 0.616, "target_met": true}, ...},
     "variants": {"node": {"entries_per_s": 72012, ...}, "no_prefetch": {"speedup": 0.66, ...},
                  "commit_per_bundle": {"speedup": 0.77, ...}, "node_uncompressed": {"speedup": 1.08, ...}}}

A run 20 minutes earlier (commit 60c338f: the same sync but for one fewer
trip to the database thread per log), under other neighbours, gave shares of
0.449 (one log) and 0.488 (many logs), and one 10 minutes later (commit
eff996c) 0.571 and 0.495: on a shared machine the share moves with the load
by about that much.

What is measured, and why that way:

1. The source: a real node data folder (``init_node``) whose store also holds
   other cities' logs written straight through the Store API, as sync writes
   them (entries, tile hashes, each city's checkpoint signed by its own seeded
   key), with realistic bodies; served by the real ``python -m node.cli
   serve`` on 127.0.0.1, port 0.
2. The syncing side: a fresh node (``init_node``) in its own process, so its
   memory is the sync's alone; ``node.sync.Syncer`` and ``Fetcher`` used
   directly, one log at a time, each ``Member`` from the log's origin and
   verifier key. Cases: (a) one log of 1M entries, (b) 200 logs of 5k, and a
   smaller log (100k) that shows whether memory grows with the log.
3. End to end: entries per second from the first request to the last commit.
   The syncer fetches bundles ahead while it verifies one and writes a batch,
   so its time does not split into a sum: the event loop's wall time splits
   into verifying bundles, other work and idle (blocked in its selector,
   waiting on the peer or the database thread), and beside it the database
   thread's time on sync's work (write transactions, each with an fsync:
   ``synchronous=FULL``). The server's and the syncer's CPU seconds come from
   /proc schedstat.
4. Wire bytes: the Fetcher's own count (Content-Length of each response:
   compressed, as aiohttp asks for gzip/deflate) against the raw bytes stored:
   entry bytes only (checkpoint, tiles and entry bundles on the wire), and
   entries plus salted bodies (everything on the wire).
5. Ceiling, same entries and bodies, no network: the bundles as the peer
   sends them (uncompressed), framing split, each entry and body decoded with
   msgpack and hashed with SHA-256, inserted into the same ``entries`` table,
   all in ONE transaction. Beside it the work sync must do on CPU: the
   protocol's strict decoding, body size and hash check, Merkle tree and tile
   hashes, in one transaction and in one transaction per 256-entry bundle,
   which prices a transaction per bundle.
6. Variants (skip with ``--no-variants``): the node's own ``Syncer`` with one
   setting changed in the worker process (one bundle in flight instead of
   prefetching; one transaction per bundle instead of a batch), and asking
   for uncompressed answers (the price of compression on both sides), on the
   smaller log, in interleaved rounds: what each measure buys.
7. The network view: ``serve`` indexes every entry it holds into its view
   tables. The source is indexed before it is served (else the server would
   do it in the background during the measurements), which gives the view's
   rate and size per entry: what a serving node adds to every synced entry.

All traffic goes to 127.0.0.1; every wait is bounded; the server and every
worker are stopped and every temporary folder removed, also on failure.
The syncer and the server share the machine's cores (2 here): an end-to-end
rate is bounded by the sum of both sides' CPU per entry.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import hashlib
import io
import json
import os
import pstats
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is bench/sync.py: with bench/ first on sys.path, "import node"
# would import bench/node.py instead of the node package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import aiohttp  # noqa: E402
import msgpack  # noqa: E402

from bench.node import ENV, NETWORK, Server, body_pool, cpu_s, read_status, seed_for, write_log  # noqa: E402
from node.local import init_node, load_registry  # noqa: E402
from node.store import Store  # noqa: E402
import node.sync as node_sync  # noqa: E402
from node.sync import Fetcher, Member, Syncer  # noqa: E402
from protocol.entry import entry_id, log_id  # noqa: E402
from protocol.entry import check_body_hash, decode_entry  # noqa: E402
from protocol.keys import parse_verifier_key  # noqa: E402
from protocol.merkle import EMPTY_ROOT, CompactTree  # noqa: E402
from protocol.tiles import (  # noqa: E402
    TILE_WIDTH,
    Tile,
    bundle_tiles,
    decode_bundle,
    encode_bundle,
)

SHARE_TARGET = 0.5
WIRE_TARGET = 1.15
RSS_FLAT_RATIO = 1.3
WORKER_TIMEOUT_S = 1800.0
#: Entries per Store transaction while building the source (bounded memory).


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    big: int  # (a) one log of this many entries
    many_logs: int  # (b) this many logs ...
    many_size: int  # ... of this many entries each
    small: int  # one smaller log: memory must not grow with the log
    body_pool: int
    variant_rounds: int


FULL = Sizes(big=1_000_000, many_logs=200, many_size=5_000, small=100_000, body_pool=4_000, variant_rounds=3)
QUICK = Sizes(big=20_000, many_logs=20, many_size=1_000, small=5_000, body_pool=1_000, variant_rounds=1)


# -- the source store -----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Case:
    name: str
    origins: tuple[str, ...]
    size: int  # entries per log


def index_view(store: Store) -> tuple[int, float] | None:
    """Bring the node's network view up to date, as ``serve`` does at start-up and after each
    sync; (entries applied, seconds), or None for a node release without a view."""
    try:
        from node.view import ViewUpdater
    except ImportError:
        return None
    start = time.perf_counter()
    applied = ViewUpdater(load_registry()).catch_up(store)
    return applied, time.perf_counter() - start


def build_source(data: Path, sizes: Sizes, rng: random.Random) -> tuple[list[Case], dict]:
    """A real node folder (``init_node``) holding every log the cases sync.

    Its network view is brought up to date here: otherwise ``serve`` would do it
    at start-up, in the background, on the cores the sync is measured on."""
    start = time.perf_counter()
    node, _ = init_node(data, city="Source City", country="GR", url="http://127.0.0.1:1/source",
                        network=NETWORK, seed=seed_for("Source City"))
    cases = [
        Case(name="one_log", origins=("big.bench.example/solidarity",), size=sizes.big),
        Case(name="many_logs", size=sizes.many_size,
             origins=tuple(f"city-{j:03d}.bench.example/solidarity" for j in range(sizes.many_logs))),
        Case(name="small_log", origins=("small.bench.example/solidarity",), size=sizes.small),
    ]
    try:
        pool = body_pool(rng, sizes.body_pool)
        for case in cases:
            for j, origin in enumerate(case.origins):
                write_log(node.store, origin, case.size, pool, offset=j * 7)
        built = time.perf_counter()
        entries, raw = node.store.conn.execute(
            "SELECT count(*), sum(length(entry)) + sum(length(body)) FROM entries").fetchone()
        logs_bytes = db_bytes(node.store)
        view = index_view(node.store)
        view_bytes = db_bytes(node.store) - logs_bytes
    finally:
        node.close()
    figures = {
        "source_build_s": round(built - start, 1),
        "store_bytes_per_entry": round(logs_bytes / entries, 1),
        "store_bytes_per_raw_byte": round(logs_bytes / raw, 3),
        "store_note": "the source database (logs only, after a WAL checkpoint) per entry and per byte of entry "
                      "plus salted body: what every node stores per entry of any city",
    }
    if view is not None:
        figures["view_entries_per_s"] = round(view[0] / view[1])
        figures["view_bytes_per_entry"] = round(view_bytes / entries, 1)
        figures["view_note"] = ("node.view.ViewUpdater.catch_up over the whole source store, and what its "
                                "tables add to the database: what a serving node adds per synced entry "
                                "(the sync figures do not include it)")
    return cases, figures


def db_bytes(store: Store) -> int:
    """The database's size on disk with its WAL folded in."""
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    wal = Path(str(store.path) + "-wal")
    return store.path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def members_of(db: Path, origins: Sequence[str]) -> list[tuple[str, str]]:
    """(origin, verifier key string) of each log, read back from the source store."""
    with Store(db, readonly=True) as store:
        return [(origin, store.log(log_id(origin)).verifier) for origin in origins]


# -- the syncing process -----------------------------------------------------------


def _kind(path: str) -> str:
    if path.endswith("/checkpoint"):
        return "checkpoint"
    if "/tile/entries/" in path:
        return "entries"
    if "/bodies/" in path:
        return "bodies"
    return "tiles"


class CountingFetcher(Fetcher):
    """The node's Fetcher, also counting requests, raw bytes and waiting time per kind.

    Its own ``wire_bytes`` stays the total; wire bytes per kind come from each
    response's Content-Length (see :func:`wire_trace`), since with requests in
    flight together a difference of ``wire_bytes`` would mix them."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.requests: collections.Counter[str] = collections.Counter()
        self.raw: collections.Counter[str] = collections.Counter()
        self.wait_s: collections.Counter[str] = collections.Counter()
        self.paths: collections.Counter[str] = collections.Counter()

    async def get(self, path: str, *, limit: int) -> bytes | None:
        kind = _kind(path)
        start = time.perf_counter()
        data = await super().get(path, limit=limit)
        self.wait_s[kind] += time.perf_counter() - start
        self.requests[kind] += 1
        self.raw[kind] += len(data or b"")
        self.paths[path] += 1
        return data


def wire_trace(wire: collections.Counter[str]) -> aiohttp.TraceConfig:
    """Adds each response's Content-Length (compressed: what crossed the wire) to wire[kind]."""

    async def on_request_end(session, context, params: aiohttp.TraceRequestEndParams) -> None:
        length = params.response.headers.get("Content-Length")
        wire[_kind(params.url.path)] += int(length) if length is not None else 0
        if length is None:
            wire["responses_without_length"] += 1

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_request_end)
    return trace


class TimedSyncer(Syncer):
    """The node's Syncer, timing its database thread and its bundle verification."""

    def __init__(self, store: Store, **kwargs) -> None:
        super().__init__(store, **kwargs)
        self.phase_s: collections.Counter[str] = collections.Counter()

    async def _db(self, fn):
        start = time.perf_counter()
        try:
            return await super()._db(fn)
        finally:
            self.phase_s["db"] += time.perf_counter() - start

    def _verify_bundle(self, *args):  # a staticmethod in Syncer; called through self
        start = time.perf_counter()
        try:
            return Syncer._verify_bundle(*args)
        finally:
            self.phase_s["verify"] += time.perf_counter() - start


#: The node's own Syncer, with one of its settings changed at a time (in the worker process
#: only): what each measure buys, on the real code. ``identity``: the client asks for
#: uncompressed answers (prices compression on both sides).
VARIANTS: dict[str, dict] = {
    "node": {},
    "node_uncompressed": {"identity": True},
    "no_prefetch": {"settings": {"PREFETCH_BUNDLES": 1}},
    "commit_per_bundle": {"settings": {"COMMIT_BUNDLES": 1}},
}


class LoopIdle:
    """Seconds the event loop spent blocked in its selector: waiting on the peer or the
    database thread, with nothing else to run (the rest of the wall time it was busy)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.idle_s = 0.0
        selector = loop._selector  # noqa: SLF001 (instrumentation only)
        select = selector.select

        def timed(timeout=None):
            start = time.perf_counter()
            try:
                return select(timeout)
            finally:
                self.idle_s += time.perf_counter() - start

        selector.select = timed


class ThreadProfiles:
    """cProfile of the event loop thread and of the database thread (cProfile sees one thread)."""

    def __init__(self) -> None:
        self.loop = cProfile.Profile()
        self.db = cProfile.Profile()

    def stop(self, executor: ThreadPoolExecutor) -> None:
        executor.submit(self.db.disable).result()
        self.loop.disable()

    def report(self, n: int = 25) -> dict:
        stats = pstats.Stats(self.loop, stream=io.StringIO())
        stats.add(self.db)
        rows, groups = [], collections.Counter()
        for (file, line, func), (_, calls, tottime, cumtime, _) in stats.stats.items():
            rows.append({"function": f"{Path(file).name}:{line}:{func}", "calls": calls,
                         "tottime_s": round(tottime, 3), "cumtime_s": round(cumtime, 3)})
            groups[_group(file, func)] += tottime
        rows.sort(key=lambda r: r["tottime_s"], reverse=True)
        return {"by_group_tottime_s": {k: round(v, 2) for k, v in groups.most_common()}, "top_tottime": rows[:n]}


def _group(file: str, func: str) -> str:
    """Where a profiled function's own time belongs, for a short summary."""
    path = Path(file)
    if "SimpleQueue" in func:
        return "idle: database thread waiting for work"
    if "epoll" in func:
        return "idle: event loop waiting (peer, database thread)"
    if "sqlite3" in func:
        return "sqlite (statements, commit with fsync)"
    if path.parent.name == "protocol":
        return f"protocol.{path.stem}"
    if path.parent.name == "node":
        return f"node.{path.stem}"
    if "aiohttp" in file or "multidict" in file or "yarl" in file:
        return "aiohttp client"
    if "asyncio" in file or "concurrent" in file or "threading" in file:
        return "asyncio and threads"
    if "zlib" in func or "Decompress" in func:
        return "zlib decompress"
    if "hashlib" in func or "HASH" in func:
        return "sha-256"
    if path.name == "sync.py" and path.parent.name == "bench":
        return "bench instrumentation"
    if "msgpack" in file or "packb" in func or "unpack" in func:
        return "msgpack"
    if "socket" in func:
        return "socket send/recv"
    return "other builtins"


async def _sync(spec: dict) -> dict:
    node, _ = init_node(Path(spec["data"]), city="Sync Bench", country="GR",
                        url="http://127.0.0.1:1/sync-bench", network=NETWORK, seed=seed_for("Sync Bench"))
    members = [Member(log_id=log_id(origin), origin=origin, verifier=parse_verifier_key(key))
               for origin, key in spec["members"]]
    profiles = ThreadProfiles() if spec.get("profile") else None
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sync-db",
                                  initializer=profiles.db.enable if profiles else None)
    variant = VARIANTS[spec["syncer"]]
    for name, value in variant.get("settings", {}).items():
        setattr(node_sync, name, value)
    syncer = TimedSyncer(node.store, executor=executor)
    try:
        wire: collections.Counter[str] = collections.Counter()
        # identity: what compression costs (aiohttp asks for gzip/deflate by default).
        headers = {"Accept-Encoding": "identity"} if variant.get("identity") else None
        async with aiohttp.ClientSession(trace_configs=[wire_trace(wire)], headers=headers) as session:
            async with session.get(spec["url"] + "/healthz") as response:  # connected before the clock starts
                await response.read()
            wire.clear()
            fetcher = CountingFetcher(session, spec["url"])
            rss_start = read_status()
            if profiles:
                profiles.loop.enable()
            idle = LoopIdle(asyncio.get_running_loop())
            cpu0, start = cpu_s(), time.perf_counter()
            fetched = 0
            for member in members:
                outcome = await syncer.sync_log(fetcher, member)
                if outcome.state != "grew":
                    raise RuntimeError(f"sync of {member.origin}: {outcome.state}, expected grew")
                fetched += outcome.fetched
            elapsed, cpu, idle_s = time.perf_counter() - start, cpu_s() - cpu0, idle.idle_s
            if profiles:
                profiles.stop(executor)
            rss_end = read_status()
        count, entry_bytes, body_bytes = node.store.conn.execute(
            "SELECT count(*), sum(length(entry)), sum(length(body)) FROM entries JOIN logs USING (lid) "
            "WHERE own = 0").fetchone()
    finally:
        executor.shutdown(wait=True)
        node.close()
    for kind in ("checkpoint", "tiles", "entries", "bodies"):
        fetcher.requests.setdefault(kind, 0)
    result = {
        "entries": count, "fetched": fetched, "elapsed_s": elapsed, "cpu_s": cpu,
        "entry_bytes": entry_bytes, "body_bytes": body_bytes,
        "requests": dict(fetcher.requests), "wire": dict(wire), "raw": dict(fetcher.raw),
        "wire_bytes": fetcher.wire_bytes,
        "refetched_paths": sum(n - 1 for n in fetcher.paths.values() if n > 1),
        "wait_s": dict(fetcher.wait_s), "phase_s": dict(syncer.phase_s), "loop_idle_s": idle_s,
        "rss_start_mb": rss_start["VmRSS"], "rss_end_mb": rss_end["VmRSS"], "rss_peak_mb": rss_end["VmHWM"],
    }
    if profiles:
        result["profile"] = profiles.report()
    return result


# -- the ceiling ---------------------------------------------------------------------


_INSERT = "INSERT INTO entries (lid, seq, leaf, entry, body) VALUES (?, ?, ?, ?, ?)"


def _load_bundles(db: Path, origins: Sequence[str]) -> list[tuple[str, str, list[tuple[Tile, bytes, bytes]]]]:
    """Every bundle of the logs as the peer sends them (uncompressed), read before any clock starts."""
    out = []
    with Store(db, readonly=True) as store:
        for origin in origins:
            state = store.log(log_id(origin))
            bundles = [(t, encode_bundle(store.bundle(state.lid, t.index, t.width)),
                        encode_bundle(store.bundle(state.lid, t.index, t.width, bodies=True)))
                       for t in bundle_tiles(state.size)]
            out.append((origin, state.verifier, bundles))
    return out


def _ceiling(spec: dict) -> dict:
    """msgpack decode + SHA-256 + insert, one transaction; then what sync must do on CPU."""
    logs = _load_bundles(Path(spec["source_db"]), spec["origins"])
    entries = sum(t.width for _, _, bundles in logs for t, _, _ in bundles)
    work = Path(spec["data"])
    sha256, unpackb = hashlib.sha256, msgpack.unpackb

    def minimal(store: Store) -> None:
        with store.write() as conn:
            for origin, verifier, bundles in logs:
                lid = store.add_log(log_id=log_id(origin), origin=origin, verifier=verifier, own=False,
                                    root=EMPTY_ROOT)
                for tile, entries_data, bodies_data in bundles:
                    rows = []
                    first = tile.index * TILE_WIDTH
                    for i, (entry, body) in enumerate(zip(decode_bundle(entries_data), decode_bundle(bodies_data),
                                                          strict=True)):
                        unpackb(entry)
                        unpackb(body[16:])
                        sha256(body).digest()
                        # RFC 9162 2.1.1: SHA-256(0x00 || entry)
                        rows.append((lid, first + i, sha256(b"\x00" + entry).digest(), entry, body))
                    conn.executemany(_INSERT, rows)

    def protocol_work(store: Store, per_bundle: bool) -> None:
        """decode_entry (strict), check_body_hash, leaf hash, CompactTree, tile hashes, head: as
        Syncer, except that it adds leaves one at a time (Syncer adds a full bundle as one node)."""
        whole = contextlib.nullcontext() if per_bundle else store.write()
        each = store.write if per_bundle else contextlib.nullcontext
        with whole:
            for origin, verifier, bundles in logs:
                with each():
                    lid = store.add_log(log_id=log_id(origin), origin=origin, verifier=verifier, own=False,
                                        root=EMPTY_ROOT)
                tree = CompactTree()
                for tile, entries_data, bodies_data in bundles:
                    records, nodes = [], []
                    for entry, body in zip(decode_bundle(entries_data, count=tile.width),
                                           decode_bundle(bodies_data, count=tile.width), strict=True):
                        leaf = entry_id(entry)
                        check_body_hash(decode_entry(entry), body)
                        nodes.extend(tree.append(leaf))
                        records.append((leaf, entry, body))
                    with each():
                        store.insert_entries(lid, tile.index * TILE_WIDTH, records, nodes)
                        store.set_head(lid, size=tree.size, root=tree.root(), checkpoint=None, updated_ms=0)

    out = {"entries": entries}
    runs = [("minimal_s", minimal),
            ("protocol_one_tx_s", lambda s: protocol_work(s, per_bundle=False)),
            ("protocol_tx_per_bundle_s", lambda s: protocol_work(s, per_bundle=True))]
    for key, fn in runs:
        db = work / f"{key}.db"
        store = Store.create(db)
        try:
            start = time.perf_counter()
            fn(store)
            out[key] = time.perf_counter() - start
        finally:
            store.close()
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(str(db) + suffix).unlink()
    # The server compresses each bundle with zlib's default level (6; aiohttp picks deflate):
    # bytes and CPU of levels 1, 6 and 9 on the first bundles, entries and bodies apart.
    sample = [b for _, _, bundles in logs for b in bundles][:200]
    sample_entries = sum(t.width for t, _, _ in sample)
    raw_e = sum(len(e) for _, e, _ in sample)
    raw_b = sum(len(b) for _, _, b in sample)
    out["compression"] = {}
    for level in (1, 6, 9):
        start = time.perf_counter()
        size_e = sum(len(zlib.compress(e, level)) for _, e, _ in sample)
        size_b = sum(len(zlib.compress(b, level)) for _, _, b in sample)
        out["compression"][f"level_{level}"] = {
            "entries": round(size_e / raw_e, 3), "bodies": round(size_b / raw_b, 3),
            "cpu_us_per_entry": round((time.perf_counter() - start) / sample_entries * 1e6, 2),
        }
    return out


def worker_main() -> int:
    spec = json.loads(sys.stdin.read())
    if spec["mode"] == "sync":
        result = asyncio.run(_sync(spec))
    else:
        result = _ceiling(spec)
    print(json.dumps(result))
    return 0


def run_worker(spec: dict, work: Path) -> dict:
    """One syncing (or ceiling) process: its memory and CPU are the measured work's alone."""
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker"], input=json.dumps(spec),
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S,
    )
    if done.returncode != 0:
        raise RuntimeError(f"worker {spec['mode']} failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout)


# -- main ------------------------------------------------------------------------------


def _summary(case: Case, sync: dict, ceiling: dict, server_cpu: float) -> dict:
    n = sync["entries"]
    wire, raw = sync["wire"], sync["raw"]
    wire_entries = wire.get("checkpoint", 0) + wire.get("tiles", 0) + wire.get("entries", 0)
    wire_all = sync["wire_bytes"]  # the Fetcher's own count
    kinds = wire_entries + wire.get("bodies", 0)
    if kinds != wire_all:
        raise RuntimeError(f"wire bytes by kind add up to {kinds}, the Fetcher counted {wire_all}: "
                           f"responses without Content-Length: {wire.get('responses_without_length', 0)}")
    rate = n / sync["elapsed_s"]
    ceiling_rate = ceiling["entries"] / ceiling["minimal_s"]
    phases = sync["phase_s"]
    busy = sync["elapsed_s"] - sync["loop_idle_s"]
    return {
        "entries": n,
        "logs": len(case.origins),
        "shape": f"{len(case.origins)} log(s) of {case.size} entries",
        "entries_per_s": round(rate),
        "elapsed_s": round(sync["elapsed_s"], 2),
        "ceiling_entries_per_s": round(ceiling_rate),
        "share_of_ceiling": round(rate / ceiling_rate, 3),
        "protocol_ceiling_entries_per_s": round(ceiling["entries"] / ceiling["protocol_one_tx_s"]),
        "protocol_tx_per_bundle_entries_per_s": round(ceiling["entries"] / ceiling["protocol_tx_per_bundle_s"]),
        "mean_entry_bytes": round(sync["entry_bytes"] / n, 1),
        "mean_salted_body_bytes": round(sync["body_bytes"] / n, 1),
        "wire_bytes": wire_all,
        "wire_per_raw_entry_byte": round(wire_entries / sync["entry_bytes"], 3),
        "wire_per_raw_byte_with_bodies": round(wire_all / (sync["entry_bytes"] + sync["body_bytes"]), 3),
        "wire_bytes_by_kind": wire,
        "raw_bytes_by_kind": raw,
        "requests": sync["requests"],
        "refetched_paths": sync["refetched_paths"],
        "time_split_s": {"loop_verify": round(phases["verify"], 2), "loop_other": round(busy - phases["verify"], 2),
                         "loop_idle": round(sync["loop_idle_s"], 2), "db_thread": round(phases["db"], 2)},
        "time_split_note": "the event loop's wall time: verifying bundles, other work (HTTP, tree, "
                           "batching), idle (waiting on the peer or the database thread); beside it, "
                           "overlapping, the database thread's time on sync's work",
        "wait_by_kind_s": {k: round(v, 2) for k, v in sync["wait_s"].items()},
        "wait_by_kind_note": "summed request latencies per kind; requests overlap, so these add up to more "
                             "than the wall time",
        "syncer_cpu_us_per_entry": round(sync["cpu_s"] / n * 1e6, 1),
        "server_cpu_us_per_entry": round(server_cpu / n * 1e6, 1),
        "rss_start_mb": round(sync["rss_start_mb"], 1),
        "rss_end_mb": round(sync["rss_end_mb"], 1),
        "rss_peak_mb": round(sync["rss_peak_mb"], 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: the whole run in < 30 s")
    parser.add_argument("--profile", action="store_true",
                        help="also sync the small log once more under cProfile (both threads)")
    parser.add_argument("--no-variants", action="store_true",
                        help="skip the node's Syncer with one setting changed at a time")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker_main()
    sizes = QUICK if args.quick else FULL
    rng = random.Random(42)
    started = time.perf_counter()
    result: dict = {"quick": args.quick, "date": time.strftime("%Y-%m-%d"), "python": sys.version.split()[0],
                    "sqlite": sqlite3.sqlite_version, "aiohttp": aiohttp.__version__, "cpus": os.cpu_count(),
                    # Other work on the machine moves every rate here: the load says how much there was.
                    "loadavg_1m_start": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="solidarity-bench-sync-") as tmp:
        work = Path(tmp)
        source = work / "source"
        cases, figures = build_source(source, sizes, rng)
        result.update(figures)
        db = source / "solidarity.db"
        with Server(source, work) as server:
            for n, case in enumerate(cases):
                members = members_of(db, case.origins)
                spec = {"mode": "sync", "url": server.url, "members": members, "syncer": "node",
                        "data": str(work / f"sync-{n}")}
                cpu0 = server.cpu_s()
                sync = run_worker(spec, work)
                server_cpu = server.cpu_s() - cpu0
                ceiling = run_worker({"mode": "ceiling", "source_db": str(db), "origins": list(case.origins),
                                      "data": str(work)}, work)
                summary = _summary(case, sync, ceiling, server_cpu)
                summary["compression_ratio_by_level"] = ceiling["compression"]
                result[case.name] = summary
            small = next(c for c in cases if c.name == "small_log")
            members = members_of(db, small.origins)
            if args.profile:
                sync = run_worker({"mode": "sync", "url": server.url, "members": members, "syncer": "node",
                                   "data": str(work / "profiled"), "profile": True}, work)
                result["profile"] = {
                    "shape": f"the small log ({small.size} entries), node.sync.Syncer, under cProfile "
                             "(which slows Python code about 2x: compare shares, not seconds)",
                    "entries_per_s_profiled": round(sync["entries"] / sync["elapsed_s"]),
                    **sync["profile"],
                }
            if not args.no_variants:
                result["variants"] = _variants(server, members, sizes, work, result["small_log"])
    result.update(_targets(result))
    result["loadavg_1m_end"] = round(os.getloadavg()[0], 2)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))
    return 0


def _variants(server: Server, members: list, sizes: Sizes, work: Path, small: dict) -> dict:
    """Each variant of the node's Syncer on the small log, in interleaved rounds, median per variant:
    neighbours on a shared machine move a few-second sync by tens of percent, and each round sees
    the same neighbours."""
    runs: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for round_ in range(sizes.variant_rounds):
        for name in VARIANTS:
            spec = {"mode": "sync", "url": server.url, "members": members, "syncer": name,
                    "data": str(work / f"variant-{name}-{round_}")}
            cpu0 = server.cpu_s()
            sync = run_worker(spec, work)
            server_cpu = server.cpu_s() - cpu0
            n = sync["entries"]
            runs[name].append({
                "entries_per_s": n / sync["elapsed_s"],
                "syncer_cpu_us_per_entry": sync["cpu_s"] / n * 1e6,
                "server_cpu_us_per_entry": server_cpu / n * 1e6,
                "requests": sum(sync["requests"].values()),
                "wire_per_raw_byte_with_bodies": sync["wire_bytes"] / (sync["entry_bytes"] + sync["body_bytes"]),
            })
    out: dict = {
        "shape": f"the small log ({small['entries']} entries), each in a fresh process; median of "
                 f"{sizes.variant_rounds} interleaved rounds; speedup over node, share of the small log's ceiling",
        "options": {name: options or "node.sync.Syncer as it is" for name, options in VARIANTS.items()},
    }
    for name, rounds in runs.items():
        figures = {key: round(statistics.median(r[key] for r in rounds), 3 if "wire" in key else 1)
                   for key in rounds[0]}
        figures["entries_per_s"] = round(figures["entries_per_s"])
        figures["entries_per_s_rounds"] = [round(r["entries_per_s"]) for r in rounds]
        out[name] = figures
    for name in runs:
        out[name]["speedup"] = round(out[name]["entries_per_s"] / out["node"]["entries_per_s"], 2)
        out[name]["share_of_ceiling"] = round(out[name]["entries_per_s"] / small["ceiling_entries_per_s"], 3)
    return out


def _targets(result: dict) -> dict:
    big, many, small = result["one_log"], result["many_logs"], result["small_log"]
    share = min(big["share_of_ceiling"], many["share_of_ceiling"])
    wire = max(big["wire_per_raw_entry_byte"], many["wire_per_raw_entry_byte"])
    wire_all = max(big["wire_per_raw_byte_with_bodies"], many["wire_per_raw_byte_with_bodies"])
    ends = [big["rss_end_mb"], many["rss_end_mb"], small["rss_end_mb"]]
    peaks = [big["rss_peak_mb"], many["rss_peak_mb"], small["rss_peak_mb"]]
    rss_ratio = max(max(ends) / min(ends), max(peaks) / min(peaks))
    targets = {
        "share_of_ceiling": {"target": f">= {SHARE_TARGET}", "value": share, "target_met": share >= SHARE_TARGET,
                             "note": "the lower of (a) and (b): end-to-end entries/s over the ceiling's"},
        "wire_per_raw_entry_byte": {"target": f"<= {WIRE_TARGET}", "value": wire, "target_met": wire <= WIRE_TARGET,
                                    "note": "checkpoint + tiles + entry bundles on the wire / entry bytes"},
        "wire_per_raw_byte_with_bodies": {"target": f"<= {WIRE_TARGET}", "value": wire_all,
                                          "target_met": wire_all <= WIRE_TARGET,
                                          "note": "everything on the wire / (entry + salted body bytes)"},
        "rss_flat": {"target": f"max/min < {RSS_FLAT_RATIO}", "value": round(rss_ratio, 3),
                     "target_met": rss_ratio < RSS_FLAT_RATIO,
                     "note": "syncing process's VmRSS at the end and VmHWM over (a), (b) and the small log"},
    }
    return {"targets": targets, "target_met": all(t["target_met"] for t in targets.values())}


if __name__ == "__main__":
    sys.exit(main())
