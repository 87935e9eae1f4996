"""The dashboard: its static files as served, and the page itself in a real headless Chromium.

The browser is driven over the Chrome DevTools Protocol (a websocket, with
aiohttp), so nothing is downloaded: Debian's ``chromium`` package is enough
(``.ci/run`` installs it). The page is loaded from a real node holding a small
network of four cities; the test collects every JavaScript exception and
console or network error, reads the numbers the page shows, and checks them
against the JSON API the page reads.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from node import dashboard_routes
from node.app import create_app
from node.authoring import Event
from node.view import ViewUpdater
from protocol.checkpoint import Checkpoint, sign_checkpoint
from protocol.entry import log_id
from protocol.merkle import EMPTY_ROOT, CompactTree

STATIC = Path(dashboard_routes.__file__).parent / "static"
SCREENSHOT = Path(tempfile.gettempdir()) / "solidarity-dashboard.png"
EVENT_SCREENSHOT = Path(tempfile.gettempdir()) / "solidarity-dashboard-event.png"

#: On CI (where .ci/run installs chromium) a missing browser is a failure, not a skip.
REQUIRE_CHROMIUM = os.environ.get("CI", "").lower() == "true"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if path := shutil.which(name):
            return path
    return None


# -- the static files, as served ---------------------------------------------------


@pytest.fixture
async def client(make_node, aiohttp_client):
    node = make_node("Athens")
    return await aiohttp_client(create_app(node.config, gossip=False))


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/", "text/html; charset=utf-8"),
        ("/static/index.html", "text/html; charset=utf-8"),
        ("/static/app.js", "text/javascript; charset=utf-8"),
        ("/static/style.css", "text/css; charset=utf-8"),
        ("/static/favicon.svg", "image/svg+xml"),
    ],
)
async def test_static_files_have_their_content_type_a_short_cache_and_a_strict_csp(client, path, content_type):
    response = await client.get(path)
    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    assert "immutable" not in response.headers["Cache-Control"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    again = await client.get(path, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status == 304


@pytest.mark.parametrize(
    "path", ["/static/nope.js", "/static/..%2Fapp.py", "/static/%2e%2e/app.py", "/static/.hidden", "/static/"]
)
async def test_only_files_shipped_in_node_static_are_served(client, path):
    response = await client.get(path)
    assert response.status == 404


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.refs += [value for name, value in attrs if name in ("src", "href") and value]


def test_the_page_needs_nothing_from_the_internet():
    """A node on a closed network must still serve a working page: no CDN, no web fonts."""
    parser = _Refs()
    parser.feed((STATIC / "index.html").read_text())
    for ref in parser.refs:
        assert not re.match(r"^(https?:)?//", ref), ref
        if ref.startswith("/static/"):
            assert (STATIC / ref.removeprefix("/static/")).is_file(), ref
    for name in ("app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"""["'(]\s*(https?:)?//[a-z]""", text.replace("http://www.w3.org/2000/svg", "")), name
        assert "@import" not in text and "eval(" not in text


# -- a small network in one node ---------------------------------------------------------

CITIES = [("Athens", "GR"), ("Leipzig", "DE"), ("Berlin", "DE"), ("Palermo", "IT")]


def _pledge(kind: str, places: int, start: str = "2026-01-01", until: str = "2026-12-31") -> Event:
    return Event(type="pledge", body={"kind": kind, "places": places, "from": start, "until": until,
                                      "description": f"{places} places ({kind})."})


def _need(type_: str, category: str, quantity: int, unit: str, text: str) -> Event:
    return Event(type=type_, body={"category": category, "quantity": quantity, "unit": unit,
                                   "from": "2026-01-01", "until": "2026-12-31", "description": text})


