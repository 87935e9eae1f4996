"""The network file from the command line: create, sign, join; then sync and peers."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from node.cli import main
from protocol.network import parse_network_file, verify_network_signatures

from .harness import Network

pytestmark = pytest.mark.slow


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def init(capsys, data: Path, city: str, url: str) -> str:
    code, out, err = run(capsys, "init", "--data", data, "--city", city, "--country", "GR", "--url", url,
                         "--network", "test-net")
    assert code == 0, err
    return out.strip().splitlines()[-1]  # the verifier key


def test_create_sign_join_and_refusals(tmp_path, capsys):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    key_a = init(capsys, a, "Athens", "http://127.0.0.1:9101")
    key_b = init(capsys, b, "Berlin", "http://127.0.0.1:9102")
    path = tmp_path / "network.toml"
    code, out, err = run(capsys, "network", "create", "--name", "test-net", "--quorum", "2",
                         "--member", f"Athens,{key_a},http://127.0.0.1:9101",
                         "--member", f"Berlin,{key_b},http://127.0.0.1:9102", "--out", path)
    assert code == 0, err
    assert verify_network_signatures(parse_network_file(path.read_text())) == ()
    for data in (a, b):
        code, out, err = run(capsys, "network", "sign", "--data", data, path)
        assert code == 0, err
    assert {f.name for f in verify_network_signatures(parse_network_file(path.read_text()))} == {"Athens", "Berlin"}
    code, out, err = run(capsys, "network", "join", "--data", a, path)
    assert code == 0 and "signed by: Athens, Berlin" in out
    assert (a / "network.toml").exists()

    # A city joining later installs it at init; a node of another network is refused with the reason.
    code, out, err = run(capsys, "init", "--data", c, "--city", "Cork", "--country", "IE",
                         "--url", "http://127.0.0.1:9103", "--network", "test-net", "--network-file", path)
    assert code == 0, err and (c / "network.toml").exists()
    other = tmp_path / "other"
    code, out, err = run(capsys, "init", "--data", other, "--city", "Oslo", "--country", "NO",
                         "--url", "http://127.0.0.1:9104", "--network", "another-net")
    code, out, err = run(capsys, "network", "join", "--data", other, path)
    assert code == 1 and "another-net" in err and "test-net" in err
    # Tampering with the file after signing is caught.
    path.write_text(path.read_text().replace("min_vouches = 2", "min_vouches = 1"))
    code, out, err = run(capsys, "network", "join", "--data", b, path)
    assert code == 1 and "signature" in err


async def test_sync_and_peers_commands(tmp_path, capsys):
    net = Network(tmp_path, 3)
    try:
        for node in net.nodes[:2]:
            await net.start(node)
        offline = net.nodes[2]
        node = net.nodes[0]
        # `solidarity sync` from the offline node's folder pulls every member log once and exits.
        code = await asyncio.to_thread(main, ["sync", "--data", str(offline.data)])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "grew" in out
        sizes = offline.sizes()
        assert len(sizes) == 3
        code = await asyncio.to_thread(main, ["peers", "--data", str(offline.data)])
        out, err = capsys.readouterr()
        assert code == 0
        assert f"{node.url}  answers" in out
    finally:
        for n in net.nodes[:2]:
            await net.stop(n)
        for n in net.nodes:
            n.sock.close()


async def test_peer_under_a_different_network_file_is_refused(tmp_path):
    net = Network(tmp_path, 2)
    try:
        other = net.nodes[1]
        import dataclasses

        from protocol.network import AdmissionRule, format_network_file

        changed = dataclasses.replace(net.network, rule=AdmissionRule(min_vouches=1, share_percent=60),
                                      signatures=())
        (other.data / "network.toml").write_text(format_network_file(changed))
        await net.start_all()
        node = net.nodes[0]
        for _ in range(100):  # bounded: 100 x 0.1 s
            status = node.federation.status(node.federation.store)
            errors = [p["last_error"] or "" for p in status["peers"]]
            if any("different network file" in e for e in errors):
                break
            await asyncio.sleep(0.1)
        assert any("different network file" in e for e in errors), errors
        assert len(node.sizes()) == 1  # nothing was taken from it
        assert json.dumps(status["network"]["signed_by"]) == json.dumps(["Athens", "Berlin"])
    finally:
        await net.stop_all()
