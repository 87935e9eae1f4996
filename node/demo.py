"""``solidarity demo``: a small network of real city nodes on this machine.

Everything a deployed network does, in one process: each city gets its own
data folder made by ``init_node`` (a real Ed25519 key, its log and entry 0),
one network file names every city as a founder and is signed by all of them,
and each node runs the same ``create_app`` as ``solidarity serve``, on its own
loopback port, gossiping every half second. The demo then authors what cities
write (pledges, offers, requests, progress, a report, a statement), waits until
gossip has given every node every log, has the cities accept each other's
offers and requests and endorse the statement, waits again, checks every URL
it is about to print with a real HTTP GET, and prints them::

    Athens (GR)  http://127.0.0.1:41231  log 7a1b2c3d4e5f6a7b..., 13 entries
      ok  http://127.0.0.1:41231/v1/status
      ok  http://127.0.0.1:41231/v1/logs
      ok  http://127.0.0.1:41231/v1/logs/7a1b.../checkpoint
      ok  http://127.0.0.1:41231/v1/logs/7a1b.../tile/0/000.p/13

Ctrl-C (or SIGTERM) stops every node; ``--exit-after-converge`` stops after
printing, for scripts and CI. Without ``--dir`` the data folders live in a
temporary folder removed at exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

from node.app import create_app
from node.authoring import Authored, Event
from node.config import load_config
from node.errors import ConfigError, NodeError
from node.local import LocalNode, init_node
from protocol.entry import log_id as compute_log_id
from protocol.network import AdmissionRule, Founder, NetworkFile, format_network_file, sign_network_file
from protocol.tiles import tile_for_size, tile_path

log = logging.getLogger(__name__)

NETWORK = "solidarity-demo"
MIN_CITIES = 2
MAX_CITIES = 8
GOSSIP_INTERVAL_MS = 500
CONVERGE_TIMEOUT_S = 60.0
HOST = "127.0.0.1"

#: Every pledge kind of schemas/pledge.v1.json, with what a city would write about it.
PLEDGE_KINDS = {
    "relocation": "Relocation from reception centres at the EU external border, agreed by the city council.",
    "resettlement": "Resettlement places under the national resettlement programme.",
    "unaccompanied-minors": "Places in supervised group homes for unaccompanied minors.",
    "family-reunification": "Housing and support for families joining relatives who live in the city.",
    "other": "Humanitarian admission of people evacuated from conflict zones.",
}


@dataclass(frozen=True, slots=True)
class Need:
    """An offer or a request: category, quantity, unit and what it is."""

    category: str
    quantity: int
    unit: str
    description: str


@dataclass(frozen=True, slots=True)
class DemoCity:
    name: str
    country: str
    languages: tuple[str, ...]
    places: tuple[int, int]
    offers: tuple[Need, Need]
    request: Need
    report: tuple[int, int, int]  # arrivals, in reception, free places


CITIES: tuple[DemoCity, ...] = (
    DemoCity("Athens", "GR", ("el", "en", "ar"), (150, 40),
             (Need("interpretation", 60, "person-days",
                   "Arabic, Farsi and Pashto interpreters for asylum interviews, remote or on site."),
              Need("expertise", 10, "person-days",
                   "Advice on reception at sea arrivals from the municipal reception office.")),
             Need("reception-places", 80, "places",
                  "Arrivals on the islands exceed our reception centres; we ask for places for families."),
             (420, 1310, 35)),
    DemoCity("Barcelona", "ES", ("es", "ca", "en"), (120, 30),
             (Need("housing", 40, "flats", "Municipal flats for families, with social workers on site."),
              Need("training", 3, "courses",
                   "Three-day course for reception staff on housing-first approaches.")),
             Need("funding", 250000, "EUR", "Co-funding for language classes in the reception programme."),
             (230, 860, 120)),
    DemoCity("Palermo", "IT", ("it", "en", "fr"), (100, 25),
             (Need("expertise", 15, "person-days",
                   "Port reception after sea rescue: disembarkation, first aid and registration."),
              Need("staff", 6, "cultural mediators", "Cultural mediators speaking Arabic, French and Tigrinya.")),
             Need("staff", 12, "social workers",
                  "Social workers for the summer months, when disembarkations peak."),
             (910, 1540, 10)),
    DemoCity("Leipzig", "DE", ("de", "en", "uk"), (200, 50),
             (Need("reception-places", 60, "places",
                   "Places in shared flats and two reception centres, from next month."),
              Need("equipment", 300, "beds", "Beds and bedding from a closed emergency shelter.")),
             Need("interpretation", 40, "person-days",
                  "Tigrinya and Dari interpreters for school enrolment meetings."),
             (310, 1120, 85)),
    DemoCity("Gdansk", "PL", ("pl", "en", "uk"), (80, 20),
             (Need("housing", 25, "flats", "Flats renovated by the city for long stays."),
              Need("interpretation", 30, "person-days", "Ukrainian and Russian interpreters.")),
             Need("funding", 120000, "EUR", "Funding for after-school care for newly arrived children."),
             (180, 640, 40)),
    DemoCity("Utrecht", "NL", ("nl", "en"), (90, 20),
             (Need("funding", 150000, "EUR", "A grant for cities starting municipal reception."),
              Need("training", 2, "courses", "Course on integrating newcomers into local work.")),
             Need("housing", 30, "flats", "Housing for status holders while our new builds are finished."),
             (150, 520, 25)),
    DemoCity("Lyon", "FR", ("fr", "en"), (110, 30),
             (Need("staff", 4, "legal advisers", "Legal advisers for family reunification files."),
              Need("reception-places", 45, "places", "Places in a new reception centre opening in spring.")),
             Need("interpretation", 25, "person-days", "Pashto and Somali interpreters for health checks."),
             (260, 780, 60)),
    DemoCity("Ghent", "BE", ("nl", "fr", "en"), (60, 15),
             (Need("equipment", 20, "container units", "Furnished container units for temporary reception."),
              Need("expertise", 8, "person-days", "Advice on language tuition for adults.")),
             Need("training", 2, "courses", "Trauma-informed care training for reception staff."),
             (120, 410, 30)),
)


@dataclass
class DemoNode:
    city: DemoCity
    data: Path
    url: str
    sock: socket.socket
    log_id: str = ""
    local: LocalNode | None = field(default=None, repr=False)  # the city's own key and store, for authoring
    runner: web.AppRunner | None = None
    app: web.Application | None = None
    size: int = 1  # entries in its log: entry 0 (the profile) and what the demo authored
    ids: dict[str, str] = field(default_factory=dict)  # what was authored: name -> entry id hex


def _print(line: str) -> None:
    try:
        print(line, flush=True)
    except BrokenPipeError:
        # The reader went away (``solidarity demo | head``): keep serving, print nowhere
        # (the Python docs' recipe: point stdout at devnull so exit does not fail again).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"--base-port: cannot listen on {HOST}:{port} ({exc.strerror}); choose another, "
            "or 0 for any free ports"
        ) from None
    return sock


def _slug(name: str) -> str:
    return name.lower().replace(" ", "-")


def _possessive(name: str) -> str:
    return name + ("'" if name.endswith("s") else "'s")


# -- the events --------------------------------------------------------------


def _day(today: date, days: int) -> str:
    return (today + timedelta(days=days)).isoformat()


def _last_quarter(today: date) -> tuple[date, date]:
    """First and last day of the calendar quarter before the one ``today`` is in."""
    end = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1) - timedelta(days=1)
    return date(end.year, 3 * ((end.month - 1) // 3) + 1, 1), end


def _first_events(i: int, n: int, today: date) -> list[tuple[str, Event]]:
    """What city i writes on its own: pledges, offers, a request, a report (and a statement).

    Dates are around ``today``, so the dashboard shows them open, not expired."""
    city = CITIES[i]
    # Two pledges per city, kinds in turn: from three cities on, every kind appears.
    kinds = list(PLEDGE_KINDS)
    first, second = kinds[(2 * i) % len(kinds)], kinds[(2 * i + 1) % len(kinds)]
    events = [
        ("pledge-0", Event(type="pledge", body={
            "kind": first, "places": city.places[0], "from": _day(today, -120), "until": _day(today, 240),
            "description": PLEDGE_KINDS[first],
        })),
        ("pledge-1", Event(type="pledge", body={
            "kind": second, "places": city.places[1], "from": _day(today, -30), "until": _day(today, 150),
            "description": PLEDGE_KINDS[second],
        })),
    ]
    for k, need in enumerate(city.offers):
        events.append((f"offer-{k}", Event(type="offer", body={
            "category": need.category, "quantity": need.quantity, "unit": need.unit,
            "from": _day(today, -7), "until": _day(today, 180), "description": need.description,
        })))
    need = city.request
    events.append(("request", Event(type="request", body={
        "category": need.category, "quantity": need.quantity, "unit": need.unit,
        "from": _day(today, 0), "until": _day(today, 90), "description": need.description,
    })))
    arrivals, in_reception, free = city.report
    period_start, period_end = _last_quarter(today)
    events.append(("report", Event(type="report", body={
        "period_start": period_start.isoformat(), "period_end": period_end.isoformat(),
        "arrivals": arrivals, "in_reception": in_reception, "free_places": free,
        "note": "Last quarter's figures from the municipal reception office.",
    })))
    if i == 0:
        events.append(("statement", Event(type="statement", body={
            "title": "Safe harbours for people rescued at sea",
            "text": (
                f"The {n} cities of this network ask their governments to let cities receive people "
                "rescued at sea directly.\n\nWe have free places today, and we share staff, "
                "interpreters and expertise among ourselves."
            ),
            "language": "en",
        })))
    return events


def _progress_events(node: DemoNode) -> list[tuple[str, Event]]:
    """Progress on the city's own pledges, pointing at their entry ids."""
    city = node.city
    return [
        ("progress-0", Event(type="progress", body={
            "ref": node.ids["pledge-0"], "delivered": city.places[0] // 3, "note": "Arrivals so far.",
        })),
        ("progress-1", Event(type="progress", body={"ref": node.ids["pledge-1"], "delivered": city.places[1] // 5})),
    ]


def _second_events(nodes: list[DemoNode], i: int) -> list[tuple[str, Event]]:
    """What city i writes about the others: accepts of an offer and a request, an endorsement."""
    n = len(nodes)
    offerer, asker = nodes[(i + 1) % n], nodes[(i - 1) % n]
    offer = offerer.city.offers[0]
    request = asker.city.request
    events = [
        ("accept-offer", Event(type="accept", body={
            "log": offerer.log_id, "ref": offerer.ids["offer-0"], "quantity": max(1, offer.quantity // 2),
            "note": f"Half of the {offer.unit} offered, from next month; our office coordinates "
                    f"with {offerer.city.name}.",
        })),
        ("accept-request", Event(type="accept", body={
            "log": asker.log_id, "ref": asker.ids["request"], "quantity": max(1, request.quantity // 4),
            "note": f"We answer part of {_possessive(asker.city.name)} request.",
        })),
    ]
    if i != 0:
        author = nodes[0]  # wrote the statement
        events.append(("endorse", Event(type="endorse", body={"log": author.log_id, "ref": author.ids["statement"]})))
    return events


def _offer_progress(nodes: list[DemoNode], i: int) -> list[tuple[str, Event]]:
    """Delivery on city i's offer that the previous city accepted, pointing at the offer's entry id."""
    node, taker = nodes[i], nodes[(i - 1) % len(nodes)]
    return [("progress-offer", Event(type="progress", body={
        "ref": node.ids["offer-0"], "delivered": max(1, node.city.offers[0].quantity // 4),
        "note": f"First half of what {taker.city.name} accepted; the rest follows next month.",
    }))]


def _author(node: DemoNode, named: list[tuple[str, Event]]) -> int:
    """Append as the CLI does, beside the running server: SQLite's write lock, one transaction."""
    assert node.local is not None
    authored: list[Authored] = node.local.author().append([e for _, e in named])
    for (name, _), a in zip(named, authored, strict=True):
        node.ids[name] = a.id.hex()
    node.size = authored[-1].entry.seq + 1
    return len(authored)


# -- the demo ----------------------------------------------------------------


class Demo:
    def __init__(self, root: Path, count: int, base_port: int, write: Callable[[str], None], command: str) -> None:
        self.root = root
        self.count = count
        self.base_port = base_port
        self.write = write
        self.command = command
        self.nodes: list[DemoNode] = []
        self.session: aiohttp.ClientSession | None = None

    def create(self) -> None:
        """Data folders, keys and logs; one network file signed by every founder, installed in each."""
        signers = []
        for i, city in enumerate(CITIES[: self.count]):
            sock = _bind(self.base_port + i if self.base_port else 0)
            port = sock.getsockname()[1]
            url = f"http://{HOST}:{port}"
            data = self.root / _slug(city.name)
            self.nodes.append(DemoNode(city=city, data=data, url=url, sock=sock))
            local, _ = init_node(
                data, city=city.name, country=city.country, url=url, network=NETWORK,
                contact=f"solidarity@{_slug(city.name)}.example", languages=list(city.languages),
                listen=f"{HOST}:{port}",
            )
            self.nodes[-1].local = local
            self.nodes[-1].log_id = compute_log_id(local.config["node.origin"])
            signers.append(local.signer)
        network = NetworkFile(
            name=NETWORK,
            rule=AdmissionRule(min_vouches=2, share_percent=50),
            founders=tuple(
                Founder(name=node.city.name, key=signer.verifier, url=node.url)
                for node, signer in zip(self.nodes, signers, strict=True)
            ),
        )
        for signer in signers:
            network = sign_network_file(network, signer)
        text = format_network_file(network)
        for node in self.nodes:
            load_config(node.data, env={}).network_path.write_text(text, encoding="utf-8")

    async def start(self) -> None:
        for node in self.nodes:
            config = load_config(node.data, env={
                "SOLIDARITY_GOSSIP_INTERVAL_MS": str(GOSSIP_INTERVAL_MS),
                "SOLIDARITY_GOSSIP_TIMEOUT_MS": "5000",
            })
            node.app = create_app(config)
            node.runner = web.AppRunner(node.app, access_log=None)
            await node.runner.setup()
            await web.SockSite(node.runner, node.sock).start()
            self.write(f"started {node.city.name} ({node.city.country})".ljust(26) + f"  {node.url}")

    @staticmethod
    def close_local(node: DemoNode) -> None:
        if node.local is not None:
            node.local.close()
            node.local = None

    async def stop(self) -> None:
        for node in self.nodes:
            if node.runner is not None:
                await node.runner.cleanup()
                node.runner = None
            node.sock.close()
            self.close_local(node)
        if self.session is not None:
            await self.session.close()

    async def _get(self, url: str) -> tuple[int, bytes]:
        assert self.session is not None
        async with self.session.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
            return response.status, await response.read()

    async def _state(self, node: DemoNode) -> tuple[str, dict[str, int]] | None:
        try:
            status, body = await self._get(node.url + "/v1/status")
        except (aiohttp.ClientError, TimeoutError):
            return None
        if status != 200:
            return None
        view = json.loads(body)
        return view.get("network_digest", ""), {x["log_id"]: x["size"] for x in view.get("logs", [])}

    async def converge(self, deadline: float) -> tuple[str, float]:
        """Wait until every node holds every log at the size its city wrote, with one network digest."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        expected = {node.log_id: node.size for node in self.nodes}
        while True:
            states = [await self._state(node) for node in self.nodes]
            if all(s is not None for s in states):
                digests = {s[0] for s in states}  # type: ignore[index]
                if len(digests) == 1 and all(s[1] == expected for s in states):  # type: ignore[index]
                    return digests.pop(), loop.time() - started
            if loop.time() > deadline:
                held = [sum(s[1].values()) if s else "no answer" for s in states]
                raise NodeError(
                    f"the nodes did not converge within {CONVERGE_TIMEOUT_S:.0f} s: entries held per node "
                    f"{held}, {sum(expected.values())} expected; rerun with SOLIDARITY_LOGGING_LEVEL=info"
                )
            await asyncio.sleep(0.1)

    @staticmethod
    def _routes(app: web.Application) -> set[str]:
        return {r.canonical for r in app.router.resources() if any(route.method == "GET" for route in r)}

    def _urls(self, node: DemoNode) -> list[str]:
        tile = tile_for_size(0, 0, node.size)
        prefix = f"{node.url}/v1/logs/{node.log_id}/"
        urls = []
        routes = self._routes(node.app) if node.app is not None else set()
        for page in ("/", "/v1/summary"):
            if page in routes:  # the dashboard and the summary: printed only if this build serves them
                urls.append(node.url + page)
        urls += [node.url + "/v1/status", node.url + "/v1/logs", prefix + "checkpoint"]
        if tile is not None:
            urls.append(prefix + tile_path(tile))
        return urls

    async def check(self, url: str) -> str:
        try:
            status, _ = await self._get(url)
        except (aiohttp.ClientError, TimeoutError) as exc:
            return f"FAILED ({type(exc).__name__})"
        return "ok" if status == 200 else f"FAILED (HTTP {status})"

    async def report(self, digest: str) -> bool:
        """Print each city's URLs, each checked with a GET just before; False if any did not answer."""
        w = self.write
        all_ok = True
        w("")
        w('Every URL below was fetched just now ("ok" = it answered 200):')
        routes = self._routes(self.nodes[0].app) if self.nodes[0].app is not None else set()
        if "/" in routes:
            w("  /                             the network's public page: open it in a browser")
        if "/v1/summary" in routes:
            w("  /v1/summary                   what the cities pledged, offered, requested and delivered")
        w("  /v1/status                    a node's view: logs, peers, network digest")
        w("  /v1/logs                      every city log the node holds: size, root, verifier key")
        w("  /v1/logs/<log id>/checkpoint  a city's latest signed checkpoint (a C2SP signed note)")
        w("  /v1/logs/<log id>/tile/...    hash tiles and entry bundles (C2SP tlog-tiles, binary)")
        for node in self.nodes:
            w("")
            w(f"{node.city.name} ({node.city.country})  {node.url}  log {node.log_id[:16]}..., "
              f"{node.size} entries")
            for url in self._urls(node):
                mark = await self.check(url)
                all_ok &= mark == "ok"
                w(f"  {mark}  {url}")
        first, second = self.nodes[0], self.nodes[1]
        mirrored = f"{second.url}/v1/logs/{first.log_id}/checkpoint"
        same = await self._get(mirrored) == await self._get(f"{first.url}/v1/logs/{first.log_id}/checkpoint")
        all_ok &= same
        bundle = tile_for_size(0, 0, first.size, entries=True)
        prog = self.command
        w("")
        w("Try:")
        w(f"  curl {first.url}/v1/status")
        w(f"  curl {mirrored}")
        w(f"      {_possessive(first.city.name)} checkpoint as {second.city.name} holds it: "
          + ("the same signed note" if same else "DIFFERENT (a bug)"))
        if bundle is not None:
            w(f"  curl -s {first.url}/v1/logs/{first.log_id}/{tile_path(bundle)} | head -c 256 | od -c")
        w(f"  {prog} log --data {first.data}")
        today = date.today()
        w(f"  {prog} pledge --data {first.data} --kind relocation --places 10 "
          f"--from {_day(today, 30)} --until {_day(today, 210)}")
        w(f"      then see {_possessive(first.city.name)} log grow on {second.city.name}: curl {second.url}/v1/logs")
        w("")
        w(f"network {NETWORK}: {len(self.nodes)} cities, network digest {digest[:16]}...")
        return all_ok

    async def run(self, exit_after_converge: bool, timeout: float) -> int:
        self.session = aiohttp.ClientSession()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self.start()
            today = date.today()
            count = sum(_author(node, _first_events(i, len(self.nodes), today)) for i, node in enumerate(self.nodes))
            count += sum(_author(node, _progress_events(node)) for node in self.nodes)
            self.write(f"authored {count} events: pledges, offers, requests, a report per city, "
                       "progress on the pledges, a statement")
            _, took = await self.converge(deadline)
            self.write(f"gossip: every node holds every city's log ({took:.1f} s)")
            count = sum(_author(node, _second_events(self.nodes, i)) for i, node in enumerate(self.nodes))
            count += sum(_author(node, _offer_progress(self.nodes, i)) for i, node in enumerate(self.nodes))
            self.write(f"authored {count} events: accepts of each other's offers and requests, "
                       "endorsements of the statement, delivery on the accepted offers")
            digest, took = await self.converge(deadline)
            self.write(f"gossip: every node holds every city's log again ({took:.1f} s)")
            ok = await self.report(digest)
            if not ok:
                self.write("some URLs did not answer: see FAILED above")
                return 1
            if exit_after_converge:
                self.write("converged: stopping every node (--exit-after-converge)")
                return 0
            self.write("Ctrl-C stops every node.")
            await asyncio.Event().wait()
            return 0  # pragma: no cover - the wait above only ends by cancellation
        finally:
            await self.stop()


async def run_demo(
    cities: int = 3,
    *,
    root: Path | None = None,
    base_port: int = 0,
    exit_after_converge: bool = False,
    write: Callable[[str], None] = _print,
    command: str = "solidarity",
    timeout: float = CONVERGE_TIMEOUT_S,
) -> int:
    """Run the demo network until cancelled (Ctrl-C, SIGTERM), or until it converged with
    ``exit_after_converge``; returns the exit code."""
    if not MIN_CITIES <= cities <= MAX_CITIES:
        raise ConfigError(f"--cities: expected {MIN_CITIES} to {MAX_CITIES}, got {cities}")
    if not (base_port == 0 or 1 <= base_port <= 65536 - cities):
        raise ConfigError(f"--base-port: expected 0 or 1 to {65536 - cities}, got {base_port}")
    temporary = root is None
    if root is None:
        root = Path(tempfile.mkdtemp(prefix="solidarity-demo-"))
    else:
        root = Path(root).resolve()
        if root.exists() and (not root.is_dir() or any(root.iterdir())):
            raise ConfigError(f"--dir {root}: not an empty folder; the demo makes new nodes, give it a new one")
    write(f"Solidarity Cities demo: {cities} city nodes on this machine, network {NETWORK!r}")
    write(f"data folders in {root}" + (" (removed at exit; --dir DIR keeps them)" if temporary else ""))
    demo = Demo(root, cities, base_port, write, command)
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    terminated = False

    def on_sigterm() -> None:
        nonlocal terminated
        terminated = True
        if task is not None:
            task.cancel()

    # SIGINT too: a demo started from a script in the background inherits SIGINT ignored,
    # and a loop handler is the one way Ctrl-C (or kill -INT) still stops it there.
    handled: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_sigterm)
            handled.append(sig)
    started = time.monotonic()
    try:
        demo.create()
        return await demo.run(exit_after_converge, timeout)
    except asyncio.CancelledError:
        if terminated and task is not None and task.uncancel() == 0:
            return 0  # SIGTERM or SIGINT: a clean stop
        raise
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)
        for node in demo.nodes:  # also when create() failed half-way
            node.sock.close()
            demo.close_local(node)
        if temporary:
            shutil.rmtree(root, ignore_errors=True)
        write(f"stopped {len(demo.nodes)} nodes after {time.monotonic() - started:.0f} s"
              + (f"; removed {root}" if temporary else f"; data kept in {root}"))
