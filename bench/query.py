"""Query benchmark: the public read API of a node holding 200 cities, beside Datasette.

Run from the repository root with the dev venv::

    python bench/query.py              # 200 cities x 5,000 entries, 10 s per endpoint (several minutes)
    python bench/query.py --quick      # 20 x 500, 2 s per endpoint (what the smoke test runs)
    python bench/query.py --profile    # also py-spy the node under each endpoint's load
    python bench/query.py --keep DIR   # build the stores in DIR once, reuse them on later runs

Prints ONE JSON object. A cut of a full run on 2 cores shared with other work
(1M entries; 8 connections, 10 s per endpoint and side in 5 alternating
slices; server CPU per request from /proc schedstat; loadavg ~2.4)::

    {"store": {"entries": 1000000, "view_entries_per_s": 9747, ...},
     "endpoints": {
       "pledges_filter":  {"node": {"rps": 19004, "p50_ms": 0.41, "p99_ms": 0.61, "server_cpu_us_per_request": 53,
                                    "first_request_ms": 21, ...},
                           "datasette": {"rps": 388, "p50_ms": 20.1, "p99_ms": 33.6, "server_cpu_us_per_request": 3103},
                           "ratio_vs_datasette": 49.0, "target_met": true},
       "pledges_by_time": {"node": {"rps": 19035, "p99_ms": 0.66, "first_request_ms": 74, ...}, "datasette": {"rps": 391, "p99_ms": 34.5, ...},
                           "ratio_vs_datasette": 48.6},
       "summary":         {"node": {"rps": 13286, "p99_ms": 1.31, "first_request_ms": 481, ...},
                           "datasette": {"rps": 23, "p99_ms": 926, ...}, "ratio_vs_datasette": 578},
       "event":           {"node": {"rps": 5892, "p50_ms": 1.14, "p99_ms": 4.47, "server_cpu_us_per_request": 159},
                           "datasette": {"rps": 1342, "p50_ms": 5.44, "p99_ms": 12.4, "server_cpu_us_per_request": 815},
                           "ratio_vs_datasette": 4.39},
       "event_unseen":    {"node": {"rps": 5916, "p99_ms": 2.91, "server_cpu_us_per_request": 149, ...},
                           "datasette": {"rps": 1379, "p99_ms": 12.8, "server_cpu_us_per_request": 784},
                           "ratio_vs_datasette": 4.29}},
     "target_met": true, "method": "..."}

(``first_request_ms``: from a later full run, at commit f074081, loadavg ~1.5;
its other node figures were as high or higher: summary 18,482 rps, p99 0.52 ms.)

The node's list and summary figures are answers kept per database state
(``node.api_routes``): a repeated request is a lookup, the first after a
change costs ``first_request_ms``: a scan of one covering index over the
facts the view keeps per item (delivery, retraction, accepts; before f074081
kept them, per-item joins made that 0.8-1.1 s per list and 4-5 s for the
summary). An event is computed for each id the node has not answered yet (its proof from kept
tile hashes): ``event`` draws ids from a 20,000-entry sample, so some repeat
and may be kept answers; ``event_unseen`` never asks for an id twice.
Other processes on a shared machine move these figures by up to 1.5x between
runs (``loadavg_*`` in the JSON tell when); compare both sides of one run.

What is measured, and why that way:

1. The node: a real data folder (``init_node``, seeded key) whose store holds
   its own log and 199 other cities' logs (quick: 19), each city's entries
   written straight through the Store API as sync stores them, with
   checkpoints signed by per-city seeded keys. The entries are a realistic
   mix: the city profile, pledges, offers and requests, progress on the
   city's own pledges and offers, accepts of *other* cities' offers and
   requests (a few naming entries never received: unresolved), reception
   reports, statements and endorsements of other cities' statements, and
   retractions. A network file names every city as a founder, so membership
   and the network digest are computed as on a real member node (gossip is
   slowed to one round per 10 minutes: its peers do not exist).
2. The view: ``node.view.ViewUpdater(registry).catch_up(store)`` over the
   whole store, timed (entries/s); every entry must come out valid.
3. The node serves with the real ``python -m node.cli serve`` on 127.0.0.1:0.
4. Datasette (its own venv, never a project dependency; ``--datasette``)
   serves the same rows from an equivalent SQLite file in immutable mode
   (``-i``) with facets, facet suggestions and counts off: ``items`` holds
   every pledge, offer and request as ``/v1/pledges`` answers it (statuses,
   delivered, accepted: materialised by the node's own query), ``events``
   every entry as ``/v1/events/{id}`` answers it, its inclusion proof and
   checkpoint included (precomputed: Datasette only looks the row up).
   Its fastest setting: uvicorn's access log off (the CLI has no flag; a
   three-line launcher turns it off), httptools and uvloop when its venv has
   them, 4 SQL threads like the node's readers, the node's 10 s query limit.
   Endpoint pairs: ``/v1/pledges?kind=relocation`` and
   ``items.json?type=pledge&kind=relocation&_sort=time_ms``; pledges by time:
   the API has no sort parameter (docs/api.md: lists are ordered by
   ``time_ms``, then ``id``), so ``/v1/pledges`` against ``_sort=time_ms``
   (the same order; ``_sort_desc`` would be another one); ``/v1/summary``
   against a canned query grouping every counted item by type, category,
   unit and status over a covering index; ``/v1/events/{id}`` against the
   row page ``events/{id}.json`` (``event`` and ``event_unseen``, see above). The first page of each side and one event
   are compared field by field (``equivalence``).
5. The same bounded load against both: N concurrent keep-alive connections
   for a fixed time per endpoint, every request's latency recorded;
   requests/s (200 answers only), p50 and p99, errors, and the server's CPU
   per request (/proc schedstat). The time is cut into slices that alternate
   between the sides (node, Datasette, node, ...), so load from other
   processes on the machine weighs on both alike.

The client shares the machine's cores with the server it loads (and the idle
other server), so it is a lean one (``Client``): HTTP/1.1 on a raw asyncio
protocol that writes each GET and reads the status line, the framing headers
and the body, nothing else: ~20-30 us of CPU per request where an aiohttp
client spent ~55-70 us, about what the node spends serving a cached answer,
so the client capped both sides and hid their difference. Its cost is in the
JSON (``client_cpu_us_per_request``). Requests/s are still a lower bound on
this machine, the same bound for both sides. All traffic goes to 127.0.0.1; every loop is bounded by a
deadline and a count; both servers are stopped and every temporary folder
removed, also on failure.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import dataclasses
import datetime
import json
import os
import random
import re
import selectors
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# This file is bench/query.py, next to bench/node.py: with bench/ first on
# sys.path, "import node" would import bench/node.py instead of the package.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]

import aiohttp  # noqa: E402

from bench.node import _CATEGORIES, _KINDS, _UNITS, NETWORK, _dates, _description, cpu_s, make_node, seed_for  # noqa: E402
from bench.node import stop_process  # noqa: E402
from node import queries  # noqa: E402
from node.config import load_config  # noqa: E402
from node.local import load_registry  # noqa: E402
from node.store import Store  # noqa: E402
from node.view import ViewUpdater  # noqa: E402
from protocol.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint  # noqa: E402
from protocol.entry import decode_entry, entry_id, make_entry  # noqa: E402
from protocol.entry import log_id as compute_log_id  # noqa: E402
from protocol.keys import parse_verifier_key, signer_from_seed  # noqa: E402
from protocol.merkle import EMPTY_ROOT, CompactTree, LeafHashes, check_inclusion, prove_inclusion  # noqa: E402
from protocol.network import AdmissionRule, Founder, NetworkFile, format_network_file, sign_network_file  # noqa: E402

#: The node's processes log only problems; gossip has no real peers here, so one round per 10 min.
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "SOLIDARITY_LOGGING_LEVEL": "warning",
       "SOLIDARITY_GOSSIP_INTERVAL_MS": "600000"}
START_TIMEOUT_S = 180.0
TARGET_RATIO = 3.0
#: Entries per Store transaction while building (bounded memory).
BUILD_CHUNK = 8_192
#: Every list request asks for this many rows, on both sides.
PAGE = 50
DEFAULT_DATASETTE = Path("/tmp/datasette-venv/bin/datasette")
COUNTRIES = ("GR", "IT", "ES", "DE", "FR", "NL", "BE", "PT", "AT", "PL", "SE", "DK", "FI", "IE", "CZ")
LANGUAGES = ("en", "de", "fr", "it", "es", "el", "nl", "pt", "pl", "sv")


@dataclass(frozen=True, slots=True, kw_only=True)
class Sizes:
    cities: int
    per_city: int
    concurrency: int
    duration_s: float
    warmup_requests: int
    event_ids: int
    slices: int  # duration_s is cut into this many alternating slices per side


FULL = Sizes(cities=200, per_city=5_000, concurrency=8, duration_s=10.0, warmup_requests=64, event_ids=20_000,
             slices=5)
QUICK = Sizes(cities=20, per_city=500, concurrency=8, duration_s=2.0, warmup_requests=16, event_ids=2_000,
              slices=2)


# -- the store -------------------------------------------------------------------------


@dataclass(slots=True)
class Shared:
    """What later cities can refer to in other cities' logs (accepts, endorsements)."""

    targets: list[tuple[str, str, int]] = field(default_factory=list)  # (log id, entry id, quantity)
    statements: list[tuple[str, str]] = field(default_factory=list)  # (log id, entry id)


