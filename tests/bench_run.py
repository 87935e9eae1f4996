"""Run one benchmark script small, as documented, and return its one JSON object.

The bench smoke tests (tests/test_bench_*smoke*.py) only check that each
benchmark still runs against the current code and prints every figure it
promises; never how fast anything is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_bench(script: str, *args: str, tmp_path: Path | None = None, timeout: float = 170) -> dict:
    """``python bench/<script> <args>`` from the checkout; its stdout must be exactly one JSON object.

    With ``tmp_path``, the run's temporary folders go there (TMPDIR), so a test can check they are removed.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if tmp_path is not None:
        env["TMPDIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # exactly one JSON document, nothing else on stdout
    assert isinstance(result, dict)
    return result
