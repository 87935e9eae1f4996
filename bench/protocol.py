"""Protocol throughput: can a node validate entries as fast as it can store them?

A node syncing another city's log fetches entry bundles and bodies, and for
every entry runs the full check (:func:`validate_log`): canonical decoding of
the entry, the body's size and SHA-256 against the entry, canonical decoding of
the body, its event type's JSON Schema, and the RFC 9162 leaf hash. The target
is that this is never the bottleneck of sync, i.e. at least as fast as the
*sync ceiling*: the least a node could do per entry without checking anything
(msgpack decode, one SHA-256, one SQLite insert into the node's ``entries``
table, in one transaction).

Every figure comes from the same run, on the same deterministic entries
(``random.Random(42)``, a seeded key, a mix of pledge, offer, request, progress
and report events), and prints as one JSON object (here CPython 3.11, 2 cores)::

    $ python bench/protocol.py
    {"validate_entries_per_s": 216579.5, "validate_two_steps_entries_per_s": 115421.9,
     "tree_appends_per_s": 1363619.6, "checkpoints_verified_per_s": 13767.5, ...,
     "sync_ceiling_entries_per_s": 167053.9, "ratio_validate_vs_sync_ceiling": 1.296, "target_met": true,
     "validate_stage_us_per_entry": {"decode_entry": 1.7, "check_body_hash": 0.54,
                                     "decode_body_and_schema": 2.78, "entry_id": 0.48}, ...}

``validate_stage_us_per_entry`` times each step of the validation alone, to
show where the time goes. ``validate_two_steps_entries_per_s`` is the same
check through the reference path (decode the body, then the fastjsonschema
validator): what ``SchemaRegistry.decode_body`` falls back to for a body its
one-pass decoder (protocol/typed_bodies.py) declines, e.g. a city profile. Ceilings (``sha256_per_s``, ``msgpack_decode_per_s``,
``ed25519_verify_per_s``, ``pynacl_verify_per_s`` if PyNaCl is installed, else
null) are what the libraries do with no protocol code around them.

Options: ``--entries N`` (default 20,000; 5,000 with ``--quick``), ``--quick``
(fewer entries and checkpoints: a smoke run of a few seconds), ``--profile``
(cProfile of the validation path, printed to stderr; stdout stays JSON).
"""

from __future__ import annotations

import argparse
import base64
import cProfile
import datetime
import gc
import hashlib
import io
import json
import os
import platform
import pstats
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

# Run as "python bench/protocol.py", Python puts bench/ first on sys.path, and
# this very file would then shadow the ``protocol`` package: put the checkout
# there instead.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import cryptography  # noqa: E402
import msgpack  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey  # noqa: E402

import schemas  # noqa: E402
from node.store import Store  # noqa: E402
from protocol.checkpoint import Checkpoint, open_checkpoint, sign_checkpoint  # noqa: E402
from protocol.entry import check_body, check_body_hash, decode_entry, entry_id, make_entry  # noqa: E402
from protocol.errors import EntryError  # noqa: E402
from protocol.keys import Signer, VerifierKey, signer_from_seed  # noqa: E402
from protocol.merkle import CompactTree  # noqa: E402
from protocol.schema import SchemaRegistry  # noqa: E402

try:  # optional: libsodium's verify, for comparison with OpenSSL's
    import nacl.signing
except ImportError:  # pragma: no cover - depends on the environment
    nacl = None

REPEATS = 3
METHOD = (
    f"time.perf_counter, best of {REPEATS} repetitions per figure, in {REPEATS} interleaved rounds "
    "(each round times every figure once); all figures from one run on the same entries; "
    "gc enabled (collected before each repetition); single thread"
)
NETWORK = "solidarity-cities"
ORIGIN = "solidarity.example/city/lyon"
SEED = 42

# Event types a city writes most, with a plausible share of a log.
TYPE_MIX = {"pledge": 0.10, "offer": 0.15, "request": 0.15, "progress": 0.35, "report": 0.25}

