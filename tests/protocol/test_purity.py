"""protocol/ is sans-I/O: importing all of it loads no networking, storage or event loop."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import protocol

FORBIDDEN = ["asyncio", "aiohttp", "sqlite3", "socket", "ssl", "sqlite_utils", "selectors", "logging"]


def test_importing_protocol_loads_no_io_modules():
    modules = [f"protocol.{m.name}" for m in pkgutil.iter_modules(protocol.__path__)]
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        f"print(json.dumps([m for m in {FORBIDDEN!r} if m in sys.modules]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_protocol_source_reads_no_clock_randomness_or_files():
    root = Path(protocol.__file__).parent
    for path in root.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        for word in ("time.time", "os.urandom", "secrets.", "random.", "open(", "datetime.now", "environ"):
            assert word not in text, f"{path.name} uses {word}"
