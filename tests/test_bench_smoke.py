"""bench/protocol.py still runs and prints its figures (functional only: no timing assertions).

A benchmark nobody runs rots silently when the API it drives changes; this
runs it small, in a subprocess exactly as documented, and checks the shape
of its one JSON object.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.bench_run import run_bench

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench" / "protocol.py"

RATES = (
    "validate_entries_per_s",
    "validate_two_steps_entries_per_s",
    "tree_appends_per_s",
    "checkpoints_verified_per_s",
    "sha256_per_s",
    "msgpack_decode_per_s",
    "ed25519_verify_per_s",
    "sync_ceiling_entries_per_s",
    "ratio_validate_vs_sync_ceiling",
    "mean_entry_bytes",
    "mean_salted_body_bytes",
)


def run_protocol_bench(*args: str) -> dict:
    return run_bench("protocol.py", *args, timeout=90)


def test_quick_run_prints_every_figure():
    result = run_protocol_bench("--quick", "--entries", "500")
    for key in RATES:
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), key
        assert value > 0, key
    # Optional library: a rate when installed, null otherwise.
    nacl = result["pynacl_verify_per_s"]
    assert nacl is None or (isinstance(nacl, int | float) and nacl > 0)
    assert isinstance(result["target_met"], bool)
    stages = result["validate_stage_us_per_entry"]
    assert set(stages) == {"decode_entry", "check_body_hash", "decode_body_and_schema", "entry_id"}
    assert all(isinstance(v, int | float) and v > 0 for v in stages.values())
    assert result["entries"] == 500
    assert sum(result["type_mix"].values()) == 500
    assert set(result["type_mix"]) == {"pledge", "offer", "request", "progress", "report"}
    assert 0 < result["checkpoints"] <= 500
    assert "best of 3" in result["method"]
    assert result["python"]
    assert result["machine"]["cpu_count"] is None or result["machine"]["cpu_count"] >= 1
    assert result["machine"]["platform"]


def test_entries_must_be_positive():
    done = subprocess.run(
        [sys.executable, str(BENCH), "--entries", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--entries must be at least 1" in done.stderr
