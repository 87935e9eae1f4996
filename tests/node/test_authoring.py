"""Authoring into the own log: entries, tile hashes and signed checkpoints in one transaction."""

from __future__ import annotations

import os
import random
import sqlite3
import stat

import pytest

from node.audit import AuditFailure, audit_store
from node.authoring import Event
from node.config import load_config
from node.errors import ConfigError, StorageError
from node.local import open_node
from node.store import FORMAT_VERSION, Store
from protocol.checkpoint import open_checkpoint
from protocol.entry import check_body, decode_entry, entry_id
from protocol.errors import SchemaError
from protocol.merkle import root_of

from .conftest import OFFER, PLEDGE


def test_init_writes_key_config_database_and_profile(make_node):
    node = make_node("Athens")
    data = node.config.data_dir
    assert stat.S_IMODE(os.stat(data / "key.pem").st_mode) == 0o600
    assert (data / "config.toml").exists()
    state = node.store.own_log()
    assert state.size == 1 and state.own
    [stored] = list(node.store.entries(state.lid))
    entry = decode_entry(stored.entry)
    assert (entry.type, entry.seq, entry.origin) == ("city", 0, node.config["node.origin"])
    assert check_body(entry, stored.body)["name"] == "Athens"
    cp = open_checkpoint(state.checkpoint, node.signer.verifier).checkpoint
    assert (cp.size, cp.root) == (1, root_of([stored.leaf]))


def test_init_refuses_to_overwrite_an_existing_node(make_node, tmp_path):
    make_node("Athens")
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        make_node("Athens")


def test_append_signs_a_checkpoint_over_every_entry(make_node):
    node = make_node("Athens")
    author = node.author()
    [a] = author.append([Event(type="pledge", body=PLEDGE)])
    assert a.entry.seq == 1
    state = node.store.own_log()
    leaves = [e.leaf for e in node.store.entries(state.lid)]
    assert leaves[1] == a.id == entry_id(a.entry_bytes)
    cp = open_checkpoint(state.checkpoint, node.signer.verifier).checkpoint
    assert (cp.size, cp.root) == (2, root_of(leaves))


def test_batch_of_600_stores_tile_hashes_and_audits(make_node):
    node = make_node("Athens")
    node.author().append([Event(type="offer", body=OFFER)] * 600)
    state = node.store.own_log()
    assert state.size == 601
    # 601 leaves complete two level-8 nodes (leaves 0-255 and 256-511).
    assert node.store.conn.execute("SELECT count(*) FROM hashes WHERE level = 8").fetchone()[0] == 2
    [result] = audit_store(node.store)
    assert result.size == 601 and result.bodies == 601


def test_invalid_event_writes_nothing(make_node):
    node = make_node("Athens")
    before = node.store.own_log()
    bad = {**PLEDGE, "kind": "relokation"}
    with pytest.raises(SchemaError, match="kind"):
        node.author().append([Event(type="pledge", body=PLEDGE), Event(type="pledge", body=bad)])
    assert node.store.own_log() == before


def test_unknown_field_is_refused_naming_it(make_node):
    node = make_node("Athens")
    with pytest.raises(SchemaError, match="plaecs"):
        node.author().append([Event(type="pledge", body={**PLEDGE, "plaecs": 5})])


def test_dry_run_previews_without_writing(make_node):
    node = make_node("Athens")
    [a] = node.author().preview([Event(type="pledge", body=PLEDGE)])
    assert a.entry.seq == 1
    assert node.store.own_log().size == 1


def test_key_readable_by_others_is_refused(make_node):
    node = make_node("Athens")
    os.chmod(node.config.key_path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        open_node(load_config(node.config.data_dir))


def test_database_from_a_newer_release_is_refused(make_node):
    node = make_node("Athens")
    path = node.config.database_path
    node.close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (str(FORMAT_VERSION + 1),))
    conn.commit()
    conn.close()
    with pytest.raises(StorageError, match="newer release"):
        Store(path)


def test_changed_origin_in_config_is_refused(make_node):
    node = make_node("Athens")
    path = node.config.data_dir / "config.toml"
    path.write_text(path.read_text().replace(node.config["node.origin"], "elsewhere.example/log"))
    with pytest.raises(ConfigError, match="origin is fixed"):
        open_node(load_config(node.config.data_dir))


def test_encrypted_key_needs_its_passphrase(make_node, tmp_path):
    secret = tmp_path / "passphrase"
    secret.write_text("correct horse battery staple\n")
    node = make_node("Athens", passphrase=b"correct horse battery staple", passphrase_file=str(secret))
    reopened = open_node(load_config(node.config.data_dir))
    assert str(reopened.signer.verifier) == str(node.signer.verifier)
    reopened.close()
    secret.write_text("wrong\n")
    with pytest.raises(Exception, match="passphrase"):
        open_node(load_config(node.config.data_dir))


@pytest.mark.parametrize(
    "corruption, message",
    [
        ("UPDATE entries SET entry = substr(entry, 1, length(entry) - 1) || x'00' WHERE seq = 3", "entry 3"),
        ("UPDATE entries SET body = x'00' || substr(body, 2) WHERE seq = 2", "entry 2: body"),
        ("DELETE FROM entries WHERE seq = 5", "entry 5 is missing"),
        ("UPDATE hashes SET hash = zeroblob(32)", "tile hash"),
        ("UPDATE logs SET root = zeroblob(32)", "root"),
        ("UPDATE logs SET size = size + 1", "head says"),
    ],
    ids=["entry-bytes", "body", "missing-entry", "tile-hash", "root", "size"],
)
def test_verify_names_the_first_problem(make_node, corruption, message):
    node = make_node("Athens")
    node.author().append([Event(type="pledge", body=PLEDGE)] * 300)
    node.store.conn.execute(corruption)
    with pytest.raises(AuditFailure, match=message):
        audit_store(node.store)


def test_verify_reports_a_corrupted_database_file(make_node):
    node = make_node("Athens")
    node.author().append([Event(type="pledge", body=PLEDGE)] * 2000)
    path = node.config.database_path
    node.close()
    Store(path).conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(path, "r+b") as f:
        f.seek(4096 * 3)
        f.write(random.Random(42).randbytes(4096))
    with pytest.raises((AuditFailure, StorageError)):
        with Store(path, readonly=True) as store:
            audit_store(store)
