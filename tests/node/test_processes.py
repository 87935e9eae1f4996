"""Several processes at once, and processes killed mid-write: no fork, nothing lost."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from node.audit import audit_store
from node.store import Store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "SOLIDARITY_LOGGING_LEVEL": "warning"}


def _author(data: Path, count: int, batch: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("author_loop.py")), str(data), str(count), str(batch)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT,
    )


def _seqs_and_ids(data: Path) -> tuple[list[int], set[str]]:
    with Store(data / "solidarity.db", readonly=True) as store:
        state = store.own_log()
        rows = list(store.entries(state.lid))
        audit_store(store)
    return [r.seq for r in rows], {r.leaf.hex() for r in rows}


async def test_concurrent_authors_while_serving_never_fork(make_node):
    node = make_node("Athens")
    data = node.config.data_dir
    node.close()
    serve = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT,
    )
    try:
        line = serve.stdout.readline()  # "serving on http://127.0.0.1:PORT"
        assert line.startswith("serving on "), serve.stderr.read() if serve.poll() is not None else line
        url = line.split()[-1]
        writers = [_author(data, 15) for _ in range(4)]
        outputs = [w.communicate(timeout=120) for w in writers]
        for w, (_, err) in zip(writers, outputs, strict=True):
            assert w.returncode == 0, err
        reported = {i for out, _ in outputs for i in out.split()}
        assert len(reported) == 60
        seqs, stored = _seqs_and_ids(data)
        assert seqs == list(range(61))
        assert reported <= stored
        async with aiohttp.ClientSession() as session:
            async with session.get(url + "/v1/logs") as response:
                [log] = (await response.json())["logs"]
        assert log["size"] == 61
    finally:
        serve.send_signal(signal.SIGINT)
        _, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err


def test_sigkill_at_random_moments_loses_nothing_reported(make_node):
    node = make_node("Athens")
    data = node.config.data_dir
    node.close()
    rng = random.Random(42)
    reported: set[str] = set()
    for round_ in range(12):
        proc = _author(data, 0, batch=rng.choice([1, 1, 5, 50]))
        time.sleep(rng.uniform(0.3, 1.2))  # python start-up is ~0.2 s; some kills land before any write
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        reported |= set(out.split())
        seqs, stored = _seqs_and_ids(data)  # audits every time: no torn transaction is ever visible
        assert seqs == list(range(len(seqs))), f"round {round_}: gap in sequence numbers"
        missing = reported - stored
        assert not missing, f"round {round_}: {len(missing)} reported entries lost"
    assert len(reported) > 12
    result = subprocess.run([sys.executable, "-m", "node.cli", "verify", "--data", str(data)],
                            capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr


def test_serve_stops_cleanly_on_sigterm(make_node):
    node = make_node("Athens")
    data = node.config.data_dir
    node.close()
    serve = subprocess.Popen(
        [sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT,
    )
    assert serve.stdout.readline().startswith("serving on ")
    serve.send_signal(signal.SIGTERM)
    _, err = serve.communicate(timeout=30)
    assert serve.returncode == 0, err
    assert "Traceback" not in err
