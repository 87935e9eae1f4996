"""Backups during writes, restores that never fork the log, and database migrations."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from node import store as store_module
from node.audit import audit_store
from node.authoring import Event
from node.backup import backup_node, catch_up_required, restore_node
from node.config import load_config
from node.errors import AuthoringRefused, StorageError
from node.local import open_node
from node.store import Store

from .conftest import PLEDGE
from .harness import Network

ROOT = Path(__file__).resolve().parents[2]


def test_backup_during_a_burst_of_writes_is_consistent(make_node, tmp_path):
    node = make_node("Athens")
    data = node.config.data_dir
    stop = threading.Event()

    def burst() -> None:
        writer = open_node(load_config(data))
        try:
            while not stop.is_set():
                writer.author().append([Event(type="pledge", body=PLEDGE)] * 20)
        finally:
            writer.close()

    thread = threading.Thread(target=burst)
    thread.start()
    try:
        backups = []
        for i in range(5):
            out = tmp_path / f"backup-{i}.db"
            results = backup_node(node.config, out)
            backups.append(results[0].size)
    finally:
        stop.set()
        thread.join(timeout=60)
    assert backups == sorted(backups) and backups[-1] > 1
    for i in range(5):
        with Store(tmp_path / f"backup-{i}.db", readonly=True) as copy:
            [result] = audit_store(copy)
            assert result.size == backups[i]


def test_backup_command_refuses_to_overwrite(make_node, tmp_path):
    node = make_node("Athens")
    out = tmp_path / "b.db"
    out.write_text("precious")
    with pytest.raises(StorageError, match="already exists"):
        backup_node(node.config, out)
    assert out.read_text() == "precious"


def test_restore_refuses_a_corrupted_backup_and_changes_nothing(make_node, tmp_path):
    node = make_node("Athens")
    node.author().append([Event(type="pledge", body=PLEDGE)] * 5)
    out = tmp_path / "b.db"
    backup_node(node.config, out)
    conn = __import__("sqlite3").connect(out)
    conn.execute("UPDATE logs SET root = zeroblob(32)")
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="does not verify"):
        restore_node(node.config, out, str(node.signer.verifier))
    assert node.store.own_log().size == 6


async def test_restoring_an_old_backup_never_forks_and_loses_nothing(tmp_path):
    net = Network(tmp_path / "net", 3)
    try:
        athens = net.nodes[0]
        athens.author([Event(type="pledge", body=PLEDGE)] * 5)
        await net.start_all()
        await net.converge(timeout=60)
        config = load_config(athens.data)
        backup_node(config, tmp_path / "old.db")
        athens.author([Event(type="pledge", body={**PLEDGE, "places": 7})] * 4)  # after the backup
        await net.converge(timeout=60)
        await net.stop(athens)

        verifier = Store(athens.data / "solidarity.db", readonly=True).own_log().verifier
        restore_node(config, tmp_path / "old.db", verifier)
        with pytest.raises(AuthoringRefused, match="restored from a backup"):
            athens.author([Event(type="pledge", body=PLEDGE)])

        await net.start(athens)
        await net.converge(timeout=60)
        with Store(athens.data / "solidarity.db", readonly=True) as store:
            assert not catch_up_required(store)
            assert store.own_log().size == 10  # nothing lost: the 4 later entries came back
        athens.author([Event(type="offer", body={
            "category": "staff", "quantity": 2, "unit": "people", "from": "2026-01-01",
            "until": "2026-02-01", "description": "Two caseworkers."})])
        await net.converge(timeout=60)
        for node in net.nodes:
            with Store(node.data / "solidarity.db", readonly=True) as store:
                assert store.evidence() == {}, f"{node.name} holds evidence: the restore forked the log"
                sizes = {s.origin: s.size for s in store.logs()}
                assert sizes[config["node.origin"]] == 11
    finally:
        await net.stop_all()


def test_resume_authoring_override(make_node, tmp_path):
    node = make_node("Athens")
    backup_node(node.config, tmp_path / "b.db")
    restore_node(node.config, tmp_path / "b.db", str(node.signer.verifier))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    data = str(node.config.data_dir)
    run = lambda *a: subprocess.run([sys.executable, "-m", "node.cli", *a, "--data", data],  # noqa: E731
                                    capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    refused = run("pledge", "--kind", "other", "--places", "1", "--from", "2026-01-01", "--until", "2026-02-01")
    assert refused.returncode == 1 and "restored from a backup" in refused.stderr
    assert run("resume-authoring", "--force").returncode == 0
    ok = run("pledge", "--kind", "other", "--places", "1", "--from", "2026-01-01", "--until", "2026-02-01")
    assert ok.returncode == 0, ok.stderr


def test_older_database_is_migrated_after_a_backup(make_node, monkeypatch):
    node = make_node("Athens")
    path = node.config.database_path
    node.close()
    monkeypatch.setattr(store_module, "FORMAT_VERSION", 2)
    monkeypatch.setattr(store_module, "MIGRATIONS", {1: ["CREATE TABLE future_feature (x INTEGER)"]})
    with pytest.raises(StorageError, match="older"):
        Store(path, readonly=True)
    with Store(path) as store:
        assert store.format_version == 2
        assert "future_feature" in store.db.table_names()
    backup = path.with_name(path.name + ".format-1.bak")
    monkeypatch.setattr(store_module, "FORMAT_VERSION", 1)  # as the previous release would open it
    with Store(backup, readonly=True) as old:  # the pre-migration copy is a complete format-1 database
        assert old.format_version == 1
        audit_store(old)
