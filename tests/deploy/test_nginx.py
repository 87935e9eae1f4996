"""deploy/nginx/solidarity.conf, for real: nginx with TLS in front of a real node.

The shipped site file is rendered for the test by rewriting only its machine-specific lines
(listen addresses, certificate paths, the upstream port, the cache and log paths; each rewrite must
apply exactly once, so a changed site file fails here instead of being tested half), wrapped in a
minimal main nginx.conf, and run as a foreground nginx on loopback ephemeral ports in front of
``python -m node.cli serve`` on a node with 600 entries. Then, over HTTPS:

- full tiles and full entry bundles come through immutable, and the second fetch is a cache HIT;
- gzip from the node passes through untouched (Vary kept), identity clients get identity bytes;
- the checkpoint is not cached by the proxy, and a new entry shows at once;
- /v1/logs and /v1/status work and are not cached; POSTs reach the node, uncached;
- a request body over 64 KiB is refused by nginx (413), one of exactly 64 KiB reaches the node;
- /healthz, /readyz and /metrics (local addresses only) pass through;
- security headers, the HTTP->HTTPS redirect and HTTP/2 by ALPN.

nginx must be installed (.ci/run installs it on CI); elsewhere the test is skipped without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import gzip
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from node.authoring import Event
from node.config import load_config
from node.local import init_node, open_node
from protocol.network import AdmissionRule, Founder, NetworkFile, format_network_file, sign_network_file
from tests.node.conftest import PLEDGE, seed_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "deploy" / "nginx" / "solidarity.conf"
IMMUTABLE = "public, max-age=31536000, immutable"
ENTRIES = 600
MAX_BODY = 64 * 1024


def _nginx_binary() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx", "/usr/local/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    message = "nginx is not installed (apt-get install nginx-light; .ci/run does this on CI)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + ": on CI this test must run")
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "solidarity test proxy")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    return cert_path, key_path


def render_site(text: str, *, https_port: int, http_port: int, node_port: int, cert: Path, key: Path, tmp: Path) -> str:
    """The shipped site with its machine-specific lines pointed at the test's ports and files."""
    rewrites = [
        (r"^(\s*)listen 443 ssl http2;$", rf"\g<1>listen 127.0.0.1:{https_port} ssl http2;"),
        (r"^\s*listen \[::\]:443 ssl http2;\n", ""),
        (r"^(\s*)listen 80;$", rf"\g<1>listen 127.0.0.1:{http_port};"),
        (r"^\s*listen \[::\]:80;\n", ""),
        (r"^(\s*)ssl_certificate /etc/letsencrypt/live/solidarity\.example\.org/fullchain\.pem;$",
         rf"\g<1>ssl_certificate {cert};"),
        (r"^(\s*)ssl_certificate_key /etc/letsencrypt/live/solidarity\.example\.org/privkey\.pem;$",
         rf"\g<1>ssl_certificate_key {key};"),
        (r"^(\s*)server 127\.0\.0\.1:8701;$", rf"\g<1>server 127.0.0.1:{node_port};"),
        (r"^proxy_cache_path /var/cache/nginx/solidarity ", f"proxy_cache_path {tmp / 'cache'} "),
        (r"^(\s*)root /var/www/letsencrypt;$", rf"\g<1>root {tmp / 'acme'};"),
        (r"^(\s*)access_log /var/log/nginx/solidarity\.access\.log;$", rf"\g<1>access_log {tmp / 'access.log'};"),
    ]
    for pattern, replacement in rewrites:
        text, n = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert n == 1, f"deploy/nginx/solidarity.conf changed: /{pattern}/ matched {n} times, not once"
    leftover = re.findall(r"^[^#\n]*(?:/etc/|/var/)[^\n]*$", text, flags=re.MULTILINE)
    assert not leftover, f"machine paths left in the rendered site: {leftover}"
    return text


def main_conf(tmp: Path, site: Path) -> str:
    temp = "\n".join(
        f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # As root, nginx would run its workers as "nobody", who cannot enter pytest's 0700 tmp folders.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}worker_processes 1;\npid {tmp / 'nginx.pid'};\nerror_log {tmp / 'error.log'} info;\n"
        "events { worker_connections 256; }\n"
        "http {\n    default_type application/octet-stream;\n"
        f"{temp}\n    access_log {tmp / 'access-main.log'};\n    include {site};\n}}\n"
    )


def _make_node(data: Path, url: str) -> None:
    node, _ = init_node(data, city="Athens", country="GR", url=url, network="proxy-test", seed=seed_for("Athens"))
    try:
        node.author().append([Event(type="pledge", body=PLEDGE) for _ in range(ENTRIES - 1)])
        network = NetworkFile(
            name="proxy-test",
            rule=AdmissionRule(min_vouches=1, share_percent=50),
            founders=(Founder(name="Athens", key=node.signer.verifier, url=url),),
            signatures=(),
        )
        (data / "network.toml").write_text(format_network_file(sign_network_file(network, node.signer)))
    finally:
        node.close()


