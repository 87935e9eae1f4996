"""bench/sync.py and bench/gossip.py --quick run end to end and print every figure they promise.

Smoke tests only: they check that the benchmarks still work against the
current node code (keys present, numbers positive, processes and temporary
folders gone), never how fast anything is; timings belong to the benchmarks'
output, not to CI.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench_run import run_bench

SYNC_CASES = ("one_log", "many_logs", "small_log")
SYNC_POSITIVE = (
    "entries", "entries_per_s", "ceiling_entries_per_s", "share_of_ceiling", "protocol_ceiling_entries_per_s",
    "wire_bytes", "wire_per_raw_entry_byte", "wire_per_raw_byte_with_bodies", "syncer_cpu_us_per_entry",
    "server_cpu_us_per_entry", "rss_start_mb", "rss_end_mb", "rss_peak_mb",
)
SYNC_TARGETS = ("share_of_ceiling", "wire_per_raw_entry_byte", "wire_per_raw_byte_with_bodies", "rss_flat")
GOSSIP_POSITIVE = (
    "start_s", "initial_convergence_s", "median_intervals", "worst_intervals", "bound_intervals",
    "gossip_rounds_per_node", "node_cpu_ms_per_round", "idle_node_cpu_ms_per_round", "node_rss_mb",
    "checkpoint_verify_us",
)


def _run(script: str, tmp_path: Path, *args: str) -> dict:
    result = run_bench(script, "--quick", *args, tmp_path=tmp_path)
    assert result["quick"] is True
    # Every store, data folder and server log the run made is removed afterwards.
    assert list(tmp_path.iterdir()) == []
    return result


def _positive(where: str, value: object) -> None:
    assert isinstance(value, int | float) and not isinstance(value, bool), (where, value)
    assert value > 0, (where, value)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_bench_sync_quick_prints_every_figure(tmp_path):
    result = _run("sync.py", tmp_path)
    for case in SYNC_CASES:
        figures = result[case]
        for key in SYNC_POSITIVE:
            _positive(f"{case}.{key}", figures[key])
        assert set(figures["requests"]) == {"checkpoint", "tiles", "entries", "bodies"}
        # Bodies are on the wire too: the ratio with them divides more wire by more raw bytes.
        assert figures["wire_bytes"] == sum(figures["wire_bytes_by_kind"].values())
    assert result["many_logs"]["logs"] > 1 and result["one_log"]["logs"] == 1
    for key in SYNC_TARGETS:
        assert isinstance(result["targets"][key]["target_met"], bool), key
    assert isinstance(result["target_met"], bool)
    variants = result["variants"]
    for name in variants["options"]:
        _positive(f"variants.{name}", variants[name]["entries_per_s"])
    # Full bundles are checked against level-1 tiles: no level-0 tile is fetched but the edge one.
    assert result["one_log"]["requests"]["tiles"] < result["one_log"]["requests"]["entries"] / 10
    # Uncompressed answers must cost more bytes, or the variant does not do what it says.
    node, plain = variants["node"], variants["node_uncompressed"]
    assert plain["wire_per_raw_byte_with_bodies"] > node["wire_per_raw_byte_with_bodies"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_bench_gossip_quick_prints_every_figure(tmp_path):
    result = _run("gossip.py", tmp_path)
    for key in GOSSIP_POSITIVE:
        _positive(key, result[key])
    assert result["nodes"] == 8
    assert len(result["runs"]) == 2
    for run in result["runs"]:
        _positive("converged_s", run["converged_s"])
        assert run["converged_intervals"] >= run["held_by_all_intervals"] > 0
    assert isinstance(result["target_met"], bool)
    sizes = result["exchange_bytes"]
    assert sizes["heads_in_full_answer"] == 8
    assert sizes["answer_all_buckets_differ"] > sizes["answer_same"] > 0
    # The Federation's counters when /v1/status exposes them, else what is missing says so.
    if "missing_status_fields" not in result:
        idle = result["stats_per_node_per_round_idle"]
        _positive("gossip_sent per round", idle["gossip_sent"])
        _positive("gossip_bytes_sent per round", idle["gossip_bytes_sent"])
        assert all(run["announces_sent_all_nodes"] > 0 for run in result["runs"])
    per_round = result["per_node_per_round"]
    for key in ("messages", "bytes_sent", "bytes_received"):
        _positive(f"per_node_per_round.{key}", per_round[key])
