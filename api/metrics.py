"""Prometheus text-format counters kept in process (each worker reports its own)."""

from __future__ import annotations

import time
from collections import Counter, defaultdict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import throttle
from api.events import EventBus, RedisEventBus
from api.graphql import watch
from api.graphql.errors import sent

_DURATION = "mapi_ews_http_request_duration_seconds"
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.latency: Counter[tuple[str, float]] = Counter()
        self.latency_sum: defaultdict[str, float] = defaultdict(float)

    def observe(self, path: str, method: str, status: int, seconds: float) -> None:
        self.requests[(path, method, status)] += 1
        self.latency_sum[path] += seconds
        for bound in _BUCKETS:
            if seconds <= bound:
                self.latency[(path, bound)] += 1

    def render(self, events: EventBus | None = None) -> str:
        lines = [
            "# HELP mapi_ews_http_requests_total HTTP requests by path, method and status.",
            "# TYPE mapi_ews_http_requests_total counter",
        ]
        for (path, method, status), count in sorted(self.requests.items()):
            labels = f'path="{path}",method="{method}",status="{status}"'
            lines.append(f"mapi_ews_http_requests_total{{{labels}}} {count}")
        lines += [
            "# HELP mapi_ews_http_request_duration_seconds Time to the response's last byte.",
            "# TYPE mapi_ews_http_request_duration_seconds histogram",
        ]
        for path in sorted(self.latency_sum):
            total = 0
            for bound in _BUCKETS:
                total = self.latency[(path, bound)]
                le = "+Inf" if bound == float("inf") else repr(bound)
                lines.append(f'{_DURATION}_bucket{{path="{path}",le="{le}"}} {total}')
            lines.append(f'{_DURATION}_sum{{path="{path}"}} {self.latency_sum[path]}')
            lines.append(f'{_DURATION}_count{{path="{path}"}} {total}')
        if events is not None:
            lines += _event_lines(events)
        return "\n".join(lines) + "\n"


def _event_lines(events: EventBus) -> list[str]:
    hub = events.hub
    lines: list[str] = []
    for name, kind, help_text, value in (
        (
            "open_subscriptions",
            "gauge",
            "Subscriptions open on this process.",
            hub.subscriber_count(),
        ),
        ("events_published_total", "counter", "Events this process published.", events.published),
        (
            "events_publish_failures_total",
            "counter",
            "Events that could not be published (Redis unreachable); their changes are committed.",
            events.publish_failures,
        ),
        (
            "events_delivered_total",
            "counter",
            "Events queued for local subscribers.",
            hub.delivered,
        ),
        (
            "events_dropped_total",
            "counter",
            "Events a subscriber missed because its queue was full.",
            hub.dropped,
        ),
        (
            "subscriptions_fell_behind_total",
            "counter",
            "Subscriptions ended because their client read too slowly.",
            hub.cut_off,
        ),
    ):
        lines += [
            f"# HELP mapi_ews_{name} {help_text}",
            f"# TYPE mapi_ews_{name} {kind}",
            f"mapi_ews_{name} {value}",
        ]
    lines += [
        "# HELP mapi_ews_graphql_errors_total GraphQL errors sent to clients, by extensions.code.",
        "# TYPE mapi_ews_graphql_errors_total counter",
    ]
    for code, count in sorted(sent.items()):
        lines.append(f'mapi_ews_graphql_errors_total{{code="{code}"}} {count}')
    lines += [
        "# HELP mapi_ews_login_attempts_total Sign-in attempts by outcome: succeeded, failed "
        "(wrong name or password) and throttled (refused unchecked: too many failures).",
        "# TYPE mapi_ews_login_attempts_total counter",
    ]
    for outcome in ("succeeded", "failed", "throttled"):
        lines.append(
            f'mapi_ews_login_attempts_total{{outcome="{outcome}"}} {throttle.outcomes[outcome]}'
        )
    lines += [
        "# HELP mapi_ews_ws_connections_closed_total WebSocket connections closed because their "
        "credentials lapsed (access token expired, or rights withdrawn).",
        "# TYPE mapi_ews_ws_connections_closed_total counter",
    ]
    for reason in (watch.EXPIRED, watch.WITHDRAWN):
        lines.append(
            f'mapi_ews_ws_connections_closed_total{{reason="{reason}"}} {watch.closed[reason]}'
        )
    if isinstance(events, RedisEventBus):
        lines += [
            "# HELP mapi_ews_redis_listening 1 while this process is subscribed to Redis.",
            "# TYPE mapi_ews_redis_listening gauge",
            f"mapi_ews_redis_listening {int(events.listening.is_set())}",
        ]
    return lines


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
            self.metrics.observe(path, scope["method"], status, time.perf_counter() - started)