def build_network(make_node):
    """Four cities' logs in Athens's store, as sync would leave them, and the view caught up.

    The events cover what the page shows: pledges (one fulfilled, one expired),
    progress, offers and requests in shared categories, accepts across logs, a
    retraction, a report, a statement, and an authentic entry that cannot count.
    A description holds markup, which the page must show as text.
    """
    nodes = {name: make_node(name, country=country) for name, country in CITIES}

    def write(name: str, *events: Event) -> list[str]:
        return [a.id.hex() for a in nodes[name].author().append(list(events))]

    origin = {name: node.config["node.origin"] for name, node in nodes.items()}
    [athens_pledge, _] = write("Athens", _pledge("relocation", 150), _pledge("unaccompanied-minors", 40))
    [_, athens_request] = write(
        "Athens", _need("offer", "interpretation", 60, "person-days", "Arabic and Farsi interpreters."),
        _need("request", "reception-places", 80, "places", "Places for families arriving on the islands."))
    [leipzig_pledge, leipzig_offer, _] = write(
        "Leipzig", _pledge("resettlement", 200), _need("offer", "reception-places", 60, "places", "Shared flats."),
        _need("offer", "equipment", 300, "beds", "Beds <b>and</b> bedding from a closed shelter."))
    [berlin_pledge, _] = write(
        "Berlin", _pledge("family-reunification", 1200),
        _need("request", "interpretation", 40, "person-days", "Tigrinya interpreters."))
    [_, palermo_offer] = write(
        "Palermo", _pledge("other", 100, start="2025-01-01", until="2025-12-31"),
        _need("offer", "expertise", 15, "person-days", "Port reception after sea rescue."))
    write("Athens", Event(type="progress", body={"ref": athens_pledge, "delivered": 95}))
    write("Leipzig", Event(type="progress", body={"ref": leipzig_pledge, "delivered": 200}))
    write("Berlin", Event(type="progress", body={"ref": berlin_pledge, "delivered": 310}))
    write("Leipzig", Event(type="accept", body={"log": log_id(origin["Athens"]), "ref": athens_request, "quantity": 30}))
    write("Athens", Event(type="accept", body={"log": log_id(origin["Leipzig"]), "ref": leipzig_offer}))
    write("Palermo", Event(type="retract", body={"ref": palermo_offer, "reason": "Staff needed at home."}))
    write("Berlin", Event(type="report", body={"period_start": "2026-01-01", "period_end": "2026-03-31",
                                               "arrivals": 420, "in_reception": 1310, "free_places": 35}))
    write("Athens", Event(type="statement", body={"title": "Safe harbours", "text": "Share responsibility."}))
    write("Palermo", Event(type="progress", body={"ref": athens_pledge, "delivered": 3}))  # not Palermo's: invalid

    host = nodes["Athens"]
    with host.store.write():
        for name, city in nodes.items():
            if city is host:
                continue
            state = city.store.own_log()
            lid = host.store.add_log(log_id=state.log_id, origin=state.origin, verifier=state.verifier,
                                     own=False, root=EMPTY_ROOT)
            tree, records, hashes = CompactTree(), [], []
            for stored in city.store.entries(state.lid):
                hashes += tree.append(stored.leaf)
                records.append((stored.leaf, stored.entry, stored.body))
            host.store.insert_entries(lid, 0, records, hashes)
            checkpoint = sign_checkpoint(Checkpoint(origin=state.origin, size=tree.size, root=tree.root()), city.signer)
            host.store.set_head(lid, size=tree.size, root=tree.root(), checkpoint=checkpoint, updated_ms=0)
    ViewUpdater(host.registry).catch_up(host.store)
    return host


@contextlib.asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


# -- a minimal DevTools Protocol client ---------------------------------------------------

INSECURE_HOST = "dashboard.solidarity.test"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--remote-debugging-port=0",
    # A name that is not localhost: pages from it are not a secure context, so WebCrypto is missing there.
    f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1",
]


