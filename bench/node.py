"""Node benchmarks: authoring throughput, store size, tile serving and the server's memory.

Run from the repository root with the dev venv::

    python bench/node.py            # the full run (about a minute on 2 cores)
    python bench/node.py --quick    # small counts, < 30 s (what the smoke test runs)

Prints ONE JSON object; every figure in it was measured in the same run, on
this machine, so ratios between them (a tile against ``/healthz``, 1M entries
against 100k) mean something even where the absolute numbers do not. Linux
only (memory and CPU come from /proc). A cut of a full run; the keys ending
``_note`` say what each figure divides by::

    {"append_batched_entries_per_s": 17852, "append_single_entries_per_s": 271,
     "cli_command_entries_per_s": 2.58, "db_bytes_per_raw_byte": 1.212, "target_met": true,
     "healthz_served_per_s": 9651, "full_tiles_served_per_s": 2481,
     "full_bundles_served_per_s": 1064, "full_bundles_served_per_s_identity": 1583,
     "server_cpu_us_per_request": {"healthz": 47, "tiles": 221, "bundles": 886, ...},
     "serve_rss_mb": 68.9, "serve_rss_small_mb": 68.0, "rss_flat": true, ...}

Requests/s on a shared machine move by up to 2x between rounds (the JSON
keeps every round); the server's CPU time per request moves far less and is
the figure to compare across changes.

What each part measures, and why that way:

1. Authoring: ``Author.append`` in batches (an import) and one call per entry
   (one transaction and one fsync each: the server's authoring path), and one
   ``python -m node.cli pledge`` process per entry, the real cost of a person
   or script using the CLI, interpreter start-up included.
2. Store size: 100k entries with realistic bodies (pledges, offers, requests
   and reports with descriptions of typical length) appended through
   ``Author.append``; the database after ``PRAGMA wal_checkpoint(TRUNCATE)``
   (plus any ``-wal`` left) against the raw bytes it must hold: entry bytes
   plus salted body bytes. The target is at most 2.0.
3. Serving: the real ``serve`` process on loopback (over the 100k store), a
   bounded number of requests from N concurrent aiohttp connections, for
   full level-0 tiles, full entry bundles (compressed, as aiohttp clients ask
   by default, and identity) and ``/healthz`` as the ceiling of this server
   for a minimal response; requests/s and the server's CPU per request.
4. Memory: ``serve`` over 200 logs of 5,000 entries (1M entries), every log's
   checkpoint, tiles, bundles and bodies fetched, then VmRSS from
   /proc/<pid>/status; the same over 200 logs of 500 entries shows whether
   memory grows with the store (``rss_flat``: larger/smaller < 1.3). The 199
   other cities' logs are written straight through the Store API (as sync
   will write them), each with its own seeded key and signed checkpoint; the
   smaller store is audited with ``node.audit`` so the builder is known to
   write valid logs.

All traffic goes to 127.0.0.1; every loop is bounded by a count and a
deadline; every server is stopped and every temporary folder removed, also on
failure. The client runs in this process and shares the machine's cores with
the server: on a 2-core machine the served rates are a lower bound.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import hashlib
import json
import os
import random
import selectors
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is bench/node.py (and bench/protocol.py sits next to it): with
# bench/ first on sys.path, "import node" would import this very script.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import aiohttp  # noqa: E402

from node.audit import audit_store  # noqa: E402
from node.authoring import Event  # noqa: E402
from node.local import init_node, load_registry  # noqa: E402
from node.store import Store  # noqa: E402
from protocol.checkpoint import Checkpoint, sign_checkpoint  # noqa: E402
from protocol.entry import Entry, body_hash, encode_body, encode_entry, entry_id, log_id  # noqa: E402
from protocol.keys import signer_from_seed  # noqa: E402
from protocol.merkle import EMPTY_ROOT, CompactTree  # noqa: E402
from protocol.tiles import TILE_WIDTH, Tile, tile_path  # noqa: E402

NETWORK = "bench-net"
#: Entries per transaction when building other cities' logs for a bench.
BUILD_CHUNK = 16_384
#: Server processes log only problems: their stderr goes to a file we read on failure.
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "SOLIDARITY_LOGGING_LEVEL": "warning"}
START_TIMEOUT_S = 60.0
DB_TARGET = 2.0
RSS_TARGET_MB = 150.0
RSS_FLAT_RATIO = 1.3


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    """How much work each part does (``--quick`` shrinks everything)."""

    batched_entries: int
    batch: int
    single_entries: int
    cli_commands: int
    db_entries: int
    http_requests: int
    http_concurrency: int
    http_rounds: int
    rss_logs: int
    rss_big: int  # entries per log
    rss_small: int
    rss_deadline_s: float


FULL = Sizes(
    batched_entries=10_000, batch=1_000, single_entries=300, cli_commands=20, db_entries=100_000,
    http_requests=2_000, http_concurrency=8, http_rounds=3, rss_logs=200, rss_big=5_000, rss_small=500,
    rss_deadline_s=120.0,
)
QUICK = Sizes(
    batched_entries=2_000, batch=500, single_entries=50, cli_commands=3, db_entries=5_000,
    http_requests=300, http_concurrency=8, http_rounds=1, rss_logs=20, rss_big=500, rss_small=260,
    rss_deadline_s=15.0,
)


# -- realistic bodies ---------------------------------------------------------

_PHRASES = (
    "relocation from reception centres at the EU external border",
    "families with young children preferred",
    "places in municipal flats for at least twelve months",
    "Arabic, Dari and Tigrinya interpreters for asylum interviews, remote or on site",
    "language courses and school enrolment arranged by the city",
    "social workers seconded from the municipal youth office",
    "furnished rooms in shared housing close to public transport",
    "legal counselling through a local refugee law clinic",
    "psychosocial support for survivors of violence",
    "medical screening on arrival at the central station",
    "arrivals by sea exceed the capacity of our reception centres",
    "we ask for places for unaccompanied minors aged 14 to 17",
    "winter clothing, beds and kitchen equipment for 200 people",
    "training for reception staff on trauma-informed care",
    "two caseworkers for six months to clear the registration backlog",
    "a sports hall converted into temporary shelter until the spring",
    "co-funding for the regional integration programme",
    "places are accessible for wheelchair users",
    "transport from the port is organised by the city",
    "volunteers from local associations support the first weeks",
)
_UNITS = ("places", "beds", "flats", "person-days", "person-months", "courses", "sessions", "EUR")
_CATEGORIES = ("reception-places", "housing", "staff", "training", "expertise", "interpretation",
               "equipment", "funding", "other")
_KINDS = ("relocation", "resettlement", "unaccompanied-minors", "family-reunification", "other")


def _description(rng: random.Random) -> str:
    phrases = rng.sample(_PHRASES, rng.choice((1, 1, 2, 2, 2, 3, 4)))
    text = "; ".join(phrases) + "."
    if rng.random() < 0.25:
        text += " Contact the city's refugee coordination office for details and dates."
    return text[0].upper() + text[1:]


def _dates(rng: random.Random) -> tuple[str, str]:
    first = datetime.date(2026, 1, 1) + datetime.timedelta(days=rng.randrange(0, 365))
    last = first + datetime.timedelta(days=rng.randrange(0, 366))
    return first.isoformat(), last.isoformat()


def realistic_event(rng: random.Random) -> Event:
    """One of the events cities write most, with text of typical length."""
    kind = rng.choices(("pledge", "offer", "request", "report"), weights=(2, 4, 3, 1))[0]
    first, last = _dates(rng)
    if kind == "pledge":
        body = {"kind": rng.choice(_KINDS), "places": rng.randrange(1, 500), "from": first, "until": last}
        if rng.random() < 0.8:
            body["description"] = _description(rng)
    elif kind in ("offer", "request"):
        body = {"category": rng.choice(_CATEGORIES), "quantity": rng.randrange(1, 1000),
                "unit": rng.choice(_UNITS), "from": first, "until": last, "description": _description(rng)}
    else:
        body = {"period_start": first, "period_end": last, "arrivals": rng.randrange(0, 5000),
                "in_reception": rng.randrange(0, 5000), "free_places": rng.randrange(0, 1000)}
        if rng.random() < 0.4:
            body["note"] = _description(rng)
    return Event(type=kind, body=body)


# -- nodes and servers --------------------------------------------------------


def seed_for(name: str) -> bytes:
    """Deterministic keys: the benchmark never depends on os.urandom for identities."""
    return hashlib.sha256(b"solidarity-bench-seed:" + name.encode()).digest()


def make_node(data: Path, name: str = "Bench City"):
    slug = name.lower().replace(" ", "-")
    node, _ = init_node(data, city=name, country="GR", url=f"http://127.0.0.1:1/{slug}",
                        network=NETWORK, seed=seed_for(name))
    return node


def read_status(pid: int | str = "self") -> dict[str, float]:
    """VmRSS and VmHWM (peak) of a process, in MiB (shared by the benches)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) / 1024
    return out


