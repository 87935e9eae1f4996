"""bench/node.py --quick runs end to end and prints every figure it promises.

A smoke test only: it checks the benchmark still works against the current
node code (keys present, numbers positive, temporary stores removed), never
how fast anything is; timings belong to the benchmark's output, not to CI.
"""

from __future__ import annotations


import pytest

from tests.bench_run import run_bench

POSITIVE = (
    "append_batched_entries_per_s",
    "append_single_entries_per_s",
    "cli_command_entries_per_s",
    "db_entries",
    "db_bytes",
    "db_entry_bytes",
    "db_body_bytes",
    "db_bytes_per_raw_byte",
    "db_bytes_per_entry_byte",
    "healthz_served_per_s",
    "full_tiles_served_per_s",
    "full_bundles_served_per_s",
    "full_bundles_served_per_s_identity",
    "serve_rss_mb",
    "serve_rss_small_mb",
    "rss_ratio",
)
FLAGS = ("target_met", "rss_flat", "rss_target_met")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_bench_node_quick_prints_every_figure(tmp_path):
    result = run_bench("node.py", "--quick", tmp_path=tmp_path, timeout=120)
    assert result["quick"] is True
    for key in POSITIVE:
        value = result[key]
        assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
        assert value > 0, (key, value)
    for key in FLAGS:
        assert isinstance(result[key], bool), (key, result[key])
    cpu = result["server_cpu_us_per_request"]
    assert set(cpu) == {"healthz", "tiles", "bundles", "bundles_identity"}
    assert all(v > 0 for v in cpu.values()), cpu
    assert result["db_bytes_per_raw_byte"] < result["db_bytes_per_entry_byte"]
    # The stores built for the run (the full run's is 1M entries) are removed afterwards.
    assert list(tmp_path.iterdir()) == []
