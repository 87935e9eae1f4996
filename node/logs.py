"""Log output: JSON lines for machines, short text for people at a terminal.

Only the CLI installs this; library code just uses ``logging.getLogger(__name__)``
with constant messages and structured ``extra`` fields. Fields that could hold
secrets are never passed to a logger in the first place; as a second line of
defence, any extra whose name suggests a secret is dropped here.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_SECRET_WORDS = ("passphrase", "password", "secret", "private", "seed")


def _extras(record: logging.LogRecord) -> dict:
    out = {}
    for key, value in vars(record).items():
        if key in _STANDARD or any(w in key.lower() for w in _SECRET_WORDS):
            continue
        out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_extras(record),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, sort_keys=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in _extras(record).items())
        text = f"{record.levelname.lower():7} {record.name}: {record.getMessage()}"
        if fields:
            text += f" {fields}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def setup_logging(level: str = "info", fmt: str = "auto", stream=None) -> None:
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "text" if getattr(stream, "isatty", lambda: False)() else "json"
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