def cpu_s(pid: int | str = "self") -> float:
    """CPU seconds every thread of a process has run, in nanoseconds' resolution.

    /proc/<pid>/stat counts in 10 ms ticks, too coarse for a few hundred
    requests; schedstat's first field is the time on CPU in nanoseconds.
    """
    total = 0
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):  # the process may be gone
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += int((task / "schedstat").read_text().split()[0])
    return total / 1e9


def stop_process(proc: subprocess.Popen | None) -> None:
    """Stop a server as Ctrl-C would, killing it if it has not stopped in 15 s."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)


class Server:
    """``python -m node.cli serve`` on an ephemeral loopback port; always stopped on exit."""

    def __init__(self, data: Path, work: Path) -> None:
        self.data = data
        self.stderr_path = work / f"serve-{os.getpid()}-{time.monotonic_ns()}.err"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> Server:
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "serve", "--data", str(self.data), "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self._stderr, cwd=ROOT, env=ENV,
        )
        try:
            line = self._first_line()
            if not line.startswith("serving on "):
                raise RuntimeError(f"serve did not start: {line!r}; stderr: {self._errors()}")
            self.url = line.split()[-1]
            if not self.url.startswith("http://127.0.0.1:"):
                raise RuntimeError(f"serve bound {self.url}, expected loopback")
        except BaseException:
            self.__exit__()
            raise
        return self

    def _first_line(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            if not sel.select(START_TIMEOUT_S):
                raise RuntimeError(f"serve printed nothing in {START_TIMEOUT_S:g} s")
        finally:
            sel.close()
        return self.proc.stdout.readline().decode(errors="replace").strip()

    def _errors(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-2000:]

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def memory(self) -> dict[str, float]:
        return read_status(self.pid)

    def cpu_s(self) -> float:
        return cpu_s(self.pid)

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        stop_process(proc)
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        self._stderr.close()
        with contextlib.suppress(FileNotFoundError):
            self.stderr_path.unlink()


# -- 1. authoring -------------------------------------------------------------


def bench_authoring(work: Path, sizes: Sizes, rng: random.Random) -> dict:
    node = make_node(work / "author")
    try:
        author = node.author()
        events = [realistic_event(rng) for _ in range(sizes.batched_entries)]
        author.append(events[:10])  # warm-up: schemas compiled, pages cached
        start = time.perf_counter()
        for i in range(0, len(events), sizes.batch):
            author.append(events[i : i + sizes.batch])
        batched_s = time.perf_counter() - start

        singles = [realistic_event(rng) for _ in range(sizes.single_entries)]
        start = time.perf_counter()
        for event in singles:
            author.append([event])
        single_s = time.perf_counter() - start
    finally:
        node.close()

    argv = [sys.executable, "-m", "node.cli", "pledge", "--data", str(work / "author"),
            "--kind", "relocation", "--places", "12", "--from", "2026-03-01", "--until", "2026-09-30",
            "--description", "Relocation from reception centres at the EU external border."]
    start = time.perf_counter()
    for _ in range(sizes.cli_commands):
        done = subprocess.run(argv, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60)
        if done.returncode != 0 or len(done.stdout.strip()) != 64:
            raise RuntimeError(f"pledge command failed ({done.returncode}): {done.stderr[-2000:]}")
    cli_s = time.perf_counter() - start
    return {
        "append_batched_entries_per_s": round(sizes.batched_entries / batched_s),
        "append_batched_shape": f"{sizes.batched_entries} entries in batches of {sizes.batch}",
        "append_single_entries_per_s": round(sizes.single_entries / single_s),
        "append_single_shape": f"{sizes.single_entries} entries, one append (transaction, fsync) each",
        "cli_command_entries_per_s": round(sizes.cli_commands / cli_s, 2),
        "cli_command_ms": round(cli_s / sizes.cli_commands * 1000, 1),
        "cli_command_shape": f"{sizes.cli_commands} sequential 'python -m node.cli pledge' processes",
    }


# -- 2. store size ------------------------------------------------------------


def _db_file_bytes(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        conn.close()
    wal = Path(str(db) + "-wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def _table_bytes(db: Path) -> dict[str, int]:
    """Bytes per table and index (dbstat), if this SQLite was built with it."""
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
    except sqlite3.Error:
        return {}
    finally:
        conn.close()
    return {name: size for name, size in rows}


def bench_store_size(work: Path, sizes: Sizes, rng: random.Random) -> tuple[dict, Path]:
    """Returns the figures and the data folder (reused by the serving benchmark)."""
    data = work / "size"
    node = make_node(data)
    try:
        author = node.author()
        remaining = sizes.db_entries - 1  # entry 0 is the city profile
        start = time.perf_counter()
        while remaining:
            n = min(1_000, remaining)
            author.append([realistic_event(rng) for _ in range(n)])
            remaining -= n
        build_s = time.perf_counter() - start
        count, entry_bytes, body_bytes = node.store.conn.execute(
            "SELECT count(*), sum(length(entry)), sum(length(body)) FROM entries"
        ).fetchone()
    finally:
        node.close()
    db = node.config.database_path
    db_bytes = _db_file_bytes(db)
    raw = entry_bytes + body_bytes
    ratio = db_bytes / raw
    return {
        "db_entries": count,
        "db_bytes": db_bytes,
        "db_entry_bytes": entry_bytes,
        "db_body_bytes": body_bytes,
        "db_mean_entry_bytes": round(entry_bytes / count, 1),
        "db_mean_salted_body_bytes": round(body_bytes / count, 1),
        "db_bytes_per_raw_byte": round(ratio, 3),
        "db_bytes_per_raw_byte_note": "database file (+ -wal) / (entry bytes + salted body bytes): the target",
        "db_bytes_per_entry_byte": round(db_bytes / entry_bytes, 3),
        "db_bytes_per_entry_byte_note": "database file (+ -wal) / entry bytes only (bodies counted as overhead)",
        "db_target": DB_TARGET,
        "target_met": ratio <= DB_TARGET,
        "db_table_bytes": _table_bytes(db),
        "db_build_entries_per_s": round((sizes.db_entries - 1) / build_s),
    }, data


# -- 3. serving ---------------------------------------------------------------


async def _fetch_all(base: str, paths: Sequence[str], concurrency: int, *, headers: dict | None = None,
                     expect_size: int | None = None, compressed: bool | None = None,
                     deadline_s: float = 300.0) -> tuple[int, float, int]:
    """GET every path with ``concurrency`` connections; returns (requests done, seconds, bytes).

    Bodies are read as sent (no client-side decompression): the client shares
    the machine's cores with the server and should cost it as little as possible.
    """
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    todo = iter(paths)
    done = 0
    received = 0
    stop_at = time.monotonic() + deadline_s

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done, received
        for path in todo:  # one shared iterator: each path is fetched once, by whichever worker is free
            if time.monotonic() > stop_at:
                return
            async with session.get(base + path, headers=headers) as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {path}: {response.status} {body[:300]!r}")
                if expect_size is not None and len(body) != expect_size:
                    raise RuntimeError(f"GET {path}: {len(body)} bytes, expected {expect_size}")
                encoding = response.headers.get("Content-Encoding", "identity")
                if compressed is not None and (encoding != "identity") != compressed:
                    raise RuntimeError(f"GET {path}: Content-Encoding {encoding}, expected "
                                       f"{'compressed' if compressed else 'identity'}")
            done += 1
            received += len(body)

    async with aiohttp.ClientSession(connector=connector, timeout=timeout, auto_decompress=False) as session:
        start = time.perf_counter()
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return done, elapsed, received


async def _get_json(url: str) -> dict:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        async with session.get(url) as response:
            response.raise_for_status()
            return await response.json()


def bench_serving(work: Path, data: Path, sizes: Sizes, rng: random.Random) -> dict:
    """Requests/s and server CPU per request, median of interleaved rounds (neighbours on a
    shared machine move requests/s by up to 2x between runs; CPU per request moves far less)."""
    with Server(data, work) as server:
        [own] = asyncio.run(_get_json(server.url + "/v1/logs"))["logs"]
        prefix = server.url + own["prefix"]
        full = own["size"] // TILE_WIDTH
        if full < 1:
            raise RuntimeError(f"the store holds {own['size']} entries: no full tile to serve")
        picks = [rng.randrange(full) for _ in range(sizes.http_requests)]
        tiles = [tile_path(Tile(level=0, index=i, width=TILE_WIDTH)) for i in picks]
        bundles = [tile_path(Tile(level=0, index=i, width=TILE_WIDTH, entries=True)) for i in picks]
        cases = {
            "healthz": (server.url, ["/healthz"] * sizes.http_requests, {}),
            "tiles": (prefix, tiles, {"expect_size": TILE_WIDTH * 32}),
            # What an aiohttp peer sends by default: the server compresses every bundle.
            "bundles": (prefix, bundles, {"headers": {"Accept-Encoding": "gzip, deflate"}, "compressed": True}),
            "bundles_identity": (prefix, bundles, {"headers": {"Accept-Encoding": "identity"}, "compressed": False}),
        }
        runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
        for base, paths, kwargs in cases.values():  # warm-up: connections, thread-local stores, caches
            asyncio.run(_fetch_all(base, paths[: 4 * sizes.http_concurrency], sizes.http_concurrency, **kwargs))
        for _ in range(sizes.http_rounds):
            for name, (base, paths, kwargs) in cases.items():
                cpu = server.cpu_s()
                done, elapsed, received = asyncio.run(_fetch_all(base, paths, sizes.http_concurrency, **kwargs))
                cpu = server.cpu_s() - cpu
                runs[name].append((done / elapsed, cpu / done * 1e6, received / done))
    rate = {name: round(statistics.median(r[0] for r in rs)) for name, rs in runs.items()}
    cpu_us = {name: round(statistics.median(r[1] for r in rs)) for name, rs in runs.items()}
    return {
        "http_shape": f"{sizes.http_requests} GETs per round over {sizes.http_concurrency} concurrent loopback "
                      f"connections, median of {sizes.http_rounds} interleaved rounds; tiles and bundles "
                      f"picked at random among {full} full ones",
        "healthz_served_per_s": rate["healthz"],
        "full_tiles_served_per_s": rate["tiles"],
        "full_bundles_served_per_s": rate["bundles"],
        "full_bundles_served_per_s_note": "Accept-Encoding: gzip, deflate (aiohttp's default): the server "
                                          "compresses each bundle (it picks deflate); _identity: uncompressed",
        "full_bundles_served_per_s_identity": rate["bundles_identity"],
        "server_cpu_us_per_request": cpu_us,
        "http_rounds_per_s": {name: [round(r[0]) for r in rs] for name, rs in runs.items()},
        "full_bundle_bytes": round(statistics.median(r[2] for r in runs["bundles_identity"])),
        "full_bundle_compressed_bytes": round(statistics.median(r[2] for r in runs["bundles"])),
    }


# -- 4. memory with a large store ---------------------------------------------


def body_pool(rng: random.Random, count: int, registry=None) -> list[tuple[str, int, bytes, bytes]]:
    """(type, schema, salted body, body hash) of ``count`` realistic, schema-valid events,
    reused across logs (shared by bench/node.py, bench/sync.py)."""
    registry = registry or load_registry()
    pool = []
    for _ in range(count):
        event = realistic_event(rng)
        version = registry.latest(event.type)
        registry.validate(event.type, version, event.body)
        salted = encode_body(event.body, rng.randbytes(16))
        pool.append((event.type, version, salted, body_hash(salted)))
    return pool


def write_log(store: Store, origin: str, size: int, pool: Sequence[tuple[str, int, bytes, bytes]],
              offset: int) -> None:
    """Another city's log as sync stores it, in transactions of BUILD_CHUNK entries.

    Consecutive entries take consecutive pool bodies (distinct within any bundle,
    so compression sees no repeats a real log would not have)."""
    signer = signer_from_seed(origin, seed_for(origin))
    tree = CompactTree()
    time_ms = 1_767_225_600_000  # 2026-01-01
    with store.write():
        lid = store.add_log(log_id=log_id(origin), origin=origin, verifier=str(signer.verifier),
                            own=False, root=EMPTY_ROOT)
    for first in range(0, size, BUILD_CHUNK):
        records, nodes = [], []
        for seq in range(first, min(size, first + BUILD_CHUNK)):
            type_, schema, salted, digest = pool[(seq + offset) % len(pool)]
            entry = Entry(network=NETWORK, origin=origin, seq=seq, time_ms=time_ms + seq * 60_000, type=type_,
                          schema=schema, body_hash=digest, body_size=len(salted))
            data = encode_entry(entry)
            leaf = entry_id(data)
            nodes.extend(tree.append(leaf))
            records.append((leaf, data, salted))
        done = tree.size == size
        note = sign_checkpoint(Checkpoint(origin=origin, size=size, root=tree.root()), signer) if done else None
        with store.write():
            store.insert_entries(lid, first, records, nodes)
            # C2SP tlog-checkpoint signed by the city's own key (name = origin), once complete.
            store.set_head(lid, size=tree.size, root=tree.root(), checkpoint=note, updated_ms=time_ms)


def build_store(data: Path, logs: int, per_log: int, rng: random.Random) -> float:
    """``logs`` logs of ``per_log`` entries: this city's own (authored) and ``logs - 1`` others."""
    start = time.perf_counter()
    node = make_node(data, "City 000")
    try:
        registry = load_registry()
        pool = body_pool(rng, min(per_log, 2_000), registry)
        author = node.author()
        remaining = per_log - 1
        while remaining:
            n = min(1_000, remaining)
            author.append([realistic_event(rng) for _ in range(n)])
            remaining -= n
        for j in range(1, logs):
            write_log(node.store, f"city-{j:03d}.bench.example/solidarity", per_log, pool, offset=j * 7)
    finally:
        node.close()
    return time.perf_counter() - start