@dataclass(slots=True)
class CityState:
    """A city's own entries that its later entries refer to (progress, retractions)."""

    progressable: list[list] = field(default_factory=list)  # [entry id, quantity, delivered]
    retractable: list[str] = field(default_factory=list)
    retracted: set[str] = field(default_factory=set)
    targets: list[tuple[str, str, int]] = field(default_factory=list)
    statements: list[tuple[str, str]] = field(default_factory=list)


_MIX = (("pledge", 7), ("offer", 12), ("request", 9), ("progress", 16), ("accept", 14), ("report", 26),
        ("statement", 3), ("endorse", 6), ("retract", 4), ("city", 0.2))
_TYPES = tuple(t for t, _ in _MIX)
_WEIGHTS = tuple(w for _, w in _MIX)
_REASONS = ("The places are needed locally until spring.", "Entered twice by mistake.",
            "The programme was cancelled by the regional government.", "Superseded by a newer offer.")
_TITLES = ("Safe harbours now", "Relocation works: our first year", "A call for shared responsibility",
           "Cities ready to receive", "Winter reception appeal")


def profile(name: str, country: str, slug: str) -> dict:
    return {"name": name, "country": country, "urls": [f"https://www.{slug}.example/solidarity-city"],
            "contact": f"solidarity-office@{slug}.example", "languages": ["en", LANGUAGES[len(slug) % len(LANGUAGES)]]}


