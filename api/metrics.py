"""Prometheus metrics through prometheus_client.

One `Metrics` per application, in its own registry, handed to whatever counts (the HTTP
middleware, the pipeline, the sign-in throttle, connection watches, the event bus). With more
than one worker, `serve` sets PROMETHEUS_MULTIPROC_DIR before the workers start: each worker's
values then live in files there, and a scrape of any worker reads them all (the library's
multiprocess mode), so one scrape counts every worker's requests.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ErrorCode
from api.settings import COST_LIMITED

# The `_created` sample of every counter doubles the output and no dashboard here reads it.
disable_created_metrics()  # type: ignore[no-untyped-call]

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))
LOGIN_OUTCOMES = ("succeeded", "failed", "throttled")
EXPIRED = "expired"
WITHDRAWN = "withdrawn"


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROCESS_DIR))


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        self.http_requests = Counter(
            "mapi_ews_http_requests",
            "HTTP requests by path, method and status.",
            ["path", "method", "status"],
            registry=registry,
        )
        self.sweeps = Counter(
            "mapi_ews_sweeps",
            "Rounds of the session sweep (and the clients' roll-up) this process did; among "
            "several processes, one does each round.",
            registry=registry,
        )
        self.http_duration = Histogram(
            "mapi_ews_http_request_duration_seconds",
            "Time to the response's last byte.",
            ["path"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.graphql_errors = Counter(
            "mapi_ews_graphql_errors",
            "GraphQL errors sent to clients, by extensions.code.",
            ["code"],
            registry=registry,
        )
        self.login_attempts = Counter(
            "mapi_ews_login_attempts",
            "Sign-in attempts by outcome: succeeded, failed (wrong name or password) and "
            "throttled (refused unchecked: too many failures).",
            ["outcome"],
            registry=registry,
        )
        self.throttled = Counter(
            "mapi_ews_throttled",
            "Operations refused because their caller's budget of query cost was short, by role "
            "(ANONYMOUS: no token).",
            ["role"],
            registry=registry,
        )
        self.ws_closed = Counter(
            "mapi_ews_ws_connections_closed",
            "WebSocket connections closed because their credentials lapsed (access token "
            "expired, or rights withdrawn).",
            ["reason"],
            registry=registry,
        )
        self.open_subscriptions = Gauge(
            "mapi_ews_open_subscriptions",
            "Subscriptions open (on every live worker).",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.events_published = Counter(
            "mapi_ews_events_published", "Events published.", registry=registry
        )
        self.events_publish_failures = Counter(
            "mapi_ews_events_publish_failures",
            "Events that could not be published (Redis unreachable); their changes are committed.",
            registry=registry,
        )
        self.events_delivered = Counter(
            "mapi_ews_events_delivered", "Events queued for local subscribers.", registry=registry
        )
        self.events_dropped = Counter(
            "mapi_ews_events_dropped",
            "Events a subscriber missed because its queue was full.",
            registry=registry,
        )
        self.fell_behind = Counter(
            "mapi_ews_subscriptions_fell_behind",
            "Subscriptions ended because their client read too slowly.",
            registry=registry,
        )
        self.redis_messages = Counter(
            "mapi_ews_redis_messages_received",
            "Pub/sub messages this process received from Redis for its subscriptions' channels.",
            registry=registry,
        )
        self.redis_listening = Gauge(
            "mapi_ews_redis_listening",
            "1 while every live worker is subscribed to Redis; 0 otherwise, and without Redis.",
            registry=registry,
            multiprocess_mode="livemin",
        )
        self.redis_fallback = Gauge(
            "mapi_ews_redis_fallback",
            "1 while this process serves a use of Redis alone because Redis cannot (budgets, "
            "sign-in-throttle, subscription-places, events; docs/operations.md); else 0.",
            ["use"],
            registry=registry,
            multiprocess_mode="livemax",
        )
        # Known label values start at 0, so an alert on a rate sees the series from the start.
        for code in ErrorCode:
            self.graphql_errors.labels(code=code.value)
        for outcome in LOGIN_OUTCOMES:
            self.login_attempts.labels(outcome=outcome)
        for role in COST_LIMITED:
            self.throttled.labels(role=role)
        for reason in (EXPIRED, WITHDRAWN):
            self.ws_closed.labels(reason=reason)

    def value(self, name: str, **labels: str) -> float:
        """A sample's value in this process (tests and in-process checks)."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> bytes:
        if multiprocess_mode():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


_KNOWN_PATHS = frozenset({"/graphql", "/healthz", "/readyz", "/metrics"})


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            path = scope["path"] if scope["path"] in _KNOWN_PATHS else "other"
            self.metrics.http_requests.labels(path, scope["method"], str(status)).inc()
            self.metrics.http_duration.labels(path).observe(time.perf_counter() - started)
