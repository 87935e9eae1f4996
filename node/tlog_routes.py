"""Serving logs: the list of logs and, under each log's prefix, C2SP tlog-tiles.

A log's prefix is ``/v1/logs/<log id>/`` where the log id is the lowercase hex
SHA-256 of its origin (as C2SP tlog-mirror derives it), so the URL never
changes when a city's node moves. Under it, exactly tlog-tiles::

    /v1/logs/<id>/checkpoint                  latest city-signed checkpoint
    /v1/logs/<id>/tile/<L>/<N>[.p/<W>]        hash tiles
    /v1/logs/<id>/tile/entries/<N>[.p/<W>]    entry bundles

and, outside the standard's names, the salted bodies in bundles aligned with
the entry bundles (same index and width, same uint16-length framing, an
erased body as zero length)::

    /v1/logs/<id>/bodies/<N>[.p/<W>]

Full tiles and full entry bundles never change and are served immutable so
any HTTP cache can carry the load; checkpoints and bodies (which can be
erased) get short cache lifetimes only.

Entry and body bundles are compressed (gzip or deflate, as the client
accepts) with zlib level 1, in the database thread beside the read: on these
bundles level 1 costs half of the default level's CPU for about 5% more bytes,
and serving is most of what a node does for peers that sync from it. A full
entry bundle never changes, so its compressed bytes are kept in a small
in-memory cache, keyed by its level-8 hash (bodies are not: they can be erased).
"""

from __future__ import annotations

import collections
import re
import threading
import zlib

from aiohttp import web

from node.context import read_db
from node.errors import BadRequest, NotFound
from node.store import LogState, Store
from protocol.errors import TileError
from protocol.tiles import TILE_HEIGHT, TILE_WIDTH, Tile, encode_bundle, parse_tile_path

IMMUTABLE = "public, max-age=31536000, immutable"
#: Partial tiles change into full ones; a few seconds keeps caches useful.
PARTIAL = "public, max-age=5"
CHECKPOINT_CACHE = "public, max-age=2, must-revalidate"
#: Bodies can be erased: never immutable, and short-lived in caches.
BODIES_CACHE = "public, max-age=60"

_LOG_ID = re.compile(r"^[0-9a-f]{64}$")

#: zlib level for bundles (see the module docstring).
COMPRESS_LEVEL = 1
#: Compressed full entry bundles kept in memory, per application.
BUNDLE_CACHE_BYTES = 16 << 20
#: Content codings offered, in order of preference, with their zlib wbits.
_CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class BundleCache:
    """Compressed full entry bundles, least recently used dropped first, bounded in bytes.

    Used from the database threads, hence the lock."""

    def __init__(self, limit: int = BUNDLE_CACHE_BYTES) -> None:
        self.limit = limit
        self._items: collections.OrderedDict[tuple, bytes] = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple, data: bytes) -> None:
        with self._lock:
            if key in self._items or len(data) > self.limit:
                return
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self.limit:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)


BUNDLE_CACHE = web.AppKey("bundle_cache", BundleCache)


def accepted_coding(header: str) -> str | None:
    """The content coding to answer with, from an Accept-Encoding header (RFC 9110 12.5.3):
    gzip, else deflate, unless refused with q=0; None for identity."""
    accepted = set()
    for part in header.lower().split(","):
        name, _, params = part.partition(";")
        q = params.strip().removeprefix("q=")
        try:
            if params and float(q) == 0:
                continue
        except ValueError:
            continue
        accepted.add(name.strip())
    return next((c for c in _CODINGS if c in accepted or "*" in accepted), None)


def compress(data: bytes, coding: str) -> bytes:
    packer = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, _CODINGS[coding])
    return packer.compress(data) + packer.flush()


def _bundle_response(data: bytes, coding: str | None, cache_control: str) -> web.Response:
    headers = {"Cache-Control": cache_control,
               # Vary: a shared cache must not hand the gzip copy to a client that did not ask for it.
               "Vary": "Accept-Encoding"}
    if coding is not None:
        headers["Content-Encoding"] = coding
    return web.Response(body=data, content_type="application/octet-stream", headers=headers)


def log_prefix(log_id: str) -> str:
    return f"/v1/logs/{log_id}/"