def next_body(rng: random.Random, own: CityState, shared: Shared, city: dict) -> tuple[str, dict]:
    """One event of a city, by the mix; an event whose reference has no candidate becomes a report."""
    type_ = rng.choices(_TYPES, weights=_WEIGHTS)[0]
    if type_ == "progress" and own.progressable:
        item = rng.choice(own.progressable)
        item[2] = min(item[1] * 11 // 10 + 1, item[2] + rng.randrange(1, max(2, item[1] // 3)))
        return type_, {"ref": item[0], "delivered": item[2]}
    if type_ == "accept" and shared.targets:
        if rng.random() < 0.02:  # names an entry this node has not received: shown unresolved
            return type_, {"log": rng.choice(shared.targets)[0], "ref": rng.randbytes(32).hex()}
        log, ref, quantity = rng.choice(shared.targets)
        body = {"log": log, "ref": ref}
        if rng.random() < 0.7:
            body["quantity"] = rng.randrange(1, quantity + 1)
        return type_, body
    if type_ == "endorse" and shared.statements:
        log, ref = rng.choice(shared.statements)
        return type_, {"log": log, "ref": ref}
    if type_ == "retract" and own.retractable:
        ref = own.retractable.pop(rng.randrange(len(own.retractable)))
        own.retracted.add(ref)
        return type_, {"ref": ref, "reason": rng.choice(_REASONS)}
    if type_ == "statement":
        text = " ".join(_description(rng) for _ in range(rng.randrange(2, 6)))
        return type_, {"title": rng.choice(_TITLES), "text": text, "language": "en"}
    if type_ == "city":
        return type_, city
    first, last = _dates(rng)
    if type_ == "pledge":
        body = {"kind": rng.choice(_KINDS), "places": rng.randrange(1, 500), "from": first, "until": last}
        if rng.random() < 0.8:
            body["description"] = _description(rng)
        return type_, body
    if type_ in ("offer", "request"):
        return type_, {"category": rng.choice(_CATEGORIES), "quantity": rng.randrange(1, 1000),
                       "unit": rng.choice(_UNITS), "from": first, "until": last, "description": _description(rng)}
    body = {"period_start": first, "period_end": last, "arrivals": rng.randrange(0, 5000),
            "in_reception": rng.randrange(0, 5000), "free_places": rng.randrange(0, 1000)}
    if rng.random() < 0.4:
        body["note"] = _description(rng)
    return "report", body


def _remember(own: CityState, log: str, type_: str, body: dict, entry_id: str) -> None:
    if type_ in ("pledge", "offer"):
        own.progressable.append([entry_id, body.get("places", body.get("quantity")), 0])
    if type_ in ("offer", "request"):
        own.targets.append((log, entry_id, body["quantity"]))
    if type_ == "statement":
        own.statements.append((log, entry_id))
    # Some progress reports become retractable too (about one in ten): a retracted one makes
    # the view fall back to the item's previous figure.
    if type_ in ("pledge", "offer", "request", "accept", "statement", "report") or (
            type_ == "progress" and len(own.retractable) % 10 == 0):
        own.retractable.append(entry_id)


def write_city(store: Store, *, origin: str, seed: bytes, city: dict, size: int, rng: random.Random,
               shared: Shared, registry, validate: bool, own: bool = False) -> None:
    """One city's log through the Store API: entries, tile hashes and a checkpoint signed by its key.

    For the node's own log (``own``), entry 0 (the profile ``init_node`` wrote) is kept
    and the log continues after it, signed with the same seeded key."""
    signer = signer_from_seed(origin, seed)
    log = compute_log_id(origin)
    state = CityState()
    if own:
        lid, first = store.own_log().lid, store.own_log().size
        tree = CompactTree.from_reader(first, store.reader(lid))
    else:
        with store.write():
            lid = store.add_log(log_id=log, origin=origin, verifier=str(signer.verifier), own=False,
                                root=EMPTY_ROOT)
        first, tree = 0, CompactTree()
    # Author time: from 2025-06-01 over ~18 months, cities interleaved.
    start_ms = 1_748_736_000_000 + rng.randrange(0, 86_400_000)
    step_ms = 540 * 86_400_000 // max(1, size)
    for chunk in range(first, size, BUILD_CHUNK):
        records, nodes = [], []
        for seq in range(chunk, min(size, chunk + BUILD_CHUNK)):
            type_, body = ("city", city) if seq == 0 else next_body(rng, state, shared, city)
            schema = registry.latest(type_)
            if validate:
                registry.validate(type_, schema, body)
            entry, data, salted = make_entry(network=NETWORK, origin=origin, seq=seq,
                                             time_ms=start_ms + seq * step_ms + rng.randrange(60_000),
                                             type=type_, schema=schema, body=body, salt=rng.randbytes(16))
            leaf = entry_id(data)
            nodes.extend(tree.append(leaf))
            records.append((leaf, data, salted))
            _remember(state, log, type_, body, leaf.hex())
        note = sign_checkpoint(Checkpoint(origin=origin, size=tree.size, root=tree.root()), signer)
        with store.write():
            store.insert_entries(lid, chunk, records, nodes)
            # C2SP tlog-checkpoint signed by the city's own key (name = origin).
            store.set_head(lid, size=tree.size, root=tree.root(), checkpoint=note, updated_ms=start_ms)
    shared.targets.extend(state.targets)
    shared.statements.extend(state.statements)


def city_names(n: int) -> list[tuple[str, str, str, bytes]]:
    """(name, country, origin, key seed) of every city; city 0 is the node's own."""
    out = []
    for j in range(n):
        slug = f"city-{j:03d}"
        origin = f"{slug}.bench.example/solidarity"
        out.append((f"City {j:03d}", COUNTRIES[j % len(COUNTRIES)], origin, seed_for(origin)))
    return out


def build_node(data: Path, sizes: Sizes, rng: random.Random) -> dict:
    """The node folder: its own log and ``cities - 1`` others, one network file naming them all."""
    registry = load_registry()
    start = time.perf_counter()
    node = make_node(data, "City 000")
    try:
        own = node.store.own_log()
        shared = Shared()
        founders = [Founder(name="City 000", key=node.signer.verifier, url="http://127.0.0.1:1/city-000")]
        signers = [node.signer]
        for j, (name, country, origin, seed) in enumerate(city_names(sizes.cities)[1:], start=1):
            write_city(node.store, origin=origin, seed=seed, city=profile(name, country, f"city-{j:03d}"),
                       size=sizes.per_city, rng=rng, shared=shared, registry=registry, validate=j == 1)
            signer = signer_from_seed(origin, seed)
            signers.append(signer)
            founders.append(Founder(name=name, key=signer.verifier, url=f"http://127.0.0.1:1/city-{j:03d}"))
        # Built last, so its accepts and endorsements can name every other city's entries.
        write_city(node.store, origin=own.origin, seed=seed_for("City 000"),
                   city=profile("City 000", "GR", "city-000"), size=sizes.per_city,
                   rng=rng, shared=shared, registry=registry, validate=True, own=True)
        built = time.perf_counter() - start
        network = NetworkFile(name=NETWORK, rule=AdmissionRule(min_vouches=2, share_percent=50),
                              founders=tuple(founders))
        for signer in signers:
            network = sign_network_file(network, signer)
        load_config(data, env={}).network_path.write_text(format_network_file(network), encoding="utf-8")

        start = time.perf_counter()
        applied = ViewUpdater(registry).catch_up(node.store)
        view_s = time.perf_counter() - start
        conn = node.store.conn
        statuses = dict(conn.execute("SELECT status, COUNT(*) FROM view_events GROUP BY status").fetchall())
        by_type = dict(conn.execute("SELECT type, COUNT(*) FROM view_events GROUP BY type").fetchall())
        retracted = conn.execute("SELECT COUNT(*) FROM view_retracts").fetchone()[0]
        unresolved = conn.execute(
            "SELECT COUNT(*) FROM view_accepts a WHERE NOT EXISTS (SELECT 1 FROM view_events e WHERE e.id = a.ref)"
        ).fetchone()[0]
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        node.close()
    if set(statuses) != {"valid"}:
        raise RuntimeError(f"the builder wrote entries the view does not count: {statuses}")
    entries = sum(statuses.values())
    return {
        "cities": sizes.cities,
        "entries_per_city": sizes.per_city,
        "entries": entries,
        "by_type": dict(sorted(by_type.items())),
        "retracted": retracted,
        "unresolved_accepts": unresolved,
        "build_s": round(built, 1),
        "view_entries": applied,
        "view_build_s": round(view_s, 1),
        "view_entries_per_s": round(applied / view_s),
        "view_note": "node.view.ViewUpdater(registry).catch_up(store) over the whole store, one process",
        "db_mib": round((data / "solidarity.db").stat().st_size / 2**20, 1),
        "network_file": f"{sizes.cities} founders, all signed",
    }


# -- the equivalent SQLite file for Datasette --------------------------------------------

ITEM_COLUMNS = ("id", "type", "log_id", "city", "country", "seq", "time_ms", "kind", "quantity", "unit",
                "from", "until", "description", "delivered", "accepted", "accepts", "oversubscribed", "status",
                "retraction_id", "retraction_reason", "equivocating")
EVENT_COLUMNS = ("id", "log_id", "origin", "verifier_key", "city", "seq", "type", "time_ms", "status", "reason",
                 "entry_base64", "entry_fields", "body", "proof_leaf_index", "proof_tree_size",
                 "proof_inclusion_path", "checkpoint")

SUMMARY_SQL = (
    "SELECT type, kind, unit, status, COUNT(*) AS count, SUM(quantity) AS quantity, "
    "SUM(delivered) AS delivered, SUM(accepted) AS accepted FROM items "
    "WHERE status != 'retracted' AND equivocating = 0 GROUP BY type, kind, unit, status "
    "ORDER BY type, kind, unit, status"
)


def _q(name: str) -> str:
    return '"' + name + '"'


def build_datasette_db(node_db: Path, target: Path, as_of: str) -> dict:
    """``items`` and ``events`` as the node's API answers them, from the node's own view and queries."""
    start = time.perf_counter()
    out = sqlite3.connect(str(target))
    out.execute("PRAGMA journal_mode=OFF")
    out.execute("PRAGMA synchronous=OFF")
    out.execute(f"CREATE TABLE items ({', '.join(_q(c) + (' TEXT PRIMARY KEY' if c == 'id' else '') for c in ITEM_COLUMNS)})")
    out.execute(f"CREATE TABLE events ({', '.join(_q(c) + (' TEXT PRIMARY KEY' if c == 'id' else '') for c in EVENT_COLUMNS)})")
    with Store(node_db, readonly=True) as store:
        cur = store.conn.execute(f"SELECT * FROM ({queries._ITEMS})", {"as_of": as_of})
        names = [d[0] for d in cur.description]
        rows = []
        for raw in cur:
            r = queries._item_row(dict(zip(names, raw, strict=True)))
            retraction = r.pop("retraction")
            r["retraction_id"] = retraction["id"] if retraction else None
            r["retraction_reason"] = retraction["reason"] if retraction else None
            rows.append(tuple(r[c] for c in ITEM_COLUMNS))
        out.executemany(f"INSERT INTO items VALUES ({', '.join('?' for _ in ITEM_COLUMNS)})", rows)
        items_s = time.perf_counter() - start
        for state in store.logs():
            out.executemany(f"INSERT INTO events VALUES ({', '.join('?' for _ in EVENT_COLUMNS)})",
                            _event_rows(store, state))
    out.execute("CREATE INDEX items_type_time ON items (type, time_ms, id)")
    out.execute("CREATE INDEX items_type_kind_time ON items (type, kind, time_ms, id)")
    # Datasette's best case for the summary: a covering index in GROUP BY order (no table reads, no sort).
    out.execute("CREATE INDEX items_summary ON items (type, kind, unit, status, equivocating, quantity, delivered, "
                "accepted)")
    out.commit()
    out.execute("ANALYZE")
    out.execute("VACUUM")
    count = out.execute("SELECT (SELECT COUNT(*) FROM items), (SELECT COUNT(*) FROM events)").fetchone()
    out.close()
    return {"items": count[0], "events": count[1], "build_s": round(time.perf_counter() - start, 1),
            "items_materialise_s": round(items_s, 1), "mib": round(target.stat().st_size / 2**20, 1)}


def _event_rows(store: Store, state):
    """Every entry of one log as ``/v1/events/{id}`` answers it (``node.queries.event``),
    with proofs from an in-memory tree (one pass, not one stored-hash read per proof)."""
    conn = store.conn
    cp = open_checkpoint(state.checkpoint, parse_verifier_key(state.verifier)).checkpoint
    checkpoint = state.checkpoint.decode()
    city = conn.execute("SELECT name FROM view_cities WHERE lid = ?", (state.lid,)).fetchone()
    views = {seq: (status, reason, body) for seq, status, reason, body in conn.execute(
        "SELECT seq, status, reason, body FROM view_events WHERE lid = ?", (state.lid,))}
    stored = list(store.entries(state.lid, 0, cp.size))
    reader = LeafHashes([s.leaf for s in stored])
    for s in stored:
        entry = decode_entry(s.entry)
        status, reason, body = views[s.seq]
        fields = {"version": entry.version, "network": entry.network, "origin": entry.origin, "seq": entry.seq,
                  "time_ms": entry.time_ms, "type": entry.type, "schema": entry.schema,
                  "body_hash": entry.body_hash.hex(), "body_size": entry.body_size}
        path = [h.hex() for h in prove_inclusion(s.seq, cp.size, reader)]
        yield (s.leaf.hex(), state.log_id, state.origin, state.verifier, city[0] if city else None, s.seq,
               entry.type, entry.time_ms, status, reason, base64.b64encode(s.entry).decode(),
               json.dumps(fields, separators=(",", ":")), body, s.seq, cp.size,
               json.dumps(path, separators=(",", ":")), checkpoint)


# -- servers ---------------------------------------------------------------------------


class Server:
    """A server process on 127.0.0.1 that prints its URL; always stopped on exit."""

    def __init__(self, argv: list[str], env: dict, work: Path, ready: re.Pattern[str], name: str) -> None:
        self.argv, self.env, self.ready, self.name = argv, env, ready, name
        self.log_path = work / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.url = ""

    def __enter__(self) -> Server:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env=self.env)
        try:
            self.url = self._wait_ready()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_ready(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        seen = b""
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            while time.monotonic() < deadline and len(seen) < 1_000_000:
                if not sel.select(max(0.0, deadline - time.monotonic())):
                    break
                line = self.proc.stdout.readline()
                if not line:
                    break
                seen += line
                self._log.write(line)
                match = self.ready.search(line.decode(errors="replace"))
                if match:
                    url = match.group(1)
                    if not url.startswith("http://127.0.0.1:"):
                        raise RuntimeError(f"{self.name} bound {url}, expected loopback")
                    # From here on the output goes to the log file only (read on failure).
                    self._drain = _Drain(self.proc.stdout, self._log)
                    return url
        raise RuntimeError(f"{self.name} did not start: {seen[-2000:].decode(errors='replace')}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def settle(self, deadline_s: float = 600.0, idle_share: float = 0.05) -> float:
        """Wait until the process is idle (start-up work done: the view's catch-up, the federation's
        first scan of every log); returns the seconds waited."""
        start = time.perf_counter()
        while time.perf_counter() - start < deadline_s:
            before = self.cpu_s()
            time.sleep(1.0)
            if self.cpu_s() - before < idle_share:
                break
        return round(time.perf_counter() - start, 1)

    def cpu_s(self) -> float:
        return cpu_s(self.pid)

    def __exit__(self, *exc: object) -> None:
        proc = self.proc
        stop_process(proc)
        drain = getattr(self, "_drain", None)
        if drain is not None:
            drain.join()
        if proc is not None and proc.stdout is not None:
            proc.stdout.close()
        self._log.close()


class _Drain:
    """Copies a child's remaining output to its log file, so a full pipe never blocks it."""

    def __init__(self, stream, sink) -> None:
        import threading

        self._thread = threading.Thread(target=self._run, args=(stream, sink), daemon=True)
        self._thread.start()

    @staticmethod
    def _run(stream, sink) -> None:
        with contextlib.suppress(ValueError, OSError):
            for line in iter(stream.readline, b""):
                sink.write(line)

    def join(self) -> None:
        self._thread.join(timeout=5)


def node_server(data: Path, work: Path) -> Server:
    return Server([sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--listen", "127.0.0.1:0"],
                  ENV, work, re.compile(r"serving on (\S+)"), "node")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: Runs ``datasette serve`` with uvicorn's access log off (one log line per request is not
#: Datasette's fastest setting, and the CLI has no flag for it); prints what uvicorn runs on.
_DATASETTE_LAUNCHER = """
import sys, uvicorn
from datasette import cli
run = uvicorn.run
def quiet(app, **kwargs):
    kwargs["access_log"] = False
    print("uvicorn", uvicorn.__version__, flush=True)
    run(app, **kwargs)
cli.uvicorn.run = quiet
sys.argv = ["datasette", *sys.argv[1:]]
cli.cli()
"""


def _interpreter(script: Path) -> str:
    """The Python a console script (datasette's) runs with: its own venv, not ours."""
    first = script.read_bytes()[:300].split(b"\n", 1)[0].decode(errors="replace")
    if first.startswith("#!") and Path(first[2:].split()[0]).exists():
        return first[2:].split()[0]
    return str(script.parent / "python")


def datasette_server(exe: Path, db: Path, metadata: Path, work: Path, threads: int) -> Server:
    port = free_port()
    argv = [_interpreter(exe), "-c", _DATASETTE_LAUNCHER,
            "serve", "-i", str(db), "-h", "127.0.0.1", "-p", str(port), "-m", str(metadata),
            "--setting", "suggest_facets", "off", "--setting", "allow_facet", "off",
            "--setting", "default_facet_size", "0", "--setting", "num_sql_threads", str(threads),
            "--setting", "default_page_size", str(PAGE), "--setting", "allow_download", "off",
            # The node's own limit (node.context.READ_TIMEOUT_S); Datasette's default of 1 s
            # refuses the summary's aggregate over every item of a large network.
            "--setting", "sql_time_limit_ms", "10000"]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return Server(argv, env, work, re.compile(r"Uvicorn running on (http://\S+)"), "datasette")


def datasette_versions(exe: Path) -> dict:
    """Datasette's version and what its uvicorn runs on (httptools and uvloop are its fast paths)."""
    code = ("import datasette.version as d, uvicorn, importlib.util as u; print(d.__version__, uvicorn.__version__, "
            "bool(u.find_spec('httptools')), bool(u.find_spec('uvloop')))")
    done = subprocess.run([_interpreter(exe), "-c", code], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        return {"error": done.stderr[-500:]}
    version, uvicorn, httptools, uvloop = done.stdout.split()
    return {"datasette": version, "uvicorn": uvicorn, "http": "httptools" if httptools == "True" else "h11",
            "loop": "uvloop" if uvloop == "True" else "asyncio", "access_log": False,
            "settings": "immutable (-i), suggest_facets off, allow_facet off, default_facet_size 0, "
                        "num_sql_threads 4 (the node's read threads), _nocount/_nofacet/_nosuggest and "
                        "_shape=array on every list request"}


# -- the load --------------------------------------------------------------------------


class HttpError(Exception):
    """The server closed the connection or sent something this client does not parse."""


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a GET and parses the answer.

    The load generator shares the cores with the server it measures, so it does as
    little as it can per request: one write, then the status line, the headers it needs
    (Content-Length, Transfer-Encoding, Connection) and the body, straight from the
    socket's buffer. No cookies, no redirects, no decompression; the same for both sides.
    """

    def __init__(self, host: bytes) -> None:
        self._host = host
        self._buf = bytearray()
        self._waiter: asyncio.Future | None = None
        self._transport: asyncio.Transport | None = None
        self._head_end = -1  # where the body starts, once the headers are in
        self._length = -1  # Content-Length, or -1 for chunked
        self._status = 0
        self._close_after = False
        self.closed = False

    def connection_made(self, transport) -> None:
        self._transport = transport

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(HttpError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if self._waiter is not None and not self._waiter.done():
            try:
                self._parse()
            except HttpError as exc:
                self._waiter.set_exception(exc)

    def get(self, path: str) -> asyncio.Future:
        if self.closed or self._transport is None:
            raise HttpError("connection closed")
        self._waiter = asyncio.get_running_loop().create_future()
        self._head_end, self._length = -1, -1
        self._transport.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: " + self._host + b"\r\n\r\n")
        return self._waiter

    def _parse(self) -> None:
        buf = self._buf
        if self._head_end < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > 65536:
                    raise HttpError("headers longer than 64 KiB")
                return
            lines = bytes(buf[:end]).split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise HttpError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
            self._status = int(parts[1])
            length, chunked, close = 0, False, parts[0] == b"HTTP/1.0"
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"connection":
                    close = value.strip().lower() == b"close"
            self._head_end, self._length, self._close_after = end + 4, -1 if chunked else length, close
        if self._length >= 0:
            total = self._head_end + self._length
            if len(buf) < total:
                return
            body = bytes(buf[self._head_end:total])
            del buf[:total]
        else:
            parsed = _dechunk(buf, self._head_end)
            if parsed is None:
                return
            body, total = parsed
            del buf[:total]
        if self._close_after:
            self.closed = True
            self._transport.close()
        self._waiter.set_result((self._status, body))

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


def _dechunk(buf: bytearray, pos: int) -> tuple[bytes, int] | None:
    """A chunked body starting at ``pos``, and where it ends; None while incomplete."""
    parts = []
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";")[0], 16)
        if size == 0:
            end = buf.find(b"\r\n\r\n", eol)  # no trailers expected: the final CRLF
            return (b"".join(parts), end + 4) if end >= 0 else None
        if len(buf) < eol + 2 + size + 2:
            return None
        parts.append(bytes(buf[eol + 2:eol + 2 + size]))
        pos = eol + 2 + size + 2


class Client:
    """``concurrency`` keep-alive connections to one server; a lost connection is reopened."""

    def __init__(self, base: str) -> None:
        host, _, port = base.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self._hostport = f"{host}:{port}".encode()
        self._conns: list[_Connection] = []

    async def connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Connection(self._hostport), self.host, self.port)
        self._conns.append(conn)
        return conn

    async def get(self, conn: _Connection, path: str, timeout: float = 60.0) -> tuple[_Connection, int, bytes]:
        """(the connection to use next, status, body); status 0 when the request failed."""
        try:
            if conn.closed:
                conn = await self.connect()
            status, body = await asyncio.wait_for(conn.get(path), timeout) if timeout else await conn.get(path)
        except (HttpError, OSError, TimeoutError):
            conn.close()
            return conn, 0, b""
        return conn, status, body

    def close(self) -> None:
        for conn in self._conns:
            conn.close()


@dataclass(slots=True)
class Sample:
    """What one slice of load against one server gave."""

    latencies: list[float]
    statuses: collections.Counter
    received: int
    seconds: float
    client_cpu_s: float
    server_cpu_s: float = 0.0
    first_ms: float | None = None
    first_error: str | None = None


async def load(base: str, paths: Callable[[random.Random], str], *, concurrency: int, duration_s: float,
               warmup: int, seed: int, first: bool = True) -> Sample:
    """``concurrency`` keep-alive connections for ``duration_s``; per-request latency of each GET.
    With ``first``, the first request is timed apart (the endpoint's cold answer)."""
    rng = random.Random(seed)
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    received = 0
    cap = 2_000_000  # a bound on the loop whatever the rate
    client = Client(base)
    first_ms, first_error = None, None
    try:
        conns = [await client.connect() for _ in range(concurrency)]
        if first:
            first_start = time.perf_counter()
            conns[0], first_status, body = await client.get(conns[0], paths(rng))
            first_ms = (time.perf_counter() - first_start) * 1000
            if first_status != 200:
                first_error = f"{first_status}: {body[:300].decode(errors='replace')}"
        todo = iter(range(warmup))

        async def warm(i: int) -> None:
            for _ in todo:
                conns[i], _, _ = await client.get(conns[i], paths(rng))

        await asyncio.gather(*(warm(i) for i in range(concurrency)))
        stop_at = time.perf_counter() + duration_s
        perf_counter = time.perf_counter

        async def worker(i: int) -> None:
            nonlocal received
            conn = conns[i]
            while perf_counter() < stop_at and len(latencies) < cap:
                path = paths(rng)
                t0 = perf_counter()
                # No per-request timer (wait_for costs a task per call): the run is bounded by
                # the deadline, and a server that stops answering fails the whole run below.
                conn, status, body = await client.get(conn, path, timeout=0)
                latencies.append(perf_counter() - t0)
                statuses[status] += 1
                received += len(body)

        start, cpu = time.perf_counter(), time.process_time()
        await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(concurrency))), duration_s + 60)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        client.close()
    return Sample(latencies, statuses, received, elapsed, cpu, first_ms=first_ms, first_error=first_error)


def summarize(samples: Sequence[Sample]) -> dict:
    latencies = sorted(x for s in samples for x in s.latencies)
    statuses: collections.Counter[int] = sum((s.statuses for s in samples), collections.Counter())
    ok, n = statuses.get(200, 0), len(latencies)
    seconds = sum(s.seconds for s in samples)
    first = samples[0]
    return {
        "rps": round(ok / seconds, 1),
        "p50_ms": round(_percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 99) * 1000, 2),
        "requests": n,
        "errors": n - ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "mean_bytes": round(sum(s.received for s in samples) / max(1, n)),
        "first_request_ms": round(first.first_ms or 0.0, 2),
        **({"first_request_error": first.first_error} if first.first_error is not None else {}),
        "seconds": round(seconds, 2),
        "slices": len(samples),
        "server_cpu_us_per_request": round(sum(s.server_cpu_s for s in samples) / max(1, n) * 1e6),
        "client_cpu_us_per_request": round(sum(s.client_cpu_s for s in samples) / max(1, n) * 1e6),
    }


def _percentile(sorted_values: Sequence[float], p: float) -> float:
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def run_slice(server: Server, paths, sizes: Sizes, seed: int, *, first: bool) -> Sample:
    """One slice; the first of an endpoint times its cold request and warms up, later ones
    only open their connections with one request each."""
    cpu = server.cpu_s()
    sample = asyncio.run(load(server.url, paths, concurrency=sizes.concurrency,
                              duration_s=sizes.duration_s / sizes.slices,
                              warmup=sizes.warmup_requests if first else sizes.concurrency, seed=seed, first=first))
    sample.server_cpu_s = server.cpu_s() - cpu
    return sample


def run_pair(node: Server, ds: Server | None, node_paths, ds_paths, sizes: Sizes, seed: int,
             profile: Path | None = None) -> tuple[dict, dict | None]:
    """Both sides in alternating slices (node, Datasette, node, ...), each slice a fresh set of
    connections, its warm-up and its share of ``duration_s``; the slices of one side are summed.
    Whatever else runs on the machine then weighs on both sides alike, instead of on whichever
    side happened to run while it did. Slice k asks both sides for the same paths."""
    spy = None
    if profile is not None:
        spy = subprocess.Popen([str(profile), "record", "--pid", str(node.pid), "--rate", "200",
                                "--format", "raw", "--duration", str(int(2 * sizes.duration_s + 4 * sizes.slices + 2)),
                                "--output", str(node.log_path.with_suffix(".spy")), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    ours, theirs = [], []
    for k in range(sizes.slices):
        ours.append(run_slice(node, node_paths, sizes, seed * 1000 + k, first=k == 0))
        if ds is not None:
            theirs.append(run_slice(ds, ds_paths, sizes, seed * 1000 + k, first=k == 0))
    node_result = summarize(ours)
    if spy is not None:
        try:
            spy.wait(timeout=2 * sizes.duration_s + 60)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait()
        node_result["profile"] = spy_summary(node.log_path.with_suffix(".spy"))
    return node_result, summarize(theirs) if ds is not None else None


def spy_summary(path: Path, top: int = 12) -> dict:
    """py-spy's collapsed stacks: the functions most often running (self) and on the stack (total),
    as shares of every sample of every thread (idle threads waiting in the OS are not sampled)."""
    self_counts: collections.Counter[str] = collections.Counter()
    total_counts: collections.Counter[str] = collections.Counter()
    samples = 0
    if not path.exists():
        return {"error": "py-spy wrote nothing"}
    for line in path.read_text(errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        frames = [f for f in stack.split(";") if f]
        if not frames:
            continue
        count = int(n)
        samples += count
        names = [_frame(f) for f in frames]
        self_counts[names[-1]] += count
        for name in set(names):
            total_counts[name] += count
    return {
        "samples": samples,
        "self": [[name, round(c / samples, 3)] for name, c in self_counts.most_common(top)],
        "total": [[name, round(c / samples, 3)] for name, c in total_counts.most_common(top * 2)],
    }


def _frame(frame: str) -> str:
    """``func (path/to/file.py:12)`` -> ``func (file.py)``."""
    name, _, where = frame.partition(" (")
    file = where.split(":")[0].rsplit("/", 1)[-1]
    return f"{name} ({file})" if file else name


# -- endpoints -------------------------------------------------------------------------


def endpoints(event_ids: list[str], all_ids: list[str], ds_table: str) -> dict[str, tuple[Callable, Callable]]:
    """Per endpoint: (node path, Datasette path), each a function of a random generator.

    ``event`` draws ids at random among ``event_ids`` (a sample of every entry, so ids
    repeat within a run and a server may answer a repeat from a cache); ``event_unseen``
    walks one shuffled order of every entry, so no id is asked twice of a server in a run
    (unless a run asks for more ids than there are entries: quick mode wraps around)."""
    ds_list = f"/net/items.json?_shape=array&_size={PAGE}&_nocount=1&_nofacet=1&_nosuggest=1&type=pledge&_sort=time_ms"
    order = list(all_ids)
    random.Random(11).shuffle(order)

    def unseen(fmt: str) -> Callable[[random.Random], str]:
        counter = iter(range(2**62))
        return lambda r: fmt.format(order[next(counter) % len(order)])

    return {
        "pledges_filter": (lambda r: f"/v1/pledges?kind=relocation&limit={PAGE}",
                           lambda r: ds_list + "&kind=relocation"),
        "pledges_by_time": (lambda r: f"/v1/pledges?limit={PAGE}", lambda r: ds_list),
        "summary": (lambda r: "/v1/summary", lambda r: "/net/summary.json?_shape=array"),
        "event": (lambda r: f"/v1/events/{r.choice(event_ids)}",
                  lambda r: f"/net/{ds_table}/{r.choice(event_ids)}.json?_shape=array"),
        "event_unseen": (unseen("/v1/events/{}"), unseen("/net/" + ds_table + "/{}.json?_shape=array")),
    }


def check_equivalence(node_url: str, ds_url: str | None, event_id: str) -> dict:
    """The two sides answer the same rows: first pages and one event, field by field."""

    async def get(url: str):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as s:
            async with s.get(url) as r:
                r.raise_for_status()
                return await r.json()

    async def run() -> dict:
        out = {}
        node_page = await get(node_url + f"/v1/pledges?kind=relocation&limit={PAGE}")
        node_event = await get(node_url + f"/v1/events/{event_id}")
        check_inclusion(leaf=bytes.fromhex(node_event["id"]), index=node_event["proof"]["leaf_index"],
                        size=node_event["proof"]["tree_size"],
                        root=_root_of(node_event), proof=[bytes.fromhex(h) for h in node_event["proof"]["inclusion_path"]])
        out["node_event_proof_checked"] = True
        if ds_url is None:
            return out
        ds_page = await get(ds_url + f"/net/items.json?_shape=array&_size={PAGE}&_nocount=1&type=pledge"
                            "&kind=relocation&_sort=time_ms")
        out["same_first_page"] = [r["id"] for r in node_page["rows"]] == [r["id"] for r in ds_page]
        mismatched = [c for c in ("status", "delivered", "accepted", "accepts", "quantity", "country")
                      if [r[c] for r in node_page["rows"]] != [r[c] for r in ds_page]]
        out["same_first_page_values"] = not mismatched
        [ds_event] = await get(ds_url + f"/net/events/{event_id}.json?_shape=array")
        out["same_event"] = (
            ds_event["proof_inclusion_path"] == json.dumps(node_event["proof"]["inclusion_path"], separators=(",", ":"))
            and ds_event["checkpoint"] == node_event["checkpoint"]
            and ds_event["entry_base64"] == node_event["entry"]["base64"]
            and json.loads(ds_event["body"]) == node_event["body"]
        )
        return out

    return asyncio.run(run())


def _root_of(event: dict) -> bytes:
    """The root named by the event's checkpoint (signed note: origin, size, base64 root)."""
    return base64.b64decode(event["checkpoint"].split("\n")[2])


# -- main ------------------------------------------------------------------------------


def _find_datasette(arg: str | None) -> tuple[Path | None, str | None]:
    if arg:
        path = Path(arg)
        return (path, None) if path.exists() else (None, f"--datasette {arg} does not exist")
    if DEFAULT_DATASETTE.exists():
        return DEFAULT_DATASETTE, None
    found = shutil.which("datasette")
    if found:
        return Path(found), None
    return None, (f"Datasette is not installed at {DEFAULT_DATASETTE} (python3 -m venv /tmp/datasette-venv && "
                  "/tmp/datasette-venv/bin/pip install datasette), nor on PATH")


def _py_spy() -> Path | None:
    here = Path(sys.executable).parent / "py-spy"
    if here.exists():
        return here
    found = shutil.which("py-spy")
    return Path(found) if found else None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 cities x 500 entries, 2 s per endpoint")
    parser.add_argument("--datasette", help=f"the datasette executable (default: {DEFAULT_DATASETTE})")
    parser.add_argument("--profile", action="store_true", help="py-spy the node under each endpoint's load")
    parser.add_argument("--duration", type=float, help="seconds of load per endpoint and side")
    parser.add_argument("--keep", help="build the stores in this folder and keep them (reused when present)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.duration:
        sizes = dataclasses.replace(sizes, duration_s=args.duration)
    rng = random.Random(42)
    started = time.perf_counter()
    as_of = datetime.datetime.now(datetime.UTC).date().isoformat()
    datasette, why_not = _find_datasette(args.datasette)
    spy = _py_spy() if args.profile else None
    result: dict = {
        "quick": args.quick, "python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version,
        "aiohttp": aiohttp.__version__, "cpus": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "method": (f"{sizes.concurrency} concurrent keep-alive loopback connections from one lean HTTP/1.1 "
                   f"client (raw asyncio) in the bench process, {sizes.duration_s:g} s per endpoint and side in "
                   f"{sizes.slices} slices alternating between the sides, after {sizes.warmup_requests} "
                   "warm-up requests (first, cold request timed apart); every "
                   f"request's latency recorded; rps counts 200 answers only. The client shares the "
                   f"machine's {os.cpu_count()} cores with the server under load (the other server idles): "
                   "rates are lower bounds, the same for both sides. Lists ask for "
                   f"{PAGE} rows; the node always adds totals over every match and computes statuses "
                   "at query time, Datasette reads materialised rows with counts and facets off. Both "
                   "sides answer repeated requests however they can: the node keeps encoded answers per "
                   "database state (a repeated list or summary request is a lookup; the first after a "
                   "change, first_request_ms, is not). Events: random ids among a sample of "
                   f"{sizes.event_ids} entries (event), or every entry in a shuffled order, none asked twice "
                   "(event_unseen); the node computes the RFC 9162 proof per request (tile hashes kept "
                   "between proofs), Datasette returns it precomputed in the row."),
    }
    with contextlib.ExitStack() as stack:
        if args.keep:
            work = Path(args.keep)
            work.mkdir(parents=True, exist_ok=True)
        else:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="solidarity-bench-query-")))
        data = work / "node"
        info_path = work / "store.json"
        if not (args.keep and info_path.exists()):
            shutil.rmtree(data, ignore_errors=True)
            info = build_node(data, sizes, rng)
            info_path.write_text(json.dumps(info))
        result["store"] = json.loads(info_path.read_text())
        with Store(data / "solidarity.db", readonly=True) as store:
            ids = [r[0] for r in store.conn.execute("SELECT id FROM view_events ORDER BY id").fetchall()]
        event_ids = random.Random(7).sample(ids, min(sizes.event_ids, len(ids)))

        ds_db, ds_meta = work / "net.db", work / "metadata.json"
        if datasette is not None:
            if not (args.keep and ds_db.exists() and (work / "datasette.json").exists()):
                ds_db.unlink(missing_ok=True)
                (work / "datasette.json").write_text(json.dumps(
                    build_datasette_db(data / "solidarity.db", ds_db, as_of)))
            result["datasette_db"] = json.loads((work / "datasette.json").read_text())
            ds_meta.write_text(json.dumps({"databases": {"net": {"queries": {"summary": {"sql": SUMMARY_SQL}}}}}))
            result["datasette_version"] = datasette_versions(datasette)

        node = stack.enter_context(node_server(data, work))
        ds = None
        if datasette is not None:
            ds = stack.enter_context(datasette_server(datasette, ds_db, ds_meta, work, threads=4))
        # Start-up work (the federation's first scan of every log for votes) must not share the cores
        # with the first endpoint measured.
        result["node_settle_s"] = node.settle()
        result["node_settle_note"] = "seconds serve stayed busy after printing its URL, before any load"
        if ds is not None:
            result["datasette_settle_s"] = ds.settle()

        result["loadavg_before_loads"] = [round(x, 2) for x in os.getloadavg()]
        result["loadavg_note"] = ("1/5/15-minute load averages of the machine: above the core count, "
                                  "something else competed with the servers and the client")
        out: dict = {}
        for i, (name, (node_path, ds_path)) in enumerate(endpoints(event_ids, ids, "events").items()):
            is_event = name.startswith("event")
            entry: dict = {"node_path": "/v1/events/{id}" if is_event else node_path(random.Random(0))}
            entry["node"], entry["datasette"] = run_pair(node, ds, node_path, ds_path, sizes, seed=i, profile=spy)
            if ds is not None:
                entry["datasette_path"] = "/net/events/{id}.json" if is_event else ds_path(random.Random(0))
            out[name] = entry
        result["endpoints"] = out
        result["loadavg_after_loads"] = [round(x, 2) for x in os.getloadavg()]
        # After the loads, so the first (cold) request of each endpoint above was really the first.
        result["equivalence"] = check_equivalence(node.url, ds.url if ds else None, event_ids[0])
    _targets(result, why_not)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))
    return 0