_WORDS = (
    "reception places families children unaccompanied minors housing transfer arrivals border "
    "centre interpreters staff training social workers schools health care municipal apartments "
    "shelter weeks months capacity partners region programme support legal advice volunteers "
    "integration language courses employment transport medical psychological counselling "
    "accommodation emergency winter summer coordination network cities ministry request offer"
).split()
_CATEGORIES = (
    "reception-places", "housing", "staff", "training", "expertise", "interpretation",
    "equipment", "funding", "other",
)
_UNITS = ("places", "person-days", "EUR", "apartments", "beds", "sessions", "kits")
_KINDS = ("relocation", "resettlement", "unaccompanied-minors", "family-reunification", "other")
_EPOCH = datetime.date(2026, 1, 1)


# --- realistic entries ------------------------------------------------------


def _text(rng: random.Random, low: int, high: int) -> str:
    """Plausible free text of ``low`` to ``high`` characters, in sentences."""
    limit = rng.randint(low, high)
    out: list[str] = []
    size = 0
    while size < limit:
        sentence = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(5, 14)))
        sentence = sentence[0].upper() + sentence[1:] + "."
        out.append(sentence)
        size += len(sentence) + 1
    return " ".join(out)[:limit].rstrip() or "Details follow."


def _period(rng: random.Random, low: int, high: int) -> tuple[str, str]:
    start = _EPOCH + datetime.timedelta(days=rng.randint(0, 700))
    end = start + datetime.timedelta(days=rng.randint(low, high))
    return start.isoformat(), end.isoformat()


def _body(rng: random.Random, type_: str, refs: list[str]) -> dict[str, object]:
    if type_ == "pledge":
        start, end = _period(rng, 90, 730)
        body: dict[str, object] = {
            "kind": rng.choice(_KINDS), "places": rng.randint(5, 800), "from": start, "until": end,
        }
        if rng.random() < 0.7:
            body["description"] = _text(rng, 60, 600)
        return body
    if type_ in ("offer", "request"):
        start, end = _period(rng, 14, 365)
        return {
            "category": rng.choice(_CATEGORIES),
            "quantity": rng.randint(1, 5000),
            "unit": rng.choice(_UNITS),
            "from": start,
            "until": end,
            "description": _text(rng, 40, 800),
        }
    if type_ == "progress":
        body = {"ref": rng.choice(refs), "delivered": rng.randint(0, 800)}
        if rng.random() < 0.5:
            body["note"] = _text(rng, 20, 200)
        return body
    if type_ == "report":
        start, end = _period(rng, 27, 91)
        body = {
            "period_start": start,
            "period_end": end,
            "arrivals": rng.randint(0, 500),
            "in_reception": rng.randint(0, 3000),
            "free_places": rng.randint(0, 400),
        }
        if rng.random() < 0.3:
            body["note"] = _text(rng, 20, 300)
        return body
    raise ValueError(f"no generator for {type_}")


def make_log(count: int) -> tuple[Signer, list[tuple[bytes, bytes]], dict[str, int]]:
    """A city's signer and ``count`` (entry bytes, salted body) of its log, deterministically."""
    rng = random.Random(SEED)
    signer = signer_from_seed(ORIGIN, rng.randbytes(32))
    types, weights = zip(*TYPE_MIX.items(), strict=True)
    time_ms = 1_767_225_600_000  # 2026-01-01T00:00:00Z
    refs: list[str] = []  # ids of pledges, offers and requests progress can point at
    pairs: list[tuple[bytes, bytes]] = []
    mix = dict.fromkeys(types, 0)
    for seq in range(count):
        type_ = rng.choices(types, weights)[0]
        if type_ == "progress" and not refs:
            type_ = "pledge"
        time_ms += rng.randint(60_000, 6 * 3_600_000)
        _, entry_bytes, salted = make_entry(
            network=NETWORK,
            origin=ORIGIN,
            seq=seq,
            time_ms=time_ms,
            type=type_,
            schema=1,
            body=_body(rng, type_, refs),
            salt=rng.randbytes(16),
        )
        if type_ in ("pledge", "offer", "request"):
            refs.append(entry_id(entry_bytes).hex())
        pairs.append((entry_bytes, salted))
        mix[type_] += 1
    return signer, pairs, mix