class Browser:
    """One Chromium page, driven over CDP; collects exceptions and console/network errors."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.events: list[dict] = []
        self.session: str | None = None
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future] = {}
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def launch(cls, executable: str, profile: Path) -> AsyncIterator[Browser]:
        stderr = open(profile.parent / "chromium.log", "wb")  # noqa: SIM115 (closed below)
        proc = await asyncio.create_subprocess_exec(
            executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
        )
        try:
            # Chromium writes the port it bound and the browser's websocket path here.
            port_file = profile / "DevToolsActivePort"
            async with asyncio.timeout(30):
                while len(lines := (port_file.read_text().splitlines() if port_file.exists() else [])) < 2:
                    if proc.returncode is not None:
                        raise RuntimeError(f"chromium exited with {proc.returncode}: see {stderr.name}")
                    await asyncio.sleep(0.05)
            async with aiohttp.ClientSession() as session:
                async with session.ws_connect(f"ws://127.0.0.1:{lines[0]}{lines[1]}", max_msg_size=0) as ws:
                    browser = cls(ws)
                    try:
                        await browser._open_page()
                        yield browser
                    finally:
                        browser._reader.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await browser._reader
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    async with asyncio.timeout(10):
                        await proc.wait()
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            stderr.close()

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            future = self._waiting.pop(data["id"], None) if "id" in data else None
            if future is None:
                self.events.append(data)
            elif not future.done():
                if "error" in data:
                    future.set_exception(RuntimeError(f"CDP: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))

    async def send(self, method: str, params: dict | None = None, *, browser: bool = False) -> dict:
        msg_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[msg_id] = future
        message = {"id": msg_id, "method": method, "params": params or {}}
        if not browser:
            message["sessionId"] = self.session
        await self.ws.send_str(json.dumps(message))
        async with asyncio.timeout(30):
            return await future

    async def _open_page(self) -> None:
        target = await self.send("Target.createTarget", {"url": "about:blank"}, browser=True)
        attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True},
                                   browser=True)
        self.session = attached["sessionId"]
        for domain in ("Runtime", "Log", "Page"):
            await self.send(f"{domain}.enable")

    async def viewport(self, width: int, height: int) -> None:
        await self.send("Emulation.setDeviceMetricsOverride",
                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600})

    async def goto(self, url: str) -> None:
        await self.send("Page.navigate", {"url": url})

    async def evaluate(self, expression: str):
        result = await self.send("Runtime.evaluate",
                                 {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"evaluating {expression[:80]!r}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0):
        """Poll until ``expression`` is truthy (bounded); its value."""
        # While a navigation is under way there may be no document yet: that is "not yet", not an error.
        guarded = f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
        try:
            async with asyncio.timeout(timeout):
                while not (value := await self.evaluate(guarded)):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            raise AssertionError(f"timed out waiting for {expression!r}; page problems: {self.problems()}") from None
        return value

    async def next_event(self, method: str, timeout: float = 20.0) -> dict:
        """The params of the first ``method`` event not yet taken (bounded wait)."""
        async with asyncio.timeout(timeout):
            while True:
                for i, event in enumerate(self.events):
                    if event.get("method") == method:
                        return self.events.pop(i)["params"]
                await asyncio.sleep(0.02)

    def problems(self) -> list[str]:
        """Every uncaught exception, console error or warning, and browser-logged error so far."""
        found = []
        for event in self.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                found.append(f"exception: {details.get('exception', {}).get('description') or details['text']}")
            elif method == "Runtime.consoleAPICalled" and params["type"] in ("error", "warning", "assert"):
                args = " ".join(str(a.get("value", a.get("description"))) for a in params["args"])
                found.append(f"console.{params['type']}: {args}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                entry = params["entry"]
                found.append(f"{entry['level']}: {entry['text']} {entry.get('url', '')}")
        return found

    async def screenshot(self, path: Path) -> None:
        size = (await self.send("Page.getLayoutMetrics"))["cssContentSize"]
        shot = await self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1},
        })
        path.write_bytes(base64.b64decode(shot["data"]))


@pytest.fixture
def chromium() -> str:
    path = find_chromium()
    if path is None:
        message = "chromium is not installed (apt-get install chromium; .ci/run does this on CI)"
        if REQUIRE_CHROMIUM:
            pytest.fail(message + ": on CI this test must run")
        pytest.skip(message)
    return path


# -- the page in a real browser ------------------------------------------------------------

# The totals the page shows (data-total) and where /v1/summary holds each number.
TOTALS = {
    "cities.total": ("cities", "total"),
    "pledges.places": ("pledges", "places"),
    "pledges.delivered": ("pledges", "delivered"),
    "offers.count": ("offers", "count"),
    "requests.count": ("requests", "count"),
    "accepts.count": ("accepts", "count"),
    "statements": ("statements",),
    "invalid": ("invalid",),
}

READY = "document.documentElement.dataset.state === 'ready'"
# In mobile emulation the layout viewport grows to fit the content, so compare with the device width.
NO_SIDEWAYS_SCROLL = "document.documentElement.scrollWidth <= document.documentElement.clientWidth"


@pytest.mark.slow
@pytest.mark.timeout(180)  # a real browser; generous for a loaded CI machine
async def test_dashboard_in_chromium_shows_the_api_numbers_and_verifies_a_proof(make_node, chromium, tmp_path):
    node = build_network(make_node)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    async with serve(create_app(node.config, gossip=False)) as base, aiohttp.ClientSession() as http:
        async def api(path: str) -> dict:
            async with http.get(base + path) as response:
                assert response.status == 200, path
                return await response.json()

        summary = await api("/v1/summary")
        assert summary["pledges"]["places"] > 1000  # the network was built: a thousands separator shows

        async with Browser.launch(chromium, profile) as browser:
            await browser.viewport(1280, 900)
            await browser.goto(base + "/")
            await browser.wait_for(READY)

            # Every total equals the API's number, and is shown formatted.
            shown = await browser.evaluate(
                "Object.fromEntries([...document.querySelectorAll('#totals [data-total]')].map("
                "d => [d.dataset.total, [d.querySelector('dd').dataset.value, d.querySelector('dd').firstChild.textContent]]))"
            )
            assert set(shown) == set(TOTALS)
            for key, where in TOTALS.items():
                value = summary
                for part in where:
                    value = value[part]
                assert shown[key] == [str(value), f"{value:,}"], key

            # The charts: one bar group per city with pledges, one per category with offers or requests.
            bars = await browser.evaluate("document.querySelectorAll('#chart-places svg a').length")
            assert bars == len(summary["pledges_by_city"]) > 0
            labels = await browser.evaluate("[...document.querySelectorAll('#chart-places svg a')].map(a => a.getAttribute('aria-label'))")
            for row, label in zip(summary["pledges_by_city"], labels):
                assert f"{row['delivered']:,} of {row['pledged']:,}" in label
            categories = {r["category"] for r in summary["offers_vs_requests"]}
            assert await browser.evaluate("document.querySelectorAll('#chart-categories svg a').length") == len(categories)
            await browser.screenshot(SCREENSHOT)

            # A filtered list shows exactly the API's rows; markup in a description stays text.
            leipzig = log_id(_origin(node, "Leipzig"))
            await browser.goto(f"{base}/#/list/offers?city={leipzig}")
            await browser.wait_for(READY + " && document.querySelectorAll('#list-table tbody tr').length > 0")
            expected = await api(f"/v1/offers?city={leipzig}")
            rows = await browser.evaluate("[...document.querySelectorAll('#list-table tbody tr')].map(tr => tr.innerText)")
            assert len(rows) == len(expected["rows"]) == 2
            assert any("Beds <b>and</b> bedding" in r for r in rows)
            assert await browser.evaluate("document.querySelector('#list-table b')") is None
            assert await browser.evaluate("document.getElementById('f-city').value") == leipzig

            # Changing a filter in the form refetches: Berlin's pledges.
            berlin = log_id(_origin(node, "Berlin"))
            await browser.goto(f"{base}/#/list/pledges")
            await browser.wait_for(READY + " && document.getElementById('list-title').textContent === 'Pledges'")
            await browser.evaluate(
                f"(() => {{ const s = document.getElementById('f-city'); s.value = '{berlin}';"
                " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
            )
            await browser.wait_for(f"location.hash.includes('{berlin}') && {READY}"
                                   " && document.querySelectorAll('#list-table tbody tr').length === 1")
            assert "1,200" in await browser.evaluate("document.querySelector('#list-table tbody tr').innerText")

            # Each row links to its entry: open it; the browser checks the proof itself.
            await browser.evaluate("document.querySelector('#list-table tbody a[href^=\"#/event/\"]').click()")
            await browser.wait_for("!!document.documentElement.dataset.verified")
            checks = await browser.evaluate(
                "Object.fromEntries([...document.querySelectorAll('#checks li')].map(li => [li.dataset.check, [li.dataset.state, li.innerText]]))"
            )
            state, text = checks["inclusion"]
            assert state == "ok" and "proof verified" in text.lower()
            # Current Chromium has Ed25519 in WebCrypto: the signature is checked too, and so is the body.
            assert {name: s for name, (s, _) in checks.items()} == {
                "leaf": "ok", "inclusion": "ok", "signature": "ok", "body": "ok"}
            assert "Pledge by Berlin" in await browser.evaluate("document.getElementById('event-title').textContent")
            await browser.screenshot(EVENT_SCREENSHOT)

            # Over plain http from a name other than localhost the browser has no WebCrypto: the proof
            # is still checked (the page's own SHA-256), and the page says the signature was not.
            event_hash = await browser.evaluate("location.hash")
            await browser.goto(base.replace("127.0.0.1", INSECURE_HOST) + "/" + event_hash)
            await browser.wait_for("window.isSecureContext === false && !!document.documentElement.dataset.verified")
            checks = await browser.evaluate(
                "Object.fromEntries([...document.querySelectorAll('#checks li')].map(li => [li.dataset.check, [li.dataset.state, li.innerText]]))"
            )
            assert {name: s for name, (s, _) in checks.items()} == {
                "leaf": "ok", "inclusion": "ok", "signature": "skip", "body": "ok"}
            assert "not checked in this browser" in checks["signature"][1].lower()

            # The checks are real: a node that serves a wrong proof hash and a changed body is caught.
            event_id = event_hash.removeprefix("#/event/")
            tampered = await api(f"/v1/events/{event_id}")
            tampered["proof"]["inclusion_path"][0] = "00" * 32
            tampered["body"]["places"] += 1
            await browser.send("Fetch.enable", {"patterns": [{"urlPattern": "*/v1/events/*"}]})
            await browser.goto(base + "/" + event_hash)
            paused = await browser.next_event("Fetch.requestPaused")
            await browser.send("Fetch.fulfillRequest", {
                "requestId": paused["requestId"], "responseCode": 200,
                "responseHeaders": [{"name": "Content-Type", "value": "application/json"}],
                "body": base64.b64encode(json.dumps(tampered).encode()).decode(),
            })
            await browser.send("Fetch.disable")
            await browser.wait_for("document.documentElement.dataset.verified === 'failed'")
            checks = await browser.evaluate(
                "Object.fromEntries([...document.querySelectorAll('#checks li')].map(li => [li.dataset.check, li.dataset.state]))"
            )
            assert checks == {"leaf": "ok", "inclusion": "fail", "signature": "ok", "body": "fail"}

            # A narrow phone screen renders too (charts re-laid out, no errors).
            await browser.viewport(390, 800)
            await browser.goto(base + "/#/")
            await browser.wait_for(READY + " && document.documentElement.dataset.view === 'overview'")
            assert await browser.evaluate(NO_SIDEWAYS_SCROLL)
            await browser.goto(base + "/#/list/offers")
            await browser.wait_for(READY + " && document.querySelectorAll('#list-table tbody tr').length > 2")
            # Wide tables scroll inside their box; the page itself never scrolls sideways.
            assert await browser.evaluate(NO_SIDEWAYS_SCROLL)

            assert browser.problems() == []


def _origin(node, city: str) -> str:
    """The origin of a city's log in ``node``'s store, by its profile name."""
    for state in node.store.logs():
        row = node.store.conn.execute("SELECT name FROM view_cities WHERE lid = ?", (state.lid,)).fetchone()
        if row and row[0] == city:
            return state.origin
    raise AssertionError(f"no log of {city}")
