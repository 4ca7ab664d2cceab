"""The direct path for the common request: POST, JSON, one query or mutation that parses and
validates.

It runs graphql-core on the Strawberry schema itself (the same resolvers, @auth permission
extensions, validation rules and caches, error coding and logging) without the HTTP view's and
the extension runner's machinery around it, which costs more per request than the gateways'
whole report does (README, Performance). Everything else (GET, GraphiQL, batches, subscriptions,
a document with errors before execution) goes to Strawberry's view, so those answers are
Strawberry's own.
"""

from __future__ import annotations

import inspect
from typing import Any

import orjson
from graphql import ExecutionResult, OperationType, execute, get_operation_ast
from starlette.types import Send

from api.graphql.context import Context, begin_operation
from api.graphql.errors import coded, log_unexpected
from api.graphql.schema import Schema

_RUNS_DIRECTLY = (OperationType.QUERY, OperationType.MUTATION)


def direct_request(method: str, headers: dict[bytes, bytes], body: bytes) -> dict[str, Any] | None:
    """The request's JSON body, when the request may take the direct path."""
    if method != "POST":
        return None
    if not headers.get(b"content-type", b"").startswith(b"application/json"):
        return None
    if b"multipart" in headers.get(b"accept", b""):
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("query"), str):
        return None
    if not isinstance(data.get("variables"), dict | None):
        return None
    if not isinstance(data.get("operationName"), str | None):
        return None
    return data


async def run_directly(schema: Schema, context: Context, request: dict[str, Any]) -> bytes | None:
    """The response body for `request`, or None when Strawberry's view should answer it."""
    document = schema.limits.prepared(schema._schema, request["query"])
    if document is None:
        return None
    name = request.get("operationName")
    operation = get_operation_ast(document, name)
    if operation is None or operation.operation not in _RUNS_DIRECTLY:
        return None
    begin_operation()
    outcome = execute(
        schema._schema,
        document,
        context_value=context,
        variable_values=request.get("variables"),
        operation_name=name,
        executor_class=schema.executor_class,
    )
    result: ExecutionResult = await outcome if inspect.isawaitable(outcome) else outcome
    body: dict[str, Any] = {"data": result.data}
    if result.errors:
        log_unexpected(list(result.errors))
        body["errors"] = [coded(error).formatted for error in result.errors]
    return orjson.dumps(body)


async def answer(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
