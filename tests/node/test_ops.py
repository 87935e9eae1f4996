"""What an operator watches: /metrics, /readyz, /healthz."""

from __future__ import annotations

from node.app import create_app
from node.authoring import Event

from .conftest import PLEDGE


async def test_metrics_in_prometheus_text_format(make_node, aiohttp_client):
    node = make_node("Athens")
    client = await aiohttp_client(create_app(node.config))
    node.author().append([Event(type="pledge", body=PLEDGE)] * 3)
    await client.get("/v1/logs")
    await client.get("/v1/logs/" + "0" * 64 + "/checkpoint")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    origin = node.config["node.origin"]
    assert f'solidarity_log_entries{{log_id="{node.store.own_log().log_id}",origin="{origin}",own="true"}} 4.0' in text
    assert 'solidarity_http_request_seconds_count{route="/v1/logs",status="200"}' in text
    assert 'solidarity_errors_total{kind="NotFound"} 1.0' in text
    assert "solidarity_evidence_held 0.0" in text


async def test_two_apps_in_one_process_keep_separate_metrics(make_node, aiohttp_client):
    a = await aiohttp_client(create_app(make_node("Athens").config))
    b = await aiohttp_client(create_app(make_node("Berlin", country="DE").config))
    await a.get("/v1/logs")
    text_b = await (await b.get("/metrics")).text()
    assert 'route="/v1/logs"' not in text_b


async def test_readyz_and_healthz(make_node, aiohttp_client):
    client = await aiohttp_client(create_app(make_node("Athens").config))
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"
    assert (await client.get("/healthz")).status == 200


def _self_signed(tmp_path):
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "city-ca.test")])
    now = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path = tmp_path / "city-ca.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


async def test_peer_connections_use_the_configured_proxy_and_ca_bundle(make_node, tmp_path):
    import ssl

    from node.config import build_config
    from node.errors import ConfigError
    from node.peer_http import peer_session, peer_ssl_context

    node = make_node("Athens")
    ca = _self_signed(tmp_path)
    values = {**node.config.values, "peers.proxy": "http://proxy.city.example:3128", "peers.ca_file": str(ca)}
    config = build_config(node.config.data_dir, values, env={})
    context = peer_ssl_context(config)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert any(c["subject"] == ((("commonName", "city-ca.test"),),) for c in context.get_ca_certs())
    async with peer_session(config) as session:
        assert str(session._default_proxy) == "http://proxy.city.example:3128"  # noqa: SLF001
    bad = build_config(node.config.data_dir, {**values, "peers.ca_file": str(tmp_path / "missing.pem")}, env={})
    try:
        peer_ssl_context(bad)
    except ConfigError as exc:
        assert "peers.ca_file" in str(exc)
    else:
        raise AssertionError("a missing CA bundle was accepted")


def test_passphrase_from_systemd_credentials(make_node, tmp_path, monkeypatch):
    from node.config import load_config
    from node.local import open_node

    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "passphrase").write_text("from systemd\n")
    node = make_node("Athens", passphrase=b"from systemd")  # node.passphrase_file stays empty
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    reopened = open_node(load_config(node.config.data_dir))
    assert str(reopened.signer.verifier) == str(node.signer.verifier)
    reopened.close()
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    try:
        open_node(load_config(node.config.data_dir))
    except Exception as exc:  # noqa: BLE001 - the message is what matters
        assert "passphrase" in str(exc)
    else:
        raise AssertionError("an encrypted key opened without its passphrase")


async def test_clock_far_off_a_peers_is_logged(make_node, caplog):
    import email.utils
    import random
    import time

    import aiohttp

    from node.federation import Federation
    from protocol.network import AdmissionRule, Founder, NetworkFile

    node = make_node("Athens")
    network = NetworkFile(name="test-net", rule=AdmissionRule(min_vouches=1, share_percent=50),
                          founders=(Founder(name="Athens", key=node.signer.verifier, url="http://127.0.0.1:1"),),
                          signatures=())
    async with aiohttp.ClientSession() as session:
        federation = Federation(node.store, network, own_url="http://127.0.0.1:1", session=session,
                                rng=random.Random(42))
        federation._check_clock("http://peer", email.utils.formatdate(time.time() - 3600, usegmt=True))  # noqa: SLF001
        await federation.close()
    assert federation.clock_skew_s > 3000
    assert any("check NTP" in r.getMessage() for r in caplog.records)