def make_checkpoints(signer: Signer, leaves: list[bytes], count: int) -> list[bytes]:
    """Signed checkpoints of the log at ``count`` growing sizes, as a syncing peer sees them."""
    tree = CompactTree()
    step = max(1, len(leaves) // count)
    notes = []
    for leaf in leaves:
        tree.append(leaf)
        if tree.size % step == 0 and len(notes) < count:
            cp = Checkpoint(origin=signer.name, size=tree.size, root=tree.root())
            notes.append(sign_checkpoint(cp, signer))
    return notes


# --- what is measured -------------------------------------------------------


def validate_log(pairs: list[tuple[bytes, bytes]], registry: SchemaRegistry, origin: str) -> list[bytes]:
    """The full check a syncing node runs on each entry and body; returns the leaf hashes."""
    leaves = []
    for seq, (entry_bytes, salted) in enumerate(pairs):
        entry = decode_entry(entry_bytes)  # canonical MessagePack, every field checked
        if entry.seq != seq or entry.origin != origin:
            raise EntryError(f"entry {seq}: sequence {entry.seq} of {entry.origin!r}")
        check_body_hash(entry, salted)  # size and SHA-256 as the entry records them
        registry.decode_body(entry.type, entry.schema, salted)  # canonical decode and schema, one pass
        leaves.append(entry_id(entry_bytes))  # RFC 9162 leaf hash
    return leaves


def validate_log_two_steps(pairs: list[tuple[bytes, bytes]], registry: SchemaRegistry, origin: str) -> list[bytes]:
    """The same check through the reference path: decode the body, then run the JSON Schema validator.

    What ``SchemaRegistry.decode_body`` falls back to when its one-pass decoder declines a body.
    """
    leaves = []
    for seq, (entry_bytes, salted) in enumerate(pairs):
        entry = decode_entry(entry_bytes)
        if entry.seq != seq or entry.origin != origin:
            raise EntryError(f"entry {seq}: sequence {entry.seq} of {entry.origin!r}")
        body = check_body(entry, salted)
        registry.validate(entry.type, entry.schema, body)
        leaves.append(entry_id(entry_bytes))
    return leaves


def append_leaves(leaves: list[bytes]) -> bytes:
    tree = CompactTree()
    for leaf in leaves:
        tree.append(leaf)
    return tree.root()


def open_checkpoints(notes: list[bytes], verifier: VerifierKey) -> None:
    for note in notes:
        open_checkpoint(note, verifier)


def sha256_all(pairs: list[tuple[bytes, bytes]]) -> None:
    sha256 = hashlib.sha256
    for entry_bytes, _ in pairs:
        sha256(entry_bytes).digest()


def unpack_all(pairs: list[tuple[bytes, bytes]]) -> None:
    unpackb = msgpack.unpackb
    for entry_bytes, _ in pairs:
        unpackb(entry_bytes)


def signed_messages(notes: list[bytes]) -> list[tuple[bytes, bytes]]:
    """(signed text, signature) of each checkpoint note: what Ed25519 verifies."""
    out = []
    for note in notes:
        text, _, line = note.rpartition(b"\n\n")
        raw = base64.b64decode(line.rstrip(b"\n").rsplit(b" ", 1)[1])
        out.append((text + b"\n", raw[4:]))
    return out


def verify_cryptography(public_key: bytes, messages: list[tuple[bytes, bytes]]) -> None:
    key = Ed25519PublicKey.from_public_bytes(public_key)
    for message, signature in messages:
        key.verify(signature, message)


def verify_pynacl(public_key: bytes, messages: list[tuple[bytes, bytes]]) -> None:
    key = nacl.signing.VerifyKey(public_key)
    for message, signature in messages:
        key.verify(message, signature)




def _fresh_db(folder: str, name: str) -> sqlite3.Connection:
    """A new database set up as the node's store sets up its own (WAL, synchronous=FULL)."""
    # The node's own database, made by the node's own code: the ceiling inserts into the
    # same table, with the same journal mode and durability, as sync does.
    path = os.path.join(folder, name)
    Store.create(path).close()  # WAL, which the file keeps
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous=FULL")  # per connection, as node.store sets it
    return conn


def sync_ceiling(conn: sqlite3.Connection, pairs: list[tuple[bytes, bytes]]) -> None:
    """The least a node must do to store entries: decode, hash, insert; no checks."""
    unpackb = msgpack.unpackb
    sha256 = hashlib.sha256

    def rows() -> Iterator[tuple[int, int, bytes, bytes, bytes]]:
        for entry_bytes, salted in pairs:
            seq = unpackb(entry_bytes)["seq"]
            yield 1, seq, sha256(b"\x00" + entry_bytes).digest(), entry_bytes, salted

    conn.execute("BEGIN IMMEDIATE")
    conn.executemany("INSERT INTO entries (lid, seq, leaf, entry, body) VALUES (?, ?, ?, ?, ?)", rows())
    conn.execute("COMMIT")


class Timings:
    """The best time of each named figure over REPEATS interleaved rounds.

    Each round times every figure once, in turn, so that other work on the
    machine in one moment slows all figures alike instead of one of them:
    the ratio of two figures then stays meaningful on a busy machine.
    """

    def __init__(self) -> None:
        self._jobs: list[tuple[str, int, Callable[[], object], Callable[[], None] | None]] = []
        self._best: dict[str, float] = {}

    def add(
        self, name: str, count: int, run: Callable[[], object], setup: Callable[[], None] | None = None
    ) -> None:
        """Time ``run`` handling ``count`` items (``setup`` runs before it, untimed)."""
        self._jobs.append((name, count, run, setup))

    def run(self) -> None:
        for _ in range(REPEATS):
            for name, _count, run, setup in self._jobs:
                if setup is not None:
                    setup()
                gc.collect()
                start = time.perf_counter()
                run()
                elapsed = time.perf_counter() - start
                self._best[name] = min(elapsed, self._best.get(name, float("inf")))

    def rate(self, name: str) -> float:
        """Items per second in the best round."""
        count = next(count for job, count, _, _ in self._jobs if job == name)
        return count / self._best[name]


def add_stages(timings: Timings, pairs: list[tuple[bytes, bytes]], registry: SchemaRegistry) -> list[str]:
    """Time each step of :func:`validate_log` on its own, to show what limits it."""
    entries = [decode_entry(entry_bytes) for entry_bytes, _ in pairs]
    with_body = list(zip(entries, (salted for _, salted in pairs), strict=True))
    stages: dict[str, Callable[[], object]] = {
        "decode_entry": lambda: [decode_entry(entry_bytes) for entry_bytes, _ in pairs],
        "check_body_hash": lambda: [check_body_hash(entry, salted) for entry, salted in with_body],
        "decode_body_and_schema": lambda: [registry.decode_body(e.type, e.schema, salted) for e, salted in with_body],
        "entry_id": lambda: [entry_id(entry_bytes) for entry_bytes, _ in pairs],
    }
    for name, run in stages.items():
        timings.add(f"stage:{name}", len(pairs), run)
    return list(stages)


def profile_validation(pairs: list[tuple[bytes, bytes]], registry: SchemaRegistry) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    validate_log(pairs, registry, ORIGIN)
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(30)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--entries", type=int, default=None, help="entries to generate (default 20000, quick 5000)")
    parser.add_argument("--quick", action="store_true", help="a short run (a few seconds)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of validation to stderr")
    args = parser.parse_args(argv)
    count = args.entries if args.entries is not None else (5_000 if args.quick else 20_000)
    if count < 1:
        parser.error("--entries must be at least 1")
    checkpoint_count = min(count, 300 if args.quick else 2_000)
    started = time.perf_counter()

    registry = SchemaRegistry(schemas.load_documents())
    signer, pairs, mix = make_log(count)
    verifier = signer.verifier
    leaves = validate_log(pairs, registry, ORIGIN)  # also proves the generated log is valid
    notes = make_checkpoints(signer, leaves, checkpoint_count)
    messages = signed_messages(notes)
    for note in notes:  # the checkpoints are valid too
        open_checkpoint(note, verifier)

    timings = Timings()
    assert validate_log_two_steps(pairs, registry, ORIGIN) == leaves  # both paths accept the same log
    timings.add("validate_entries_per_s", count, lambda: validate_log(pairs, registry, ORIGIN))
    timings.add("validate_two_steps_entries_per_s", count, lambda: validate_log_two_steps(pairs, registry, ORIGIN))
    stage_names = add_stages(timings, pairs, registry)
    timings.add("tree_appends_per_s", count, lambda: append_leaves(leaves))
    timings.add("checkpoints_verified_per_s", len(notes), lambda: open_checkpoints(notes, verifier))
    timings.add("sha256_per_s", count, lambda: sha256_all(pairs))
    timings.add("msgpack_decode_per_s", count, lambda: unpack_all(pairs))
    timings.add("ed25519_verify_per_s", len(messages), lambda: verify_cryptography(verifier.public_key, messages))
    if nacl is not None:
        timings.add("pynacl_verify_per_s", len(messages), lambda: verify_pynacl(verifier.public_key, messages))
    with tempfile.TemporaryDirectory(prefix="bench-protocol-") as folder:
        connections: list[sqlite3.Connection] = []

        def new_db() -> None:  # each round inserts into an empty table, as a first sync does
            connections.append(_fresh_db(folder, f"sync{len(connections)}.db"))

        timings.add("sync_ceiling_entries_per_s", count, lambda: sync_ceiling(connections[-1], pairs), new_db)
        try:
            timings.run()
        finally:
            for conn in connections:
                conn.close()

    figures: dict[str, object] = {
        name: timings.rate(name)
        for name in (
            "validate_entries_per_s",
            "validate_two_steps_entries_per_s",
            "tree_appends_per_s",
            "checkpoints_verified_per_s",
            "sha256_per_s",
            "msgpack_decode_per_s",
            "ed25519_verify_per_s",
        )
    }
    figures["pynacl_verify_per_s"] = timings.rate("pynacl_verify_per_s") if nacl is not None else None
    figures["sync_ceiling_entries_per_s"] = timings.rate("sync_ceiling_entries_per_s")
    stages = {name: round(1e6 / timings.rate(f"stage:{name}"), 2) for name in stage_names}

    for name, value in figures.items():
        if isinstance(value, float):
            figures[name] = round(value, 1)
    ratio = figures["validate_entries_per_s"] / figures["sync_ceiling_entries_per_s"]
    result = {
        **figures,
        "ratio_validate_vs_sync_ceiling": round(ratio, 3),
        "target_met": ratio >= 1.0,
        "target": "validate_entries_per_s >= sync_ceiling_entries_per_s (validation never limits sync)",
        "sync_ceiling": "msgpack.unpackb + SHA-256 leaf hash + INSERT into a WITHOUT ROWID entries table "
        "(WAL, synchronous=FULL, a file in the system temp directory), one transaction, commit included",
        "validate": "decode_entry + seq/origin check + check_body_hash (size, SHA-256) + "
        "SchemaRegistry.decode_body (canonical decode and JSON Schema in one pass) + entry_id",
        "validate_two_steps": "the same through the reference path: check_body (decode_body) + "
        "SchemaRegistry.validate (fastjsonschema), what decode_body falls back to",
        "validate_stage_us_per_entry": stages,
        "entries": count,
        "checkpoints": len(notes),
        "type_mix": mix,
        "mean_entry_bytes": round(sum(len(e) for e, _ in pairs) / count, 1),
        "mean_salted_body_bytes": round(sum(len(b) for _, b in pairs) / count, 1),
        "checkpoint_message_bytes": round(sum(len(m) for m, _ in messages) / len(messages), 1),
        "method": METHOD,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "machine": {
            "platform": platform.platform(),
            "machine": platform.machine(),
            "processor": platform.processor() or None,
            "cpu_count": os.cpu_count(),
            # Other work on the machine slows every figure alike; the ratio suffers least.
            "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        },
        "libraries": {
            "cryptography": cryptography.__version__,
            "msgpack": ".".join(map(str, msgpack.version)),
            "sqlite": sqlite3.sqlite_version,
            "pynacl": getattr(nacl, "__version__", None) if nacl else None,
        },
        "elapsed_s": round(time.perf_counter() - started, 2),
    }
    if args.profile:
        print(profile_validation(pairs, registry), file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
