"""Structured logs: one JSON object per line with fields; secrets never written."""

from __future__ import annotations

import io
import json
import logging

from node.logs import setup_logging


def test_json_lines_with_fields_and_no_secrets():
    stream = io.StringIO()
    setup_logging("info", "json", stream=stream)
    try:
        logging.getLogger("node.sync").info(
            "synced", extra={"log_id": "ab" * 32, "peer": "http://127.0.0.1:1", "fetched": 3,
                             "passphrase": "hunter2", "private_key": "-----BEGIN"}
        )
    finally:
        setup_logging("warning", "text")
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "synced" and record["level"] == "info" and record["logger"] == "node.sync"
    assert record["log_id"] == "ab" * 32 and record["peer"] == "http://127.0.0.1:1" and record["fetched"] == 3
    assert "hunter2" not in line and "BEGIN" not in line


def test_text_format_for_terminals():
    stream = io.StringIO()
    setup_logging("info", "text", stream=stream)
    try:
        logging.getLogger("node.app").warning("watch failed", extra={"error": "disk full"})
    finally:
        setup_logging("warning", "text")
    assert stream.getvalue().strip() == "warning node.app: watch failed error=disk full"
