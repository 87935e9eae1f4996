"""Prometheus metrics, one registry per application (never the global one).

Several nodes can run in one process (the tests and ``solidarity demo`` do),
so every app gets its own :class:`Metrics` with its own registry, served at
``GET /metrics`` in the Prometheus text format. Gauges that describe the
store (entries held per log, evidence held) are read at scrape time, so they
are right even for entries the CLI appended while ``serve`` runs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

from node.store import Store


class _StoreCollector:
    """Reads per-log sizes and evidence from the database when Prometheus scrapes."""

    def __init__(self, read: Callable[[], tuple[list, dict]]) -> None:
        self._read = read

    def collect(self):
        logs, evidence = self._read()
        held = GaugeMetricFamily("solidarity_log_entries", "Entries held, per log", labels=["log_id", "origin", "own"])
        for state in logs:
            held.add_metric([state.log_id, state.origin, "true" if state.own else "false"], state.size)
        yield held
        found = GaugeMetricFamily("solidarity_evidence_held", "Logs with evidence of equivocation held")
        found.add_metric([], len(evidence))
        yield found


class Metrics:
    def __init__(self) -> None:
        # auto_describe off: the store collector can only be read during a scrape.
        self.registry = CollectorRegistry(auto_describe=False)
        self._lock = threading.Lock()
        r = self.registry
        self.requests = Histogram(
            "solidarity_http_request_seconds", "HTTP request latency", ["route", "status"], registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10),
        )
        self.authored = Counter("solidarity_entries_authored", "Entries this node appended to its own log", registry=r)
        self.synced = Counter("solidarity_entries_synced", "Entries fetched and verified from peers", registry=r)
        self.sync_runs = Counter("solidarity_sync_runs", "Log syncs by outcome", ["outcome"], registry=r)
        self.gossip_rounds = Counter("solidarity_gossip_rounds", "Gossip rounds started", registry=r)
        self.errors = Counter("solidarity_errors", "Errors by kind", ["kind"], registry=r)
        self.peers = Gauge("solidarity_peers", "Peers by state", ["state"], registry=r)
        self.evidence_found = Counter("solidarity_evidence_found", "Evidence of equivocation found here", registry=r)
        self.own_evidence = Gauge(
            "solidarity_own_log_forked", "1 if evidence against this node's own city is held (alert!)", registry=r
        )

        self._store: Store | None = None
        self.registry.register(_StoreCollector(lambda: (self._store.logs(), self._store.evidence())))
        #: Set by the federation: a callable giving peers' states for the peers gauge.
        self.peer_states: Callable[[], list] | None = None

    def render_with(self, store: Store) -> bytes:
        """Render, reading store-backed gauges from ``store`` (a read-only one, in a worker thread)."""
        if self.peer_states is not None:
            states = self.peer_states()
            self.peers.labels("ok").set(sum(1 for p in states if p.failures == 0))
            self.peers.labels("backed-off").set(sum(1 for p in states if p.failures > 0))
        with self._lock:  # two scrapes at once must not swap each other's store
            self._store = store
            try:
                return generate_latest(self.registry)
            finally:
                self._store = None


def middleware(metrics_key: web.AppKey) -> Callable:
    """Request latency by route pattern (never by raw path: that would explode the label set)."""

    @web.middleware
    async def measure(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            info = request.match_info.route.resource
            route = info.canonical if info is not None else "unmatched"
            request.app[metrics_key].requests.labels(route, str(status)).observe(time.perf_counter() - start)

    return measure