def _log_paths(log: dict) -> Iterator[str]:
    """A log's checkpoint, every hash tile at every level, every entry bundle and body bundle."""
    prefix = log["prefix"]
    size = log["size"]
    yield prefix + "checkpoint"
    level, level_size = 0, size
    while level_size:
        for index in range(-(-level_size // TILE_WIDTH)):
            width = min(TILE_WIDTH, level_size - index * TILE_WIDTH)
            yield prefix + tile_path(Tile(level=level, index=index, width=width))
        if level_size < TILE_WIDTH:
            break
        level, level_size = level + 1, level_size // TILE_WIDTH
    for index in range(-(-size // TILE_WIDTH)):
        width = min(TILE_WIDTH, size - index * TILE_WIDTH)
        bundle = tile_path(Tile(level=0, index=index, width=width, entries=True))
        yield prefix + bundle
        yield prefix + "bodies/" + bundle.removeprefix("tile/entries/")


def _serve_and_measure(work: Path, data: Path, sizes: Sizes, budget: int | None) -> dict:
    with Server(data, work) as server:
        idle = server.memory()
        logs = asyncio.run(_get_json(server.url + "/v1/logs"))["logs"]
        paths = [p for log in logs for p in _log_paths(log)]
        one_pass = len(paths)
        if budget is not None:  # the same number of requests for every store
            paths = (paths * (budget // len(paths) + 1))[:budget]
        done, elapsed, _ = asyncio.run(
            _fetch_all(server.url, paths, sizes.http_concurrency, deadline_s=sizes.rss_deadline_s)
        )
        loaded = server.memory()
    return {
        "logs": len(logs),
        "entries": sum(log["size"] for log in logs),
        "one_pass": one_pass,
        "requests": done,
        "requests_per_s": round(done / elapsed),
        "idle_mb": round(idle["VmRSS"], 1),
        "rss_mb": round(loaded["VmRSS"], 1),
        "peak_mb": round(loaded["VmHWM"], 1),
    }


def bench_memory(work: Path, sizes: Sizes, rng: random.Random) -> dict:
    big_dir, small_dir = work / "rss-big", work / "rss-small"
    big_build = build_store(big_dir, sizes.rss_logs, sizes.rss_big, rng)
    small_build = build_store(small_dir, sizes.rss_logs, sizes.rss_small, rng)
    with Store(small_dir / "solidarity.db", readonly=True) as store:
        audited = audit_store(store)  # raises AuditFailure if the builder wrote anything invalid
    big = _serve_and_measure(work, big_dir, sizes, None)
    small = _serve_and_measure(work, small_dir, sizes, big["requests"])
    big_db = _db_file_bytes(big_dir / "solidarity.db")
    ratio = max(big["rss_mb"], small["rss_mb"]) / min(big["rss_mb"], small["rss_mb"])
    return {
        "serve_rss_mb": big["rss_mb"],
        "serve_rss_note": f"VmRSS of serve over {big['logs']} logs x {sizes.rss_big} entries "
                          f"({big['entries']} entries, {big_db / 2**20:.0f} MiB database) after "
                          f"{big['requests']} requests (one pass over every log is {big['one_pass']})",
        "serve_rss_peak_mb": big["peak_mb"],
        "serve_rss_idle_mb": big["idle_mb"],
        "serve_rss_small_mb": small["rss_mb"],
        "serve_rss_small_note": f"same, {small['logs']} logs x {sizes.rss_small} entries "
                                f"({small['entries']} entries), same request count",
        "serve_rss_small_peak_mb": small["peak_mb"],
        "rss_ratio": round(ratio, 3),
        "rss_flat": ratio < RSS_FLAT_RATIO,
        "rss_target_mb": RSS_TARGET_MB,
        "rss_target_met": big["peak_mb"] < RSS_TARGET_MB,
        "rss_load_requests_per_s": big["requests_per_s"],
        "rss_store_build_s": round(big_build, 1),
        "rss_small_store_build_s": round(small_build, 1),
        "rss_small_store_audited_logs": len(audited),
    }


# -- main ---------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small counts: the whole run in < 30 s")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    rng = random.Random(42)
    started = time.perf_counter()
    result: dict = {"quick": args.quick, "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
                    "aiohttp": aiohttp.__version__, "cpus": os.cpu_count()}
    # The 1M-entry store lives only for this run: the folder is removed on every exit path.
    with tempfile.TemporaryDirectory(prefix="solidarity-bench-") as tmp:
        work = Path(tmp)
        result.update(bench_authoring(work, sizes, rng))
        figures, size_data = bench_store_size(work, sizes, rng)
        result.update(figures)
        result.update(bench_serving(work, size_data, sizes, rng))
        result.update(bench_memory(work, sizes, rng))
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
