"""create_app(settings) -> the Starlette application."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from datetime import timedelta
from typing import Any

from prometheus_client import multiprocess
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from api import db, redis_client
from api.auth.credentials import Authenticator
from api.auth.throttle import SignInThrottle, ThrottlePolicy
from api.events import EventBus, RedisEventBus, Topic, event_bus
from api.graphql.schema import build_schema
from api.metrics import CONTENT_TYPE, Metrics, MetricsMiddleware, multiprocess_mode
from api.observability import RequestIdMiddleware
from api.reports import routes as report_routes
from api.security import cors, response_headers
from api.services import client_rollup, gateways, protocol_sessions, sign_ins, sweeps
from api.services.access_policy import PolicyCache
from api.services.event_payloads import PAYLOADS
from api.settings import Settings
from api.transport.budget import Budget
from api.transport.contexts import ContextFactory
from api.transport.http import GraphQLEndpoint
from api.transport.pipeline import Pipeline
from api.transport.subscriptions import SubscriptionPlaces
from api.transport.websocket import GraphQLApp
from api.web import routes as dashboard_routes

log = logging.getLogger(__name__)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _sweep_sessions(settings: Settings, events: EventBus, metrics: Metrics) -> None:
    """Forget MAPI/EWS sessions their gateways stopped confirming, and announce them, then roll
    up the clients of the logins that became final: every session_sweep_seconds, off the
    gateways' hot path, done by one process of however many serve (api/services/sweeps.py; the
    sweep is also safe when two overlap: each expired session is announced by the one that
    deletes it)."""
    every = timedelta(seconds=settings.session_sweep_seconds)
    while True:
        await asyncio.sleep(settings.session_sweep_seconds)
        try:
            if not await sweeps.claim("sessions", every):
                continue  # another process does this round
            metrics.sweeps.inc()
            await protocol_sessions.sweep(events=events)
        except Exception as error:
            # An outage is one line (the next sweep catches up); anything else gets its trace.
            log.warning(
                "could not sweep expired sessions: %r", error, exc_info=not db.unavailable(error)
            )
            continue
        try:
            await client_rollup.roll_up(settings.login_event_coalesce)
        except Exception as error:
            log.warning(
                "could not roll up the clients of logins: %r",
                error,
                exc_info=not db.unavailable(error),
            )


async def _answers(name: str, check: Awaitable[object]) -> bool:
    try:
        await asyncio.wait_for(check, timeout=2)
    except Exception as error:
        # An outage is one line; anything else gets its trace.
        known = db.unavailable(error) or isinstance(error, RedisError)
        log.warning("readiness: %s does not answer: %r", name, error, exc_info=not known)
        return False
    return True


# The collector's thresholds (generations 0, 1, 2) for a serving process; Python's are 700, 10, 10.
GC_THRESHOLDS = (20_000, 10, 100)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics()

    events = event_bus(settings, metrics=metrics, payloads=PAYLOADS)
    # The one Redis client of the process, when there is one: events, throttles, budgets, places.
    redis = events.redis if isinstance(events, RedisEventBus) else None
    authenticator = Authenticator(settings, gateways.gateway_principal, sign_ins.still_allowed)
    # Each domain's client access policy, for deciding reports without a query (read again
    # when it changes, or after the gateway-token cache time if this process missed that).
    policies = PolicyCache(settings.gateway_token_cache_seconds)
    throttle = SignInThrottle(
        ThrottlePolicy.of(settings),
        redis=redis,
        prefix=settings.redis_channel,
        metrics=metrics,
        fallbacks=events.fallbacks,
    )

    budget = Budget(
        settings.cost_limits,
        redis=redis,
        prefix=settings.redis_channel,
        metrics=metrics,
        fallbacks=events.fallbacks,
    )
    places = SubscriptionPlaces(
        settings.max_subscriptions_per_principal,
        redis=redis,
        prefix=settings.redis_channel,
        fallbacks=events.fallbacks,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if redis is not None:
            await redis_client.check_kind(redis)
        await db.open_database(settings)
        app.state.events = events
        app.state.redis = redis
        await events.start()
        sweeper = asyncio.create_task(
            _sweep_sessions(settings, events, metrics), name="session-sweeper"
        )
        refunds = asyncio.create_task(budget.run(), name="cost-refunds")
        # Every process hears that a domain's signed-in accounts were removed or changed role,
        # and checks their access tokens again; after losing Redis, every token once.
        await events.listen(
            Topic.PRINCIPALS, 0, lambda event: authenticator.forget(event.payload.domain_id)
        )
        await events.listen(
            Topic.ACCESS_POLICY, 0, lambda event: policies.forget(event.payload.domain)
        )
        events.after_outage.append(authenticator.forget_all)
        events.after_outage.append(policies.forget_all)
        leases = asyncio.create_task(places.run(), name="subscription-leases")
        # Everything alive now (schema, ORM metadata, modules) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise scan it every time
        # (measured: 43 ms per full collection under load before, 6 ms after).
        gc.collect()
        gc.freeze()
        # Thousands of open subscriptions are objects that live long: with the default
        # thresholds, a burst of fan-out to them set off full collections that walked all of
        # them (measured: p99 877 ms for 5,000 dashboards, 291 to 345 ms with raised ones;
        # docs/performance.md, "Compiled plans and 5,000 dashboards"). Garbage without cycles
        # is freed at once all the same.
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            for task in (sweeper, refunds, leases):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await events.stop()
            await db.close_database()
            if multiprocess_mode():
                # Its live gauges leave the sums; its counters stay counted.
                multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    async def readyz(request: Request) -> Response:
        """Ready when the database answers, and Redis too where one is configured (on a
        cluster: every primary, and all slots covered). Uses of Redis that this process serves
        alone for now are listed under `fallbacks` (README, Scaling out)."""
        state: dict[str, Any] = {
            "database": "up" if await _answers("the database", db.ping()) else "down"
        }
        client: redis_client.RedisClient | None = request.app.state.redis
        if client is not None:
            up = await _answers("redis", redis_client.check(client))
            state["redis"] = "up" if up else "down"
        ready = all(value == "up" for value in state.values())
        body = {"status": "ok" if ready else "unavailable", **state}
        if fallbacks := events.fallbacks.uses():
            body["fallbacks"] = fallbacks
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    schema = build_schema()
    pipeline = Pipeline(schema._schema, settings, metrics, budget)
    contexts = ContextFactory(settings, events, throttle, policies)
    graphql = GraphQLEndpoint(
        settings, GraphQLApp(settings, pipeline, contexts, authenticator, schema, places)
    )
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            WebSocketRoute("/graphql", graphql),
            *report_routes(authenticator),
            *dashboard_routes(),
        ],
        lifespan=lifespan,
        middleware=cors(settings),
    )
    # For tests that run operations in process, as the transports do.
    app.state.pipeline = pipeline
    app.state.contexts = contexts
    app.state.authenticator = authenticator
    app.state.policies = policies
    app.state.subscription_places = places
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(
        RequestIdMiddleware, headers=response_headers(production=not settings.is_development)
    )
    return app
