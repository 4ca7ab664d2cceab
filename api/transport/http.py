"""The front door of /graphql: credentials, the body cap, POST and GET read into one GraphQL
request for the pipeline, GraphiQL's page in development, and WebSocket upgrades handed to the
protocol handler with a watch on their credentials.

Every answer is GraphQL-shaped JSON, as the GraphQL-over-HTTP specification says: in
`application/graphql-response+json` when the client accepts it, else `application/json`. A
request that is not a GraphQL request at all (no document, a body that is not JSON, a batch) is
a 4xx; a mutation over GET is 405 with `Allow: POST`. A request error (syntax, validation, no
such operation, variables that do not coerce) has no `data` entry, and is 400 in
`application/graphql-response+json`, 200 in `application/json`. An operation refused because its
caller's budget is short (THROTTLED) is 429 with `Retry-After`, whatever the media type.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from graphql import GraphQLError, OperationType
from starlette.datastructures import QueryParams
from starlette.responses import HTMLResponse, Response
from starlette.types import Message, Receive, Scope, Send

from api import db
from api.auth.credentials import Authenticator, bearer_token
from api.auth.principal import Principal
from api.errors import Unauthenticated
from api.services import sign_ins
from api.settings import Settings
from api.transport.contexts import ContextFactory, authorization_header, client_address
from api.transport.errors import bad_request, coded
from api.transport.pipeline import GraphQLRequest, Pipeline, RequestError
from api.transport.watch import ConnectionWatch
from api.transport.websocket import GraphQLApp

log = logging.getLogger(__name__)

_OVER_GET = frozenset({OperationType.QUERY})
_OVER_POST = frozenset({OperationType.QUERY, OperationType.MUTATION})
GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"


def media_type(headers: dict[bytes, bytes]) -> str:
    """The media type to answer in: the GraphQL one when the client accepts it."""
    accepted = headers.get(b"accept", b"").decode("latin-1").lower()
    return GRAPHQL_RESPONSE if GRAPHQL_RESPONSE in accepted else JSON


def _request_error_status(media: str) -> int:
    return 400 if media == GRAPHQL_RESPONSE else 200


class Refused(Exception):
    """A request answered before the pipeline: its status and one coded error."""

    def __init__(self, status: int, error: GraphQLError) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error


class GraphQLEndpoint:
    """/graphql over HTTP and WebSocket.

    A bad or expired token fails the whole request with 401 and UNAUTHENTICATED (RFC 6750);
    no token at all leaves the principal empty, so public fields still work.
    """

    def __init__(self, settings: Settings, websockets: GraphQLApp) -> None:
        self.settings = settings
        self.websockets = websockets
        # Both transports run requests with the same parts.
        self.pipeline: Pipeline = websockets.pipeline
        self.contexts: ContextFactory = websockets.contexts
        self.authenticator: Authenticator = websockets.authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            closed = self.pipeline.metrics.ws_closed
            watch = ConnectionWatch(
                interval=self.settings.connection_recheck_seconds,
                still_allowed=sign_ins.still_allowed,
                closed=lambda reason: closed.labels(reason=reason).inc(),
            )
            scope["connection_watch"] = watch
            try:
                await self.websockets(scope, receive, send)
            finally:
                watch.stop()
            return
        headers = dict(scope["headers"])
        media = media_type(headers)
        try:
            response = await self._answer(scope, receive, headers, media)
        except Refused as refused:
            self.pipeline.sent([refused.error])
            response = _json(refused.status, {"errors": [refused.error.formatted]}, media)
            if refused.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        await response(scope, receive, send)

    async def _answer(
        self, scope: Scope, receive: Receive, headers: dict[bytes, bytes], media: str
    ) -> Response:
        principal = await self._principal(scope, headers)
        if scope["method"] in ("GET", "HEAD"):
            params = _query_params(scope)
            if self._wants_graphiql(params, headers):
                return HTMLResponse(self.websockets.graphql_ide_html)
            request, allowed = _from_params(params), _OVER_GET
        else:
            body = await _read_body(receive, self.settings.max_body_bytes)
            if body is None:
                message = f"The request body is over {self.settings.max_body_bytes} bytes."
                raise Refused(413, bad_request(message))
            request, allowed = _from_body(headers, body), _OVER_POST
        context = self.contexts.for_http(scope, principal)
        try:
            prepared = self.pipeline.prepare(request, allowed, refused_status=400)
            result = await self.pipeline.execute(prepared, context)
        except RequestError as refused:
            errors: dict[str, Any] = {"errors": [e.formatted for e in refused.errors]}
            if refused.extensions:
                errors["extensions"] = refused.extensions
            if refused.operation is OperationType.MUTATION and allowed is _OVER_GET:
                response = _json(405, errors, media)
                response.headers["Allow"] = "POST"
                return response
            status = refused.status
            response = _json(
                _request_error_status(media) if status == 200 else status, errors, media
            )
            if refused.retry_after is not None:
                response.headers["Retry-After"] = str(refused.retry_after)
            return response
        answer: dict[str, Any] = {"data": result.data}
        if result.errors:
            answer["errors"] = [error.formatted for error in result.errors]
        if result.extensions:
            answer["extensions"] = result.extensions
        return _json(200, answer, media)

    async def _principal(self, scope: Scope, headers: dict[bytes, bytes]) -> Principal | None:
        try:
            token = bearer_token(authorization_header(headers))
            if not token:
                return None
            return await self.authenticator.principal(token, address=client_address(scope))
        except Unauthenticated as refused:
            raise Refused(
                401, coded(GraphQLError(refused.message, original_error=refused))
            ) from None
        except Exception as error:
            if not db.unavailable(error):
                raise
            # A gateway token is looked up in the database (when not cached).
            log.warning("the database is unavailable: %r", error)
            unavailable = coded(GraphQLError(str(error), original_error=error))
            raise Refused(503, unavailable) from None

    def _wants_graphiql(self, params: dict[str, str], headers: dict[bytes, bytes]) -> bool:
        """A browser opening /graphql, in development (else: a GET without a document)."""
        return (
            self.websockets.graphql_ide is not None
            and "query" not in params
            and b"text/html" in headers.get(b"accept", b"")
        )


def _json(status: int, body: dict[str, Any], media: str = JSON) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=media)


def _query_params(scope: Scope) -> dict[str, str]:
    return dict(QueryParams(scope["query_string"]))


def _check_extensions(extensions: object) -> None:
    """A request's `extensions`: nothing here reads them, but one that is not an object is a
    malformed request (GraphQL over HTTP)."""
    if extensions is not None and not isinstance(extensions, dict):
        raise Refused(400, bad_request("`extensions` must be an object."))


def _from_params(params: dict[str, str]) -> GraphQLRequest:
    decoded: dict[str, object] = {}
    for name in ("variables", "extensions"):
        if params.get(name):
            try:
                decoded[name] = orjson.loads(params[name])
            except orjson.JSONDecodeError:
                raise Refused(400, bad_request(f"`{name}` must be a JSON object.")) from None
    _check_extensions(decoded.get("extensions"))
    return GraphQLRequest(
        params.get("query"), decoded.get("variables"), params.get("operationName")
    )


def _from_body(headers: dict[bytes, bytes], body: bytes) -> GraphQLRequest:
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type != b"application/json":
        message = "Send the request as JSON: Content-Type: application/json."
        raise Refused(415, bad_request(message))
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Refused(400, bad_request("The request body is not valid JSON.")) from None
    if isinstance(data, list):
        message = (
            "Batched requests (a JSON array of operations) are not accepted: send one "
            "operation per request."
        )
        raise Refused(400, bad_request(message))
    if not isinstance(data, dict):
        raise Refused(400, bad_request("The request body must be a JSON object."))
    _check_extensions(data.get("extensions"))
    return GraphQLRequest(data.get("query"), data.get("variables"), data.get("operationName"))


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None past `limit` (GraphQL reads it whole anyway)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Message = await receive()
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