def _targets(result: dict, why_not: str | None) -> None:
    eps = result["endpoints"]
    if why_not is not None or any(e["datasette"] is None for e in eps.values()):
        for e in eps.values():
            e["ratio_vs_datasette"] = None
            e["target_met"] = None
        result["target_met"] = None
        result["datasette_missing"] = why_not
        return
    fastest = max(e["datasette"]["rps"] for e in eps.values())
    for e in eps.values():
        ours, theirs = e["node"], e["datasette"]
        e["ratio_vs_datasette"] = round(ours["rps"] / theirs["rps"], 3) if theirs["rps"] else None
        e["ratio_vs_datasette_fastest_endpoint"] = round(ours["rps"] / fastest, 3) if fastest else None
        e["p99_no_worse"] = ours["p99_ms"] <= theirs["p99_ms"]
        e["target_met"] = bool(e["ratio_vs_datasette"] and e["ratio_vs_datasette"] >= TARGET_RATIO
                               and e["p99_no_worse"] and ours["errors"] == 0)
    result["target"] = (f"per endpoint: node rps >= {TARGET_RATIO:g} x Datasette's rps on the equivalent "
                        "query, node p99 <= Datasette's p99, no errors; events with proofs")
    result["target_met"] = all(e["target_met"] for e in eps.values())
    result["target_datasette_fastest_endpoint_rps"] = fastest


if __name__ == "__main__":
    sys.exit(main())
