"""The node's HTTP service: the app factory, error responses, start-up and shutdown.

``create_app(config)`` builds everything; nothing global but constants, app
keys and loggers, so several nodes can run in one process (the tests do).
Every error raised on purpose becomes an RFC 9457 problem response with its
status; anything else is a bug: logged with its traceback, answered 500.

Database reads run in a small thread pool on read-only connections, so a
slow query never blocks the event loop; the only writer in ``serve`` is the
authoring path (and, later, sync), which takes SQLite's write lock like the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp import web

from node import api_routes, dashboard_routes, federation_routes, tlog_routes
from node.config import Config
from node.context import CONFIG, EXECUTOR, FEDERATION, GOSSIP, LOOP_STORE, METRICS, READ_THREADS, STORES, WATCHER, read_db
from node.errors import Busy, NodeError
from node.metrics import Metrics
from node.metrics import middleware as metrics_middleware
from prometheus_client import CONTENT_TYPE_LATEST
from node.store import Store, ThreadLocalStores
from protocol.errors import SolidarityError

log = logging.getLogger(__name__)

#: How often ``serve`` looks for entries appended by another process.
WATCH_INTERVAL_S = 0.2
#: How much of the database the event loop's read-only store may map into memory.
LOOP_MMAP_BYTES = 2**31


def problem(status: int, title: str, detail: str, **extra: Any) -> web.Response:
    """An RFC 9457 problem details response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    headers = {"Cache-Control": "no-store"}
    if status == 503:
        headers["Retry-After"] = str(extra.pop("retry_after", Busy.retry_after))
    return web.json_response(body, status=status, content_type="application/problem+json", headers=headers)


@web.middleware
async def problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except SolidarityError as exc:
        request.app[METRICS].errors.labels(type(exc).__name__).inc()
        level = logging.ERROR if exc.status >= 500 else logging.INFO
        log.log(level, "request refused", extra={"path": request.path[:200], "status": exc.status, "error": str(exc)})
        return problem(exc.status, exc.title, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem(exc.status, exc.reason.lower(), exc.text if exc.text and not exc.text.startswith(str(exc.status)) else exc.reason.lower())
    except asyncio.CancelledError:
        raise
    except Exception:
        request.app[METRICS].errors.labels("bug").inc()
        log.exception("unhandled error", extra={"path": request.path[:200]})
        return problem(500, "internal server error", "the node hit a bug; it has been logged")


class HeadWatcher:
    """Notices when any log grows, whoever wrote it (this process or the CLI).

    Polls SQLite's ``data_version`` (cheap: no table read unless something
    committed) and tells subscribers which logs grew; gossip subscribes to push
    new checkpoints to peers promptly.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self.sizes: dict[str, int] = {s.log_id: s.size for s in store.logs()}
        self._version = store.data_version()
        self._subscribers: list[Callable[[str, int], None]] = []
        self.changed = asyncio.Event()

    def subscribe(self, fn: Callable[[str, int], None]) -> None:
        self._subscribers.append(fn)

    def state(self) -> int:
        """The database's state as the read API's response cache keys it: SQLite's
        ``data_version`` on this read-only connection, which changes with every commit of
        any other connection, this process's or another's (the view's catch-up, a new
        head or checkpoint, evidence, the CLI). Exact and cheap (~3 us): read per request
        on the event loop, where this store lives."""
        return self._store.data_version()

    def poll(self) -> list[tuple[str, int]]:
        version = self._store.data_version()
        if version == self._version:
            return []
        self._version = version
        grown = []
        for state in self._store.logs():
            if self.sizes.get(state.log_id) != state.size:
                self.sizes[state.log_id] = state.size
                grown.append((state.log_id, state.size))
        return grown

    async def run(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            try:
                grown = self.poll()
            except SolidarityError as exc:
                log.warning("watch failed", extra={"error": str(exc)})
                continue
            for log_id, size in grown:
                log.info("log grew", extra={"log_id": log_id, "size": size})
                for fn in self._subscribers:
                    fn(log_id, size)
            if grown:
                self.changed.set()
                self.changed.clear()


async def _cancel(task: asyncio.Task) -> None:
    """Stop a background task and wait until it has (its finally blocks have run)."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _resources(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    # Opening the store here (not lazily) makes a bad database fail start-up.
    watcher_store = Store(config.database_path, readonly=True)
    # The loop answers events from this store (node.api_routes): reading pages through a
    # memory map instead of one pread() each saves a syscall per page once the file is in
    # the OS cache, shared with every process, not copied. SQLite caps it at its build's
    # maximum (2 GiB in common builds).
    watcher_store.conn.execute(f"PRAGMA mmap_size={LOOP_MMAP_BYTES}").fetchone()
    app[STORES] = ThreadLocalStores(config.database_path)
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="db-read")
    watcher = HeadWatcher(watcher_store)
    app[WATCHER] = watcher
    app[LOOP_STORE] = watcher_store
    own_id = watcher_store.own_log().log_id
    own_size = {"n": watcher.sizes.get(own_id, 0)}

    def count_authored(log_id: str, size: int) -> None:
        if log_id == own_id:
            app[METRICS].authored.inc(max(0, size - own_size["n"]))
            own_size["n"] = size

    watcher.subscribe(count_authored)
    task = asyncio.create_task(watcher.run(), name="head-watcher")
    try:
        yield
    finally:
        await _cancel(task)
        app[EXECUTOR].shutdown(wait=True, cancel_futures=True)
        app[STORES].close()
        watcher_store.close()


