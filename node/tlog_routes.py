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
"""

from __future__ import annotations

import re

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

    def read(store: Store) -> bytes:
        state = _log(store, request.match_info["log_id"])
        _check_exists(state, wanted)
        if wanted.entries:
            return encode_bundle(store.bundle(state.lid, wanted.index, wanted.width))
        hashes = store.stored_hashes(
            state.lid, TILE_HEIGHT * wanted.level, wanted.index * TILE_WIDTH, wanted.width
        )
        return b"".join(hashes)

    data = await read_db(request.app, read)
    response = web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Cache-Control": IMMUTABLE if wanted.is_full else PARTIAL},
    )
    if wanted.entries:
        # Vary: a shared cache must not hand the gzip copy to a client that did not ask for it.
        response.headers["Vary"] = "Accept-Encoding"
        response.enable_compression()
    return response


async def bodies(request: web.Request) -> web.Response:
    wanted = _tile(request, "tile/entries/")

    def read(store: Store) -> bytes:
        state = _log(store, request.match_info["log_id"])
        _check_exists(state, wanted)
        return encode_bundle(store.bundle(state.lid, wanted.index, wanted.width, bodies=True))

    data = await read_db(request.app, read)
    response = web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Cache-Control": BODIES_CACHE, "Vary": "Accept-Encoding"},
    )
    response.enable_compression()
    return response


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/logs", list_logs)
    app.router.add_get("/v1/logs/{log_id}/checkpoint", checkpoint)
    app.router.add_get("/v1/logs/{log_id}/tile/{tail:.+}", tile)
    app.router.add_get("/v1/logs/{log_id}/bodies/{tail:.+}", bodies)
