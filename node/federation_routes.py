"""Federation endpoints: status, evidence, gossip and announcements.

    GET  /v1/status               this node's view: logs, peers, network digest
    GET  /v1/evidence             evidence of equivocation held, by log id
    GET  /v1/evidence/<log id>    one piece of evidence (canonical MessagePack)
    POST /v1/gossip               one push-pull exchange (JSON; see node.federation)
    POST /v1/announce             a new city-signed checkpoint (like tlog-witness add-checkpoint)
"""

from __future__ import annotations

import base64
import json

from aiohttp import web

from node.context import FEDERATION, read_db
from node.errors import BadRequest, Conflict, NotFound
from node.federation import read_limited

MAX_POST_BYTES = 64 * 1024


def _federation(request: web.Request):
    federation = request.app.get(FEDERATION)
    if federation is None:
        raise NotFound("this node runs without a network file: install one with 'solidarity network join'")
    return federation


async def _json_body(request: web.Request) -> dict:
    data = await read_limited(request.content, MAX_POST_BYTES)
    if data is None:
        raise BadRequest(f"request body larger than {MAX_POST_BYTES} bytes")
    try:
        body = json.loads(data)
    except ValueError:
        raise BadRequest("request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


async def status(request: web.Request) -> web.Response:
    federation = request.app.get(FEDERATION)
    if federation is None:
        from node.tlog_routes import log_json

        logs = await read_db(request.app, lambda s: [log_json(x) for x in s.logs()])
        return web.json_response({"network": None, "logs": logs}, headers={"Cache-Control": "no-store"})
    body = await read_db(request.app, federation.status)
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def evidence_list(request: web.Request) -> web.Response:
    held = await read_db(request.app, lambda s: s.evidence())
    body = {
        "evidence": [
            {"log_id": log_id, "found_ms": found, "url": f"/v1/evidence/{log_id}",
             "evidence_base64": base64.b64encode(ev).decode()}
            for log_id, (ev, found) in held.items()
        ]
    }
    return web.json_response(body, headers={"Cache-Control": "public, max-age=5"})


async def evidence_one(request: web.Request) -> web.Response:
    log_id = request.match_info["log_id"]
    held = await read_db(request.app, lambda s: s.evidence())
    if log_id not in held:
        raise NotFound(f"no evidence against log {log_id[:64]}")
    return web.Response(body=held[log_id][0], content_type="application/octet-stream",
                        headers={"Cache-Control": "public, max-age=60"})


async def gossip(request: web.Request) -> web.Response:
    federation = _federation(request)
    body = await _json_body(request)
    if body.get("network") != federation.network_hash.hex():
        raise Conflict("gossip: this node runs under a different network file "
                       f"({federation.network_hash.hex()[:16]}...)")
    federation.stats["gossip_received"] += 1
    answer = await read_db(request.app, lambda s: federation.gossip_answer(s, body))
    source = body.get("from")
    if answer["digest"] != body.get("digest") and isinstance(source, str):
        # Push half of push-pull: the asker may hold what we lack; pull from it if it is reachable.
        federation.schedule_exchange(source)
    return web.json_response(answer, headers={"Cache-Control": "no-store"})


async def announce(request: web.Request) -> web.Response:
    federation = _federation(request)
    body = await _json_body(request)
    status_code, answer = await federation.receive_announce(body)
    return web.json_response(answer, status=status_code, headers={"Cache-Control": "no-store"})


def add_routes(app: web.Application) -> None:
    app.router.add_get("/v1/status", status)
    app.router.add_get("/v1/evidence", evidence_list)
    app.router.add_get("/v1/evidence/{log_id}", evidence_one)
    app.router.add_post("/v1/gossip", gossip)
    app.router.add_post("/v1/announce", announce)
