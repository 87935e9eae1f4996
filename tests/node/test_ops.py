"""What an operator watches: /metrics, /readyz, /healthz."""

from __future__ import annotations

from node.app import create_app
from node.authoring import Event

from .conftest import PLEDGE


async def test_metrics_in_prometheus_text_format(make_node, aiohttp_client):
    node = make_node("Athens")
    client = await aiohttp_client(create_app(node.config))
    node.author().append([Event(type="pledge", body=PLEDGE)] * 3)
    await client.get("/v1/logs")
    await client.get("/v1/logs/" + "0" * 64 + "/checkpoint")
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    origin = node.config["node.origin"]
    assert f'solidarity_log_entries{{log_id="{node.store.own_log().log_id}",origin="{origin}",own="true"}} 4.0' in text
    assert 'solidarity_http_request_seconds_count{route="/v1/logs",status="200"}' in text
    assert 'solidarity_errors_total{kind="NotFound"} 1.0' in text
    assert "solidarity_evidence_held 0.0" in text


async def test_two_apps_in_one_process_keep_separate_metrics(make_node, aiohttp_client):
    a = await aiohttp_client(create_app(make_node("Athens").config))
    b = await aiohttp_client(create_app(make_node("Berlin", country="DE").config))
    await a.get("/v1/logs")
    text_b = await (await b.get("/metrics")).text()
    assert 'route="/v1/logs"' not in text_b


async def test_readyz_and_healthz(make_node, aiohttp_client):
    client = await aiohttp_client(create_app(make_node("Athens").config))
    ready = await client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["status"] == "ready"
    assert (await client.get("/healthz")).status == 200
