"""Prometheus metrics of the city server at ``GET /metrics`` (prometheus-client).

Per node (labels ``node`` and ``unit``), read fresh from fleet.db at each scrape:

    motcua_node_last_contact_timestamp_seconds       last authenticated request
    motcua_node_last_sync_success_timestamp_seconds  last push or pull that succeeded
    motcua_node_lag_ops{side="edge"|"central"}       ops waiting on each side at the last hello
    motcua_node_clock_drift_seconds                  city clock - node clock (positive: behind)
    motcua_node_backup_age_seconds                   as the node reported it
    motcua_node_errors_total                         requests refused or failed since registered
    motcua_node_revoked                              1 if revoked
    motcua_node_silent                               1 if an alert on the dashboard (never
                                                     synced, or silent past the threshold)
    motcua_node_info{software}                       1, with the software version

A value the city does not know (a node that never synced has no last sync) is left out rather
than reported as 0, as Prometheus expects. And per sync endpoint, the latency histogram
``motcua_sync_request_seconds{endpoint}``, measured by :class:`SyncTimer` around the app.

Everything lives in a :class:`CollectorRegistry` of its own per app (never the global one), so
two apps in one process (tests) do not collide.

Who may read it: a logged-in city admin (the fleet pages link here), or a scraper that sends
``Authorization: Bearer <token>`` with the token in the city's ``metrics.token`` (a secret file
in the data directory, made at ``central init`` or at the first serve, mode 0600; Prometheus reads
it with ``authorization: {credentials_file: ...}``). Anyone else gets 401. There is no exception
for loopback: a reverse proxy on the same host would make every visitor look local. The series
still carry nothing personal: node ids, unit codes, times, counts and versions only (no error
texts, no names, no dossier data).
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from central.fleet import FleetStore
from central.fleetviews import FleetSettings, node_rows
from central.syncapi import PREFIX
from edge.web import session_actor

TOKEN_FILE = "metrics.token"  # noqa: S105 (a file name, not a secret)
"""The scrape token's file in the city's data directory."""


def scrape_token(data_dir: Path) -> str:
    """The city's scrape token, made (random, 256 bits, mode 0600) if the file is missing."""
    path = data_dir / TOKEN_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    return path.read_text(encoding="ascii").strip()


LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: a hello on loopback is a few ms, a 256 KiB batch over a rural 3G link a few s."""

_ENDPOINTS = [
    (re.compile(rf"^{PREFIX}/(time|hello|push|pull|digest)$"), None),
    (re.compile(rf"^{PREFIX}/blobs/[^/]+/size$"), "blob_size"),
    (re.compile(rf"^{PREFIX}/blobs/[^/]+/chunks/\d+$"), "blob_put"),
    (re.compile(rf"^{PREFIX}/blobs/[^/]+/read/\d+/\d+$"), "blob_get"),
]


def endpoint_of(path: str) -> str | None:
    """The sync endpoint's name for a request path (a fixed set: blob digests and offsets never
    become label values); "other" for anything else under the prefix, None outside it."""
    if not path.startswith(PREFIX + "/"):
        return None
    for pattern, name in _ENDPOINTS:
        found = pattern.match(path)
        if found:
            return name or found.group(1)
    return "other"


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


class FleetCollector(Collector):
    """The per-node series, computed at scrape time from fleet.db."""

    def __init__(self, fleet: FleetStore, settings: FleetSettings, now_ms: Callable[[], int]) -> None:
        self.fleet = fleet
        self.settings = settings
        self.now_ms = now_ms

    def collect(self) -> Iterable[Metric]:
        now = self.now_ms()
        rows = node_rows(self.fleet.registrations(), self.fleet.statuses(), {}, now, self.settings.silent_ms)
        errors = self.fleet.errors_by_node()
        labels = ["node", "unit"]

        def gauge(name: str, doc: str, extra: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*labels, *(extra or [])])

        contact = gauge("motcua_node_last_contact_timestamp_seconds", "Last authenticated request.")
        success = gauge("motcua_node_last_sync_success_timestamp_seconds", "Last successful push or pull.")
        lag = gauge("motcua_node_lag_ops", "Ops waiting on each side at the node's last hello.", ["side"])
        drift = gauge("motcua_node_clock_drift_seconds", "City clock minus node clock (positive: behind).")
        backup = gauge("motcua_node_backup_age_seconds", "Age of the node's last backup, as it reported.")
        revoked = gauge("motcua_node_revoked", "1 if the node is revoked.")
        silent = gauge("motcua_node_silent", "1 if never synced or silent longer than the alert threshold.")
        info = gauge("motcua_node_info", "The node's software version (value 1).", ["software"])
        failures = CounterMetricFamily(
            "motcua_node_errors_total", "Requests of the node refused or failed.", labels=labels
        )
        for row in rows:
            status, key = row.status, [row.node, row.unit]
            optional = (
                (contact, _seconds(status.last_contact_ms)),
                (success, _seconds(status.last_ok_ms)),
                (drift, _seconds(status.drift_ms)),
                (backup, None if status.backup_age_s is None else float(status.backup_age_s)),
            )
            for family, value in optional:
                if value is not None:
                    family.add_metric(key, value)
            if status.edge_waiting is not None:
                lag.add_metric([*key, "edge"], status.edge_waiting)
            if status.central_waiting is not None:
                lag.add_metric([*key, "central"], status.central_waiting)
            revoked.add_metric(key, 1.0 if row.revoked else 0.0)
            silent.add_metric(key, 1.0 if row.alert in ("never", "silent") else 0.0)
            if status.software:
                info.add_metric([*key, status.software], 1.0)
            # Only registered nodes: a refused request may claim any id, and label values
            # must stay a small, known set.
            failures.add_metric(key, errors.get(row.node, 0))
        yield from (contact, success, lag, drift, backup, failures, revoked, silent, info)


class Metrics:
    """The city server's registry: the fleet collector and the sync latency histogram."""

    def __init__(
        self, fleet: FleetStore, settings: FleetSettings, now_ms: Callable[[], int], token: str
    ) -> None:
        self.token = token
        self.registry = CollectorRegistry()
        self.registry.register(FleetCollector(fleet, settings, now_ms))
        self.sync_seconds = Histogram(
            "motcua_sync_request_seconds",
            "Time to answer a sync request, per endpoint.",
            ["endpoint"],
            registry=self.registry,
            buckets=LATENCY_BUCKETS,
        )

    def allowed(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and given:
            return bool(self.token) and hmac.compare_digest(given.strip().encode(), self.token.encode())
        actor = session_actor(request)
        return actor is not None and actor.role == "admin"

    async def endpoint(self, request: Request) -> Response:
        if not await run_in_threadpool(self.allowed, request):
            return Response(
                "401: a city admin's login or the scrape token (metrics.token) is required\n",
                status_code=401,
                media_type="text/plain; charset=utf-8",
                headers={"WWW-Authenticate": 'Bearer realm="motcua metrics"'},
            )
        body = await run_in_threadpool(generate_latest, self.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    def routes(self) -> list[BaseRoute]:
        return [Route("/metrics", self.endpoint, methods=["GET"], name="metrics")]


class SyncTimer:
    """ASGI middleware: observes how long each sync request takes, per endpoint."""

    def __init__(self, app: ASGIApp, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = endpoint_of(scope.get("path", "")) if scope["type"] == "http" else None
        if name is None:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.histogram.labels(name).observe(time.perf_counter() - started)
