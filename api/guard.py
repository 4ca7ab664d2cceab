"""The front door of /graphql: credentials, body cap and batching refused before GraphQL, the
direct path for the common request, and GraphQL-shaped errors for everything refused."""

from __future__ import annotations

import logging

import orjson
from starlette.responses import JSONResponse, Response
from starlette.types import Message, Receive, Scope, Send

from api import db
from api.auth.credentials import Authenticator, bearer_token
from api.errors import ErrorCode, Unauthenticated
from api.graphql.direct import answer, direct_request, run_directly
from api.graphql.errors import UNAVAILABLE_MESSAGE, sent
from api.graphql.view import GraphQLApp, authorization_header, client_address
from api.graphql.watch import ConnectionWatch
from api.observability import request_id
from api.services import sessions
from api.settings import Settings

log = logging.getLogger(__name__)


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
                await self.authenticator.principal(token, address=client_address(scope))
                if token
                else None
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
