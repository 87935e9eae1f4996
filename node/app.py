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
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp
from aiohttp import web

from node import federation_routes, tlog_routes
from node.config import Config
from node.context import CONFIG, EXECUTOR, FEDERATION, GOSSIP, READ_THREADS, STORES, WATCHER
from node.errors import Busy, NodeError
from node.store import Store, ThreadLocalStores
from protocol.errors import SolidarityError

log = logging.getLogger(__name__)

#: How often ``serve`` looks for entries appended by another process.
WATCH_INTERVAL_S = 0.2


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


async def _resources(app: web.Application) -> AsyncIterator[None]:
    config = app[CONFIG]
    # Opening the store here (not lazily) makes a bad database fail start-up.
    watcher_store = Store(config.database_path, readonly=True)
    app[STORES] = ThreadLocalStores(config.database_path)
    app[EXECUTOR] = ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="db-read")
    watcher = HeadWatcher(watcher_store)
    app[WATCHER] = watcher
    task = asyncio.create_task(watcher.run(), name="head-watcher")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        app[EXECUTOR].shutdown(wait=True, cancel_futures=True)
        app[STORES].close()
        watcher_store.close()


async def _federation(app: web.Application) -> AsyncIterator[None]:
    """Gossip and sync, when a network file is installed; a standalone node just serves."""
    from node.federation import Federation
    from node.local import load_network

    config = app[CONFIG]
    network = load_network(config)
    if network is None:
        log.warning("no network file installed: serving only, not syncing",
                    extra={"path": str(config.network_path)})
        yield
        return
    store = Store(config.database_path)
    session = aiohttp.ClientSession()
    federation = Federation(
        store, network, own_url=config["node.public_url"], session=session,
        interval=config["gossip.interval_ms"] / 1000, fanout=config["gossip.fanout"],
        timeout=config["gossip.timeout_ms"] / 1000,
    )
    app[FEDERATION] = federation
    app[WATCHER].subscribe(federation.log_grew)
    task = asyncio.create_task(federation.run(), name="gossip") if app[GOSSIP] else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await loop.run_in_executor(None, executor.shutdown, True)
        store.close()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"}, headers={"Cache-Control": "no-store"})


def create_app(config: Config, *, gossip: bool = True) -> web.Application:
    """The node's application; ``gossip=False`` serves and answers peers but starts no rounds."""
    app = web.Application(
        middlewares=[problem_middleware], client_max_size=config["http.max_request_bytes"]
    )
    app[CONFIG] = config
    app[GOSSIP] = gossip
    app.cleanup_ctx.append(_resources)
    app.cleanup_ctx.append(_view)
    app.cleanup_ctx.append(_federation)
    app.router.add_get("/healthz", healthz)
    tlog_routes.add_routes(app)
    federation_routes.add_routes(app)
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
        if ready:
            ready(url)
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


__all__ = ["create_app", "serve", "problem", "NodeError"]
