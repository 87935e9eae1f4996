"""bench/query.py --quick runs end to end and prints every figure it promises.

A smoke test only: it checks the benchmark still works against the current
node code (keys present, our side's numbers positive, both sides answering
the same rows where Datasette is installed), never how fast anything is.
Datasette is optional (its own venv, not a project dependency): without it
its figures are null and the reason is given.
"""

from __future__ import annotations


import pytest

from tests.bench_run import run_bench
ENDPOINTS = {"pledges_filter", "pledges_by_time", "summary", "event", "event_unseen"}
POSITIVE = ("rps", "p50_ms", "p99_ms", "requests", "mean_bytes", "first_request_ms", "server_cpu_us_per_request",
            "client_cpu_us_per_request")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_bench_query_quick_prints_every_figure(tmp_path):
    result = run_bench("query.py", "--quick", tmp_path=tmp_path)
    assert result["quick"] is True
    assert "share" in result["method"] and "cores" in result["method"]

    store = result["store"]
    assert store["entries"] == store["cities"] * store["entries_per_city"] > 0
    assert store["view_entries_per_s"] > 0 and store["view_build_s"] >= 0
    for type_ in ("pledge", "offer", "request", "progress", "accept", "report"):
        assert store["by_type"][type_] > 0, type_
    assert result["equivalence"]["node_event_proof_checked"] is True

    assert set(result["endpoints"]) == ENDPOINTS
    datasette = result.get("datasette_version") is not None
    for name, entry in result["endpoints"].items():
        ours = entry["node"]
        for key in POSITIVE:
            value = ours[key]
            assert isinstance(value, int | float) and not isinstance(value, bool), (name, key, value)
            assert value > 0, (name, key, value)
        assert ours["errors"] == 0, (name, ours["statuses"])
        if datasette:
            assert entry["datasette"]["rps"] > 0, name
            assert entry["ratio_vs_datasette"] > 0, name
            assert isinstance(entry["target_met"], bool), name
        else:
            assert entry["datasette"] is None and entry["ratio_vs_datasette"] is None, name
    if datasette:
        assert isinstance(result["target_met"], bool)
        assert all(result["equivalence"][k] for k in ("same_first_page", "same_first_page_values", "same_event"))
    else:
        assert result["target_met"] is None and result["datasette_missing"]
    # The stores built for the run are removed afterwards.
    assert list(tmp_path.iterdir()) == []
