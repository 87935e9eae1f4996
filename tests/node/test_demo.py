"""``solidarity demo``, the README's first command: it starts, converges, answers and stops cleanly."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from node import queries
from node.audit import audit_store
from node.demo import PLEDGE_KINDS, run_demo
from node.errors import ConfigError
from node.local import load_registry
from node.store import Store
from node.view import ViewUpdater

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "SOLIDARITY_LOGGING_LEVEL": "warning"}
CITY_LINE = re.compile(r"^(\w+) \(([A-Z]{2})\)  (http://127\.0\.0\.1:\d+)  log ([0-9a-f]{16})\.\.\., (\d+) entries$")


def _demo(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "node.cli", "demo", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd=ROOT, **kwargs,
    )


def _check_output(out: str, cities: int) -> list[str]:
    """Every printed URL was fetched by the demo ("ok"); returns the cities' node URLs."""
    lines = out.splitlines()
    assert not [line for line in lines if "FAILED" in line], out
    heads = [m for m in map(CITY_LINE.match, lines) if m]
    assert [m[1] for m in heads] == ["Athens", "Barcelona", "Palermo", "Leipzig"][:cities], out
    checked = [line.split()[1] for line in lines if line.startswith("  ok  ")]
    for m in heads:
        urls = [u for u in checked if u.startswith(m[3] + "/")]
        paths = {u[len(m[3]):] for u in urls}
        assert {"/v1/status", "/v1/logs"} <= paths, out
        assert any(p.endswith("/checkpoint") for p in paths), out
        assert any("/tile/0/" in p for p in paths), out
    assert "same signed note" in out
    return [m[3] for m in heads]


def _verify(root: Path, cities: int) -> None:
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    assert len(folders) == cities
    sizes = set()
    for folder in folders:
        done = subprocess.run([sys.executable, "-m", "node.cli", "verify", "--data", str(folder)],
                              capture_output=True, text=True, env=ENV, cwd=ROOT, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"verified {cities} logs" in done.stdout
        with Store(folder / "solidarity.db", readonly=True) as store:
            audit_store(store)
            sizes.add(tuple(sorted((s.origin, s.size) for s in store.logs())))
    assert len(sizes) == 1  # every node holds every log at the same size


@pytest.mark.slow
@pytest.mark.timeout(180)  # longer than communicate()'s 120 s, which names the problem better
def test_demo_exits_after_converging_and_leaves_verifiable_nodes(tmp_path):
    root = tmp_path / "demo"
    proc = _demo("--cities", "3", "--exit-after-converge", "--dir", str(root))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    _check_output(out, 3)
    assert "converged: stopping every node" in out
    assert "stopped 3 nodes" in out and "data kept in" in out
    _verify(root, 3)


@pytest.mark.slow
def test_ctrl_c_stops_every_node_cleanly(tmp_path):
    proc = _demo("--cities", "2")
    try:
        out = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            if line.startswith("Ctrl-C stops every node"):
                break
        text = "".join(out)
        assert text.endswith("Ctrl-C stops every node.\n"), text + proc.stderr.read()
        [athens, _] = _check_output(text, 2)
        temporary = re.search(r"^data folders in (\S+)", text, re.M)[1]
        assert Path(temporary).is_dir()
        import urllib.request

        with urllib.request.urlopen(athens + "/v1/status", timeout=10) as response:  # still serving
            assert response.status == 200
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "stopped 2 nodes" in rest
    assert not Path(temporary).exists()  # the temporary data folders are removed


async def test_run_demo_in_process(tmp_path):
    lines: list[str] = []
    code = await run_demo(3, root=tmp_path / "demo", exit_after_converge=True, write=lines.append)
    out = "\n".join(lines)
    assert code == 0, out
    _check_output(out, 3)
    _verify(tmp_path / "demo", 3)


def test_the_demo_network_looks_alive_on_the_dashboard(tmp_path):
    """What the demo writes is what the view counts: nothing invalid or expired, every accept resolved."""
    asyncio.run(run_demo(3, root=tmp_path, exit_after_converge=True, write=lambda line: None))
    with Store(tmp_path / "athens" / "solidarity.db") as store:
        ViewUpdater(load_registry()).catch_up(store)
        left_out = store.conn.execute("SELECT type, reason FROM view_events WHERE status != 'valid'").fetchall()
        summary = queries.summary(store, dt.date.today().isoformat(), None)
    assert left_out == []
    assert summary["pledges"]["count"] == 6 and summary["pledges"]["by_status"]["expired"] == 0
    assert {kind for kind, in _pledge_kinds(tmp_path)} == set(PLEDGE_KINDS)  # every kind, from 3 cities on
    for items in ("offers", "requests"):
        assert summary[items]["by_status"]["expired"] == 0, summary[items]
    assert summary["accepts"] == {"count": 6, "resolved": 6}
    assert summary["statements"] == 1


def _pledge_kinds(root: Path) -> list[tuple[str]]:
    with Store(root / "athens" / "solidarity.db", readonly=True) as store:
        return store.conn.execute("SELECT kind FROM view_items WHERE type = 'pledge'").fetchall()


async def test_run_demo_refuses_a_folder_in_use(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder"):
        await run_demo(3, root=tmp_path, exit_after_converge=True, write=lambda line: None)
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_cities_out_of_range_is_a_usage_error(capsys):
    from node.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["demo", "--cities", "9"])
    assert exc.value.code == 2
    assert "--cities" in capsys.readouterr().err
