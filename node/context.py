"""What the HTTP handlers share: typed app keys and the off-loop database read.

Kept apart from ``node.app`` (the factory) so route modules can import it
without importing the factory that imports them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, TypeVar

from aiohttp import web

from node.config import Config
from node.errors import Busy
from node.store import Store, ThreadLocalStores

if TYPE_CHECKING:
    from node.app import HeadWatcher
    from node.federation import Federation
    from node.metrics import Metrics

T = TypeVar("T")

CONFIG = web.AppKey("config", Config)
STORES = web.AppKey("stores", ThreadLocalStores)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
WATCHER = web.AppKey("watcher", "HeadWatcher")
FEDERATION = web.AppKey("federation", "Federation")
GOSSIP = web.AppKey("gossip", bool)
METRICS = web.AppKey("metrics", "Metrics")
#: A read-only store used only on the event loop's thread (the head watcher's).
LOOP_STORE = web.AppKey("loop_store", Store)

#: How long a database read may take before the request is answered 503.
READ_TIMEOUT_S = 10.0
READ_THREADS = 4



async def read_db(app: web.Application, fn: Callable[[Store], T]) -> T:
    """Run ``fn`` on this thread's read-only store, off the event loop, with a time limit."""
    stores = app[STORES]
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(app[EXECUTOR], lambda: fn(stores.get()))
    try:
        return await asyncio.wait_for(future, READ_TIMEOUT_S)
    except TimeoutError:
        raise Busy(f"the database read took longer than {READ_TIMEOUT_S:g} s; try again") from None
