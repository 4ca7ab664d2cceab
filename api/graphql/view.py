"""Strawberry's ASGI view, with our context, WebSocket credentials and error coding."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http import GraphQLHTTPResponse, process_result
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UnsetType

from api.auth.credentials import Authenticator, bearer_token
from api.auth.principal import Principal
from api.auth.throttle import LoginThrottle
from api.errors import Unauthenticated
from api.events import EventBus
from api.graphql.context import Context
from api.graphql.errors import coded
from api.graphql.schema import build_schema
from api.settings import Settings


def client_address(scope: Scope) -> str | None:
    """The client's address (a trusted proxy's X-Forwarded-For, as uvicorn applied it)."""
    client = scope.get("client")
    return str(client[0]) if client else None


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
            client_address=client_address(scope),
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
