"""create_app(settings) -> the Starlette application."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from api import db
from api.auth.credentials import Authenticator, bearer_token
from api.auth.principal import Principal
from api.auth.throttle import Limits, LoginThrottle, ThrottlePolicy
from api.errors import ErrorCode, Unauthenticated
from api.events import EventBus, RedisEventBus, event_bus
from api.graphql.context import Context
from api.graphql.direct import answer, direct_request, run_directly
from api.graphql.errors import UNAVAILABLE_MESSAGE, coded, sent
from api.graphql.schema import build_schema
from api.graphql.watch import ConnectionWatch
from api.metrics import Metrics, MetricsMiddleware
from api.observability import RequestIdMiddleware, request_id
from api.security import cors, response_headers
from api.services import sessions
from api.settings import Settings
from api.web import routes as dashboard_routes

log = logging.getLogger(__name__)


def authorization_header(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization")
    return value.decode("latin-1") if value is not None else None


_GRAPHIQL_FETCHER = "        subscriptionUrl,\n      });"
_GRAPHIQL_FETCHER_WITH_CREDENTIALS = """        subscriptionUrl,
        wsConnectionParams: () => {
          try {
            const headers = JSON.parse(localStorage.getItem("graphiql:headers") || "{}");
            return headers.Authorization ? { Authorization: headers.Authorization } : {};
          } catch {
            return {};
          }
        },
      });"""


class GraphQLApp(GraphQL[Context, None]):
    def __init__(
        self,
        settings: Settings,
        events: EventBus,
        authenticator: Authenticator,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.graphql_schema = build_schema(settings)
        super().__init__(
            self.graphql_schema,
            graphql_ide="graphiql" if settings.is_development else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            allowed_origins=settings.allowed_origins,
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        )
        self.settings = settings
        self.events = events
        self.authenticator = authenticator
        self.throttle = throttle

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        if isinstance(response, WebSocket):
            return self.context_for(request.scope, over_websocket=True, websocket=response)
        return self.context_for(request.scope, over_websocket=False)

    def context_for(
        self, scope: Scope, *, over_websocket: bool, websocket: WebSocket | None = None
    ) -> Context:
        principal: Principal | None = scope.get("principal")
        return Context(
            settings=self.settings,
            principal=principal,
            events=self.events,
            authenticator=self.authenticator,
            over_websocket=over_websocket,
            upgrade_authorization=(
                authorization_header(dict(scope["headers"])) if over_websocket else None
            ),
            websocket=websocket,
            watch=scope.get("connection_watch"),
            throttle=self.throttle,
            client_address=_client(scope),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType:
        """Credentials from the connection_init payload, else from the upgrade request's header.
        A bad token closes the connection with 4403; none at all leaves it anonymous, so @auth
        fields answer UNAUTHENTICATED, as over HTTP."""
        params = context.connection_params or {}
        value = params.get("Authorization", params.get("authorization"))
        if value is None:
            value = context.upgrade_authorization
        try:
            if value is not None and not isinstance(value, str):
                raise Unauthenticated("Authorization must be a string.")
            token = bearer_token(value)
            context.principal = (
                await self.authenticator.principal(token, address=context.client_address)
                if token
                else None
            )
        except Unauthenticated:
            raise ConnectionRejectionError from None
        if context.principal is not None and context.watch and context.websocket:
            context.watch.start(context.websocket, context.principal)
        return UnsetType()  # no payload in connection_ack

    @property
    def graphql_ide_html(self) -> str:
        """Strawberry's GraphiQL page, whose subscriptions also send the Authorization header of
        its headers editor (browsers cannot set headers on a WebSocket: it goes in
        connection_init's payload instead)."""
        html = super().graphql_ide_html
        return html.replace(_GRAPHIQL_FETCHER, _GRAPHIQL_FETCHER_WITH_CREDENTIALS, 1)

    def encode_json(self, data: object) -> str:
        # Text, not bytes: graphql-transport-ws messages must be text frames.
        return orjson.dumps(data).decode()

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)

    async def process_result(
        self, request: Request | WebSocket, result: ExecutionResult
    ) -> GraphQLHTTPResponse:
        if result.errors:
            result.errors = [coded(error) for error in result.errors]
        return process_result(result)


class Guard:
    """Before GraphQL: the request body cap, and the bearer token read once per request.

    A bad or expired token fails the whole request with 401 and UNAUTHENTICATED (RFC 6750);
    no token at all leaves the principal empty, so public fields still work. The common request
    (POST, JSON, one valid query or mutation) then takes the direct path (api.graphql.direct);
    the rest goes to Strawberry's view.
    """

    def __init__(self, app: GraphQLApp, settings: Settings, authenticator: Authenticator) -> None:
        self.app = app
        self.settings = settings
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            watch = ConnectionWatch(
                interval=self.settings.connection_recheck_seconds,
                still_allowed=sessions.still_allowed,
            )
            scope["connection_watch"] = watch
            try:
                await self.app(scope, receive, send)
            finally:
                watch.stop()
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            token = bearer_token(authorization_header(headers))
            scope["principal"] = (
                await self.authenticator.principal(token, address=_client(scope)) if token else None
            )
        except Unauthenticated as refused:
            await _graphql_error(401, refused.message, ErrorCode.UNAUTHENTICATED)(
                scope, receive, send
            )
            return
        except Exception as error:
            if not db.unavailable(error):
                raise
            # A gateway token is looked up in the database (when not cached).
            log.warning("the database is unavailable: %r", error)
            await _graphql_error(503, UNAVAILABLE_MESSAGE, ErrorCode.SERVICE_UNAVAILABLE)(
                scope, receive, send
            )
            return
        body = await _read_body(receive, self.settings.max_body_bytes)
        if body is None:
            message = f"The request body is over {self.settings.max_body_bytes} bytes."
            await _graphql_error(413, message, ErrorCode.BAD_USER_INPUT)(scope, receive, send)
            return
        if scope["method"] == "POST" and body[:1] in b"[ \t\r\n" and body.lstrip()[:1] == b"[":
            message = (
                "Batched requests (a JSON array of operations) are not accepted: send one "
                "operation per request."
            )
            await _graphql_error(400, message, ErrorCode.BAD_USER_INPUT)(scope, receive, send)
            return
        request = direct_request(scope["method"], headers, body)
        if request is not None:
            context = self.app.context_for(scope, over_websocket=False)
            answered = await run_directly(self.app.graphql_schema, context, request)
            if answered is not None:
                await answer(send, answered)
                return
        await self.app(scope, _replay(body, receive), _graphql_shaped(send))


