"""The HTTP client the node uses towards peers: verified TLS, optional proxy and CA bundle.

City networks often sit behind an outbound proxy and a TLS-inspecting
firewall with its own certificate authority; both are settings
(``peers.proxy``, ``peers.ca_file``). Certificate verification is never
switched off.
"""

from __future__ import annotations

import ssl

import aiohttp

from node.config import Config
from node.errors import ConfigError


def peer_ssl_context(config: Config) -> ssl.SSLContext:
    ca = config.ca_path
    try:
        return ssl.create_default_context(cafile=str(ca) if ca else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"setting peers.ca_file: cannot load {ca}: {exc}") from exc


def peer_session(config: Config) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(ssl=peer_ssl_context(config), limit=64)
    proxy = config["peers.proxy"] or None
    return aiohttp.ClientSession(connector=connector, proxy=proxy, headers={"User-Agent": "solidarity-node"})