def log_json(state: LogState) -> dict:
    return {
        "log_id": state.log_id,
        "origin": state.origin,
        "verifier_key": state.verifier,
        "size": state.size,
        "root": state.root.hex(),
        "prefix": log_prefix(state.log_id),
        "own": state.own,
        "updated_ms": state.updated_ms,
    }


def _log(store: Store, log_id: str) -> LogState:
    if not _LOG_ID.match(log_id):
        raise BadRequest(f"log id: expected 64 lowercase hex digits, got {log_id[:80]!r}")
    return store.log(log_id)


def _tile(request: web.Request, prefix: str) -> Tile:
    try:
        return parse_tile_path(prefix + request.match_info["tail"])
    except TileError as exc:
        raise BadRequest(str(exc)) from exc


def _check_exists(state: LogState, tile: Tile) -> None:
    """404 for tiles beyond the log's current size (empty tiles are never served)."""
    level_size = state.size >> (TILE_HEIGHT * tile.level) if not tile.entries else state.size
    if tile.index * TILE_WIDTH + tile.width > level_size:
        raise NotFound(
            f"{'bundle' if tile.entries else 'tile'} {tile.index} width {tile.width} is beyond "
            f"the log's size {state.size}"
        )


async def list_logs(request: web.Request) -> web.Response:
    logs = await read_db(request.app, lambda s: [log_json(x) for x in s.logs()])
    return web.json_response({"logs": logs}, headers={"Cache-Control": "public, max-age=2"})


async def checkpoint(request: web.Request) -> web.Response:
    state = await read_db(request.app, lambda s: _log(s, request.match_info["log_id"]))
    if state.checkpoint is None:
        raise NotFound("this log has no checkpoint yet")
    return web.Response(
        body=state.checkpoint,
        content_type="text/plain",
        charset="utf-8",
        headers={"Cache-Control": CHECKPOINT_CACHE},
    )


async def tile(request: web.Request) -> web.Response:
    wanted = _tile(request, "tile/")
    log_id = request.match_info["log_id"]
    coding = accepted_coding(request.headers.get("Accept-Encoding", "")) if wanted.entries else None
    cache = request.app[BUNDLE_CACHE]

    def read(store: Store) -> bytes:
        state = _log(store, log_id)
        _check_exists(state, wanted)
        if wanted.entries:
            key = None
            if wanted.is_full:
                # Keyed by the bundle's level-8 hash (one indexed read): an abandoned sync's
                # entries, dropped and fetched again from another branch, never hit a stale copy.
                node = store.stored_hashes(state.lid, TILE_HEIGHT, wanted.index, 1)[0]
                key = (log_id, wanted.index, coding, node)
                if (data := cache.get(key)) is not None:
                    return data
            data = encode_bundle(store.bundle(state.lid, wanted.index, wanted.width))
            if coding is not None:
                data = compress(data, coding)
            if key is not None:
                cache.put(key, data)
            return data
        hashes = store.stored_hashes(
            state.lid, TILE_HEIGHT * wanted.level, wanted.index * TILE_WIDTH, wanted.width
        )
        return b"".join(hashes)

    data = await read_db(request.app, read)
    cache_control = IMMUTABLE if wanted.is_full else PARTIAL
    if wanted.entries:
        return _bundle_response(data, coding, cache_control)
    # Hash tiles are random bytes: compressing them would cost CPU and save nothing.
    return web.Response(body=data, content_type="application/octet-stream", headers={"Cache-Control": cache_control})


async def bodies(request: web.Request) -> web.Response:
    wanted = _tile(request, "tile/entries/")
    coding = accepted_coding(request.headers.get("Accept-Encoding", ""))

    def read(store: Store) -> bytes:
        state = _log(store, request.match_info["log_id"])
        _check_exists(state, wanted)
        data = encode_bundle(store.bundle(state.lid, wanted.index, wanted.width, bodies=True))
        return compress(data, coding) if coding is not None else data

    data = await read_db(request.app, read)
    return _bundle_response(data, coding, BODIES_CACHE)


def add_routes(app: web.Application) -> None:
    app[BUNDLE_CACHE] = BundleCache()
    app.router.add_get("/v1/logs", list_logs)
    app.router.add_get("/v1/logs/{log_id}/checkpoint", checkpoint)
    app.router.add_get("/v1/logs/{log_id}/tile/{tail:.+}", tile)
    app.router.add_get("/v1/logs/{log_id}/bodies/{tail:.+}", bodies)