def _append_one(data: Path) -> None:
    node = open_node(load_config(data))
    try:
        node.author().append([Event(type="pledge", body=PLEDGE)])
    finally:
        node.close()


def _stop(proc: subprocess.Popen | None, sig: int) -> str:
    if proc is None:
        return ""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    err = ""
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            with contextlib.suppress(Exception):
                err += stream.read() or ""
                stream.close()
    return err


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited {proc.returncode}: {log.read_text() if log.exists() else ''}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"nginx did not listen on {port}: {log.read_text() if log.exists() else ''}")
        time.sleep(0.05)


def _max_age(cache_control: str) -> int:
    m = re.search(r"max-age=(\d+)", cache_control)
    assert m, cache_control
    return int(m.group(1))


async def test_nginx_site_terminates_tls_caches_tiles_and_guards_the_node(tmp_path):
    nginx = _nginx_binary()
    tmp = tmp_path
    (tmp / "acme").mkdir()
    cert, key = _self_signed(tmp)
    https_port, http_port = _free_port(), _free_port()
    data = tmp / "node"
    public = f"https://127.0.0.1:{https_port}"
    _make_node(data, public)

    env = {**os.environ, "PYTHONPATH": str(ROOT), "SOLIDARITY_LOGGING_LEVEL": "warning",
           "SOLIDARITY_GOSSIP_INTERVAL_MS": "60000"}
    node_proc = nginx_proc = None
    try:
        node_proc = subprocess.Popen(
            [sys.executable, "-m", "node.cli", "serve", "--data", str(data), "--listen", "127.0.0.1:0"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        line = node_proc.stdout.readline()
        assert line.startswith("serving on "), node_proc.stderr.read() if node_proc.poll() is not None else line
        direct = line.split()[-1]
        node_port = int(direct.rsplit(":", 1)[1])

        site = tmp / "solidarity.conf"
        site.write_text(render_site(SITE.read_text(encoding="utf-8"), https_port=https_port, http_port=http_port,
                                    node_port=node_port, cert=cert, key=key, tmp=tmp))
        conf = tmp / "nginx.conf"
        conf.write_text(main_conf(tmp, site))
        error_log = tmp / "error.log"
        base = [nginx, "-p", str(tmp), "-c", str(conf), "-e", str(error_log)]
        checked = subprocess.run([*base, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr + (error_log.read_text() if error_log.exists() else "")
        nginx_proc = subprocess.Popen([*base, "-g", "daemon off;"], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
        _wait_for_port(https_port, nginx_proc, error_log)

        await _check_through_proxy(f"https://127.0.0.1:{https_port}", f"http://127.0.0.1:{http_port}",
                                   direct, cert, data)
        _check_http2_is_offered(https_port, cert)
    finally:
        nginx_err = _stop(nginx_proc, signal.SIGQUIT)
        node_err = _stop(node_proc, signal.SIGINT)
    assert nginx_proc.returncode == 0, nginx_err
    assert node_proc.returncode == 0, node_err[-3000:]


async def _check_through_proxy(proxy: str, plain: str, direct: str, cert: Path, data: Path) -> None:
    tls = ssl.create_default_context(cafile=str(cert))
    connector = aiohttp.TCPConnector(ssl=tls)
    async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as s, \
            aiohttp.ClientSession(auto_decompress=False) as node:

        async def get(path: str, **headers: str) -> tuple[aiohttp.ClientResponse, bytes]:
            async with s.get(proxy + path, headers=headers, allow_redirects=False) as r:
                return r, await r.read()

        # Security headers on every answer; no cache status where nothing is cached.
        r, body = await get("/healthz")
        assert r.status == 200 and b"ok" in body
        assert r.headers["Strict-Transport-Security"].startswith("max-age=")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["X-Frame-Options"] == "DENY"
        assert "default-src 'none'" in r.headers["Content-Security-Policy"]
        assert "X-Cache-Status" not in r.headers
        r, body = await get("/readyz")
        assert r.status == 200, body
        # Metrics: served to local addresses only (the test client is one), never cached.
        r, body = await get("/metrics")
        assert r.status == 200 and b"solidarity_" in body, body[:200]
        assert "X-Cache-Status" not in r.headers

        # /v1/logs through the proxy is the node's own answer.
        r, body = await get("/v1/logs")
        assert r.status == 200, body
        (log,) = json.loads(body)["logs"]
        assert log["size"] == ENTRIES
        prefix = log["prefix"]

        # /v1/status: works, never cached.
        for _ in range(2):
            r, body = await get("/v1/status")
            assert r.status == 200, body
            assert json.loads(body)["network"]["name"] == "proxy-test"
            assert r.headers["Cache-Control"] == "no-store"
            assert "X-Cache-Status" not in r.headers

        # A full hash tile: immutable, MISS then HIT, the node's exact bytes.
        async with node.get(direct + prefix + "tile/0/001") as d:
            expected_tile = await d.read()
        assert len(expected_tile) == 256 * 32
        statuses = []
        for _ in range(2):
            r, body = await get(prefix + "tile/0/001", **{"Accept-Encoding": "gzip"})
            assert r.status == 200
            assert r.headers["Cache-Control"] == IMMUTABLE
            assert "Content-Encoding" not in r.headers  # hashes: nothing to compress, nginx adds nothing
            assert body == expected_tile
            statuses.append(r.headers["X-Cache-Status"])
        assert statuses == ["MISS", "HIT"]

        # A full entry bundle: the node's gzip passes through (Vary kept); MISS then HIT.
        async with node.get(direct + prefix + "tile/entries/001", headers={"Accept-Encoding": "identity"}) as d:
            expected_bundle = await d.read()
            assert "Content-Encoding" not in d.headers
        statuses = []
        for _ in range(2):
            r, body = await get(prefix + "tile/entries/001", **{"Accept-Encoding": "gzip"})
            assert r.status == 200
            assert r.headers["Cache-Control"] == IMMUTABLE
            assert r.headers["Content-Encoding"] == "gzip"
            assert "Accept-Encoding" in r.headers["Vary"]
            assert gzip.decompress(body) == expected_bundle
            statuses.append(r.headers["X-Cache-Status"])
        assert statuses == ["MISS", "HIT"]
        # A client that cannot take gzip never gets the gzip copy from the cache.
        statuses = []
        for _ in range(2):
            r, body = await get(prefix + "tile/entries/001", **{"Accept-Encoding": "identity"})
            assert r.status == 200 and "Content-Encoding" not in r.headers
            assert body == expected_bundle
            assert r.headers["Cache-Control"] == IMMUTABLE
            statuses.append(r.headers["X-Cache-Status"])
        assert statuses[-1] == "HIT", statuses

        # A partial bundle changes into a full one: the node allows seconds, the proxy keeps to that.
        width = ENTRIES % 256
        r, _ = await get(prefix + f"tile/entries/002.p/{width}")
        assert r.status == 200 and _max_age(r.headers["Cache-Control"]) <= 5, r.headers
        # Errors are not cached either (the node says no-store).
        r, _ = await get(prefix + "tile/entries/099")
        assert r.status == 404 and r.headers.get("X-Cache-Status") in (None, "MISS", "BYPASS"), r.headers
        r, _ = await get(prefix + "tile/entries/099")
        assert r.headers.get("X-Cache-Status") != "HIT", r.headers

        # The checkpoint: not cached by the proxy, short-lived for everyone else; a new entry shows at once.
        r, body = await get(prefix + "checkpoint")
        assert r.status == 200
        assert body.decode().splitlines()[1] == str(ENTRIES)
        assert _max_age(r.headers["Cache-Control"]) <= 5
        assert "X-Cache-Status" not in r.headers
        await asyncio.to_thread(_append_one, data)
        r, body = await get(prefix + "checkpoint")
        assert body.decode().splitlines()[1] == str(ENTRIES + 1), body
        assert "X-Cache-Status" not in r.headers

        # POSTs reach the node uncached; the body limit is the node's, enforced by nginx.
        async with s.post(proxy + "/v1/gossip", json={"network": "00" * 32, "digest": ""}) as r:
            assert r.status == 409, await r.text()  # the node's own answer: a different network file
            assert r.headers["Cache-Control"] == "no-store" and "X-Cache-Status" not in r.headers
        async with s.post(proxy + "/v1/gossip", data=b" " * (MAX_BODY + 1),
                          headers={"Content-Type": "application/json"}) as r:
            assert r.status == 413, await r.text()  # refused by nginx
            assert r.headers.get("Content-Type", "").startswith("text/html")
            assert r.headers["Strict-Transport-Security"]
        async with s.post(proxy + "/v1/gossip", data=b" " * MAX_BODY,
                          headers={"Content-Type": "application/json"}) as r:
            assert r.status == 400, await r.text()  # exactly the limit reaches the node, which parses it
            assert r.headers["Content-Type"].startswith("application/problem+json")
        async with s.post(proxy + "/v1/announce", data=b" " * (MAX_BODY + 1)) as r:
            assert r.status == 413

        # Plain HTTP only redirects to HTTPS.
        async with aiohttp.ClientSession() as plain_session:
            async with plain_session.get(plain + "/v1/logs", allow_redirects=False) as r:
                assert r.status == 301
                assert r.headers["Location"].startswith("https://") and r.headers["Location"].endswith("/v1/logs")


def _check_http2_is_offered(port: int, cert: Path) -> None:
    tls = ssl.create_default_context(cafile=str(cert))
    tls.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            tls.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
        assert conn.selected_alpn_protocol() == "h2"
        assert conn.version() in ("TLSv1.2", "TLSv1.3")
