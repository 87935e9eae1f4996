"""A network of real nodes in one test process: real HTTP on ephemeral loopback ports.

Each node has its own data folder, key (deterministic seed), database and
aiohttp server; they gossip with each other exactly as deployed nodes do.
Topologies are made by restricting which peers a node may contact
(``Federation.allowed_peers``), partitions by changing that set.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from node.app import create_app
from node.authoring import Event
from node.config import load_config
from node.context import FEDERATION
from node.local import LocalNode, init_node, open_node
from node.store import Store
from protocol.network import AdmissionRule, Founder, NetworkFile, format_network_file, sign_network_file
from tests.node.conftest import seed_for

CITIES = [
    ("Athens", "GR"), ("Berlin", "DE"), ("Barcelona", "ES"), ("Palermo", "IT"), ("Gdansk", "PL"),
    ("Utrecht", "NL"), ("Leipzig", "DE"), ("Lyon", "FR"), ("Ghent", "BE"), ("Malmo", "SE"),
    ("Porto", "PT"), ("Riga", "LV"),
]


def reserve_port() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class TestNode:
    name: str
    data: Path
    url: str
    sock: socket.socket
    runner: web.AppRunner | None = None
    app: web.Application | None = None
    local: LocalNode | None = field(default=None, repr=False)

    @property
    def federation(self):
        return self.app[FEDERATION]

    def author(self, events: list[Event]) -> None:
        """Author as the CLI would: its own connection, SQLite's write lock."""
        node = open_node(load_config(self.data))
        try:
            node.author().append(events)
        finally:
            node.close()

    def digest(self) -> str:
        with Store(self.data / "solidarity.db", readonly=True) as store:
            return self.federation.network_digest(store)

    def sizes(self) -> dict[str, int]:
        with Store(self.data / "solidarity.db", readonly=True) as store:
            return {s.origin: s.size for s in store.logs()}


class Network:
    def __init__(self, root: Path, n: int, *, interval_ms: int = 100, min_vouches: int = 1, share: int = 50,
                 founders: int | None = None) -> None:
        self.root = root
        self.interval_ms = interval_ms
        self.nodes: list[TestNode] = []
        founders = n if founders is None else founders
        signers = []
        for name, country in CITIES[:n]:
            sock = reserve_port()
            url = f"http://127.0.0.1:{sock.getsockname()[1]}"
            data = root / name.lower()
            local, _ = init_node(data, city=name, country=country, url=url, network="test-net",
                                 seed=seed_for(name))
            signers.append(local.signer)
            local.close()
            self.nodes.append(TestNode(name=name, data=data, url=url, sock=sock))
        network = NetworkFile(
            name="test-net",
            rule=AdmissionRule(min_vouches=min_vouches, share_percent=share),
            founders=tuple(
                Founder(name=node.name, key=signer.verifier, url=node.url)
                for node, signer in list(zip(self.nodes, signers))[:founders]
            ),
            signatures=(),
        )
        for signer in signers[:founders]:
            network = sign_network_file(network, signer)
        self.network = network
        text = format_network_file(network)
        for node in self.nodes:
            (node.data / "network.toml").write_text(text)

    async def start(self, node: TestNode) -> None:
        config = load_config(node.data, env={
            "SOLIDARITY_GOSSIP_INTERVAL_MS": str(self.interval_ms),
            "SOLIDARITY_GOSSIP_TIMEOUT_MS": "2000",
        })
        node.app = create_app(config)
        node.runner = web.AppRunner(node.app, access_log=None)
        await node.runner.setup()
        site = web.SockSite(node.runner, node.sock)
        await site.start()

    async def stop(self, node: TestNode) -> None:
        if node.runner is not None:
            await node.runner.cleanup()
            node.runner = None
            # The listening socket closed with the site; take the same port again for a restart.
            port = int(node.url.rsplit(":", 1)[1])
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            node.sock = sock

    async def start_all(self) -> None:
        for node in self.nodes:
            await self.start(node)

    async def stop_all(self) -> None:
        for node in self.nodes:
            await self.stop(node)
            node.sock.close()

    def restrict(self, edges: dict[int, set[int]]) -> None:
        """Let node i contact only the nodes in edges[i] (both directions must be listed)."""
        for i, node in enumerate(self.nodes):
            if node.app is not None:
                node.federation.allowed_peers = {self.nodes[j].url for j in edges.get(i, set())}

    async def quiesce(self, timeout: float = 30.0) -> None:
        """Wait (bounded) until no node has an exchange or pull under way, e.g. after restrict():
        in a real partition nothing crosses; here work started before the cut must finish first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_rounds = 0
        while quiet_rounds < 3:  # quiet three checks in a row: a finishing pull may announce
            busy = [n.name for n in self.nodes if n.app is not None and n.federation.in_flight]
            quiet_rounds = 0 if busy else quiet_rounds + 1
            if loop.time() > deadline:
                raise AssertionError(f"still busy after {timeout} s: {busy}")
            await asyncio.sleep(0.05)

    async def converge(
        self, timeout: float = 60.0, nodes: list[TestNode] | None = None, *, sizes_too: bool = True
    ) -> str:
        """Wait (bounded) until all given nodes have one network digest (and equal log sizes:
        not after an equivocation, where nodes may hold different branches)."""
        nodes = nodes or self.nodes
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            digests = {n.digest() for n in nodes}
            sizes = [n.sizes() for n in nodes]
            if len(digests) == 1 and (not sizes_too or all(s == sizes[0] for s in sizes)):
                return digests.pop()
            if loop.time() > deadline:
                raise AssertionError(f"no convergence in {timeout} s: {len(digests)} digests, sizes {sizes}")
            await asyncio.sleep(0.1)
