"""graphql-transport-ws on /graphql: Strawberry's protocol handler, with our credentials, and
every operation run by the one pipeline.

Strawberry keeps the protocol (connection_init, ping, complete, the 44xx closes); what runs an
operation is ours, so a document the pipeline refuses is answered as graphql-ws, the reference
implementation, answers it: an `error` message whose errors carry extensions.code.
"""

from __future__ import annotations

from contextlib import suppress

import orjson
from graphql import ExecutionResult, OperationType
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    SubscribeMessage,
)
from strawberry.types.unset import UnsetType

from api.auth.credentials import Authenticator, bearer_token
from api.auth.principal import caller_key
from api.errors import Unauthenticated
from api.graphql.context import Context
from api.internals.strawberry_private import (
    BaseGraphQLTransportWSHandler,
    Operation,
    aclosing,
    send_text,
)
from api.settings import Settings
from api.transport.contexts import ContextFactory
from api.transport.errors import bad_request
from api.transport.pipeline import GraphQLRequest, Pipeline, Rendered, RequestError
from api.transport.subscriptions import SubscriptionPlaces
from api.transport.watch import ConnectionWatch
from api.web.graphiql import graphiql_page


def next_payload(result: ExecutionResult) -> str:
    """A `next` message's payload, as Strawberry's `send_next` builds it (data; errors and
    extensions when there are any), encoded; once for a shared result, which keeps it."""
    if isinstance(result, Rendered) and result.encoded is not None:
        return result.encoded
    payload: dict[str, object] = {"data": result.data}
    if result.errors:
        payload["errors"] = [error.formatted for error in result.errors]
    if result.extensions:
        payload["extensions"] = result.extensions
    encoded = orjson.dumps(payload).decode()
    if isinstance(result, Rendered):
        result.encoded = encoded
    return encoded


def next_prefix(operation_id: str) -> str:
    """What every `next` message of an operation starts with: encoding Strawberry's message
    `{"id": ..., "type": "next", "payload": ...}` gives this, then the payload and `}`."""
    return '{"id":' + orjson.dumps(operation_id).decode() + ',"type":"next","payload":'


class PipelineHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Runs each `subscribe` message's operation through the pipeline."""

    view: GraphQLApp

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        # Strawberry's own answer to one operation too many carries no extensions.code.
        limit = self.max_subscriptions_per_connection
        if (
            self.connection_acknowledged
            and limit is not None
            and message["id"] not in self.operations
            and len(self.operations) >= limit
        ):
            error = bad_request(
                f"Subscription limit reached: at most {limit} operations at once on a connection."
            )
            self.view.pipeline.sent([error])
            await self.send_message(
                {"id": message["id"], "type": "error", "payload": [error.formatted]}
            )
            return
        await super().handle_subscribe(message)

    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        await super().handle_connection_init(message)
        # Strawberry cancels its wait for connection_init, but keeps the cancelled task, and
        # with it its frames, for as long as the connection lasts.
        if self.connection_init_received:
            self.connection_init_timeout_task = None

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        pipeline = self.view.pipeline
        request = GraphQLRequest(operation.query, operation.variables, operation.operation_name)
        place: str | None = None
        try:
            prepared = pipeline.prepare(request)
            if prepared.kind is OperationType.SUBSCRIPTION:
                place = await self._place(operation)
                if place is None:
                    return
            async with aclosing(pipeline.stream(prepared, self.context)) as results:
                # Strawberry's `Operation.send_next`, with the payload encoded once for all
                # the subscribers that share the result (`Rendered`): ten thousand dashboards
                # are ten thousand writes of one text, not ten thousand encodings.
                prefix = next_prefix(operation.id)
                async for result in results:
                    if not operation.completed:
                        await send_text(self.websocket, prefix + next_payload(result) + "}")
            await operation.send_operation_message({"id": operation.id, "type": "complete"})
        except RequestError as refused:
            await operation.send_initial_errors(refused.errors)
        except WebSocketDisconnected:
            return  # the client left: nothing to answer, nothing to report
        except Exception as error:  # a fault of ours: logged, answered masked, connection kept
            with suppress(WebSocketDisconnected):
                await operation.send_initial_errors([pipeline.failed(error)])
        finally:
            if place is not None:
                await self.view.places.release(place)

    async def _place(self, operation: Operation[Context, None]) -> str | None:
        """A place among its principal's subscriptions; None, the refusal sent, when all of
        them are held (on any of its connections, on any process)."""
        places = self.view.places
        owner = caller_key(self.context.principal, self.context.client_address)
        place = await places.take(owner)
        if place is None:
            error = bad_request(
                f"Subscription limit reached: at most {places.maximum} subscriptions at once "
                "for one principal, across all its connections; complete one first."
            )
            self.view.pipeline.sent([error])
            await operation.send_initial_errors([error])
        return place


class GraphQLApp(GraphQL[Context, None]):
    """Strawberry's ASGI view, used for WebSocket connections and GraphiQL's page only."""

    graphql_transport_ws_handler_class = PipelineHandler

    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        contexts: ContextFactory,
        authenticator: Authenticator,
        schema: object,
        places: SubscriptionPlaces,
    ) -> None:
        super().__init__(
            schema,  # type: ignore[arg-type]
            graphql_ide="graphiql" if settings.is_development else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
            allowed_origins=settings.allowed_origins,
            max_subscriptions_per_connection=settings.max_subscriptions_per_connection,
        )
        self.pipeline = pipeline
        self.contexts = contexts
        self.authenticator = authenticator
        self.places = places

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return self.contexts.for_websocket(request.scope, websocket=response)  # type: ignore[arg-type]

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
        finally:
            # The connection keeps its principal, not the token it came with: a bearer token is
            # not held in memory for as long as a dashboard stays open.
            context.connection_params = None
            context.upgrade_authorization = None
        websocket = context.websocket
        watch: ConnectionWatch | None = (
            websocket.scope.get("connection_watch") if websocket else None
        )
        if context.principal is not None and watch is not None and websocket is not None:
            watch.start(websocket, context.principal)
        return UnsetType()  # no payload in connection_ack

    @property
    def graphql_ide_html(self) -> str:
        """Strawberry's GraphiQL page, as the web serves it (api/web/graphiql.py)."""
        return graphiql_page(super().graphql_ide_html)

    def encode_json(self, data: object) -> str:
        # Text, not bytes: graphql-transport-ws messages must be text frames.
        return orjson.dumps(data).decode()

    def decode_json(self, data: str | bytes) -> object:
        return orjson.loads(data)