def _client(scope: Scope) -> str | None:
    """The client's address (a trusted proxy's X-Forwarded-For, as uvicorn applied it)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def _graphql_shaped(send: Send) -> Send:
    """Strawberry answers a few bad requests (no query, an unsupported content type, a mutation
    over GET, ...) in plain text: every client gets a GraphQL error object instead."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def shaped(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            content_type = dict(message.get("headers", [])).get(b"content-type", b"")
            if message["status"] >= 400 and content_type.startswith(b"text/plain"):
                start = message
                return
        elif start is not None and message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status = start["status"]
            sent["INTERNAL_SERVER_ERROR" if status >= 500 else "BAD_USER_INPUT"] += 1
            if status >= 500:
                error = {
                    "message": "Internal server error.",
                    "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id()},
                }
            else:
                text = b"".join(chunks).decode("utf-8", "replace").strip()
                error = {"message": text, "extensions": {"code": "BAD_USER_INPUT"}}
            body = orjson.dumps({"errors": [error]})
            headers = [
                (name, value)
                for name, value in start.get("headers", [])
                if name not in (b"content-type", b"content-length")
            ]
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await send(message)

    return shaped


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None past `limit` (GraphQL reads it whole anyway)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _graphql_error(status: int, message: str, code: ErrorCode) -> Response:
    sent[code.value] += 1
    extensions = {"code": code.value}
    if code is ErrorCode.SERVICE_UNAVAILABLE:
        extensions["requestId"] = request_id()
    body = {"errors": [{"message": message, "extensions": extensions}]}
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    return JSONResponse(body, status_code=status, headers=headers)


async def healthz(_: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _answers(name: str, check: Awaitable[object]) -> bool:
    try:
        await asyncio.wait_for(check, timeout=2)
    except Exception as error:
        # An outage is one line; anything else gets its trace.
        known = db.unavailable(error) or isinstance(error, RedisError)
        log.warning("readiness: %s does not answer: %r", name, error, exc_info=not known)
        return False
    return True


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings()
    metrics = Metrics()

    events = event_bus(
        redis_url=settings.redis_url,
        channel=settings.redis_channel,
        queue_size=settings.subscription_queue_size,
    )
    authenticator = Authenticator(settings)
    throttle = LoginThrottle(
        ThrottlePolicy(
            username=Limits(settings.login_free_failures, settings.login_lock_failures),
            address=Limits(
                settings.login_address_free_failures, settings.login_address_lock_failures
            ),
            lock_seconds=settings.login_lock_seconds,
            max_backoff=settings.login_max_backoff_seconds,
        ),
        redis=events.redis if isinstance(events, RedisEventBus) else None,
        prefix=settings.redis_channel,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await db.open_database(settings)
        app.state.events = events
        app.state.redis = events.redis if isinstance(events, RedisEventBus) else None
        await events.start()
        # Everything alive now (schema, ORM metadata, modules) lives as long as the process:
        # keep it out of the collector's full passes, which otherwise scan it every time
        # (measured: 43 ms per full collection under load before, 6 ms after).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            await events.stop()
            await db.close_database()

    async def readyz(request: Request) -> Response:
        """Ready when the database answers, and Redis too where one is configured."""
        state = {"database": "up" if await _answers("the database", db.ping()) else "down"}
        redis_client: Redis | None = request.app.state.redis
        if redis_client is not None:
            up = await _answers("redis", redis_client.ping())
            state["redis"] = "up" if up else "down"
        ready = all(value == "up" for value in state.values())
        body = {"status": "ok" if ready else "unavailable", **state}
        return JSONResponse(body, status_code=200 if ready else 503)

    async def metrics_endpoint(_: Request) -> Response:
        return PlainTextResponse(metrics.render(events), media_type="text/plain; version=0.0.4")

    graphql_app = GraphQLApp(settings, events, authenticator, throttle)
    graphql = Guard(graphql_app, settings, authenticator)
    app = Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics_endpoint),
            WebSocketRoute("/graphql", graphql),
            *dashboard_routes(),
        ],
        lifespan=lifespan,
        middleware=cors(settings),
    )
    app.state.graphql = graphql_app
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(
        RequestIdMiddleware, headers=response_headers(production=not settings.is_development)
    )
    return app