async def _federation(app: web.Application) -> AsyncIterator[None]:
    """Gossip and sync, when a network file is installed; a standalone node just serves."""
    from node.federation import Federation
    from node.local import load_network
    from node.peer_http import peer_session

    config = app[CONFIG]
    network = load_network(config)
    if network is None:
        log.warning("no network file installed: serving only, not syncing",
                    extra={"path": str(config.network_path)})
        yield
        return
    store = Store(config.database_path)
    session = peer_session(config)
    federation = Federation(
        store, network, own_url=config["node.public_url"], session=session,
        interval=config["gossip.interval_ms"] / 1000, fanout=config["gossip.fanout"],
        timeout=config["gossip.timeout_ms"] / 1000,
    )
    app[FEDERATION] = federation
    federation.metrics = app[METRICS]
    app[METRICS].peer_states = lambda: list(federation.peers.values())
    app[WATCHER].subscribe(federation.log_grew)
    task = asyncio.create_task(federation.run(), name="gossip") if app[GOSSIP] else None
    try:
        yield
    finally:
        if task is not None:
            await _cancel(task)
        await federation.close()
        await session.close()
        store.close()


async def _view(app: web.Application) -> AsyncIterator[None]:
    """Keep the network view caught up with every log, whoever appended to it."""
    from node.local import load_registry
    from node.view import ViewUpdater

    config = app[CONFIG]
    store = Store(config.database_path)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="view-db")
    updater = ViewUpdater(load_registry())
    loop = asyncio.get_running_loop()
    pending = asyncio.Event()
    pending.set()  # catch up once at start-up

    async def run() -> None:
        while True:
            await pending.wait()
            pending.clear()
            try:
                applied = await loop.run_in_executor(executor, updater.catch_up, store)
            except SolidarityError as exc:
                log.warning("view update failed", extra={"error": str(exc)})
                await asyncio.sleep(1.0)
                pending.set()
                continue
            if applied:
                log.info("view updated", extra={"entries": applied})

    app[WATCHER].subscribe(lambda log_id, size: pending.set())
    task = asyncio.create_task(run(), name="view")
    try:
        yield
    finally:
        await _cancel(task)
        await loop.run_in_executor(None, executor.shutdown, True)
        store.close()


async def healthz(request: web.Request) -> web.Response:
    """Alive: the process answers. Says nothing about the database or peers."""
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database is open and readable, so the public read API can serve.

    Peer reachability is deliberately not part of readiness (it is in /v1/status and
    the metrics): a load balancer must not take the read API away because peers are down.
    """
    try:
        count = await read_db(request.app, lambda s: len(s.logs()))
    except SolidarityError as exc:
        return problem(503, "not ready", f"database not readable: {exc}")
    return web.json_response({"status": "ready", "logs": count}, headers={"Cache-Control": "no-store"})


async def metrics_endpoint(request: web.Request) -> web.Response:
    metrics = request.app[METRICS]
    body = await read_db(request.app, lambda s: metrics.render_with(s))
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def create_app(config: Config, *, gossip: bool = True) -> web.Application:
    """The node's application; ``gossip=False`` serves and answers peers but starts no rounds."""
    app = web.Application(
        middlewares=[metrics_middleware(METRICS), problem_middleware],
        client_max_size=config["http.max_request_bytes"],
    )
    app[CONFIG] = config
    app[METRICS] = Metrics()
    app[GOSSIP] = gossip
    app.cleanup_ctx.append(_resources)
    app.cleanup_ctx.append(_view)
    app.cleanup_ctx.append(_federation)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)
    tlog_routes.add_routes(app)
    federation_routes.add_routes(app)
    api_routes.add_routes(app)
    dashboard_routes.add_routes(app)
    return app


async def serve(config: Config, *, ready: Callable[[str], None] | None = None) -> None:
    """Run the service until cancelled (the CLI's ``serve``)."""
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    host, port = config.listen
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
        # With port 0 the OS picks one: report the address actually bound.
        bound_host, bound_port = runner.addresses[0][:2]
        url = f"http://{bound_host}:{bound_port}"
        log.info("serving", extra={"url": url, "origin": config["node.origin"]})
        # systemd and container runtimes stop services with SIGTERM; Ctrl-C sends SIGINT.
        # Both end here, so pulls under way are cancelled and the database closed cleanly.
        # (Installed before announcing readiness: a stop may follow at once.)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
        if ready:
            ready(url)
        await stop.wait()
        log.info("stopping", extra={"origin": config["node.origin"]})
    finally:
        await runner.cleanup()


__all__ = ["create_app", "serve", "problem", "NodeError"]
