"""Every error outside userErrors leaves with extensions.code; unexpected ones are logged and
masked. The pipeline passes every error of every operation through `finished`."""

from __future__ import annotations

import logging

from graphql import GraphQLError

from api.db import unavailable
from api.errors import AppError, ErrorCode
from api.observability import request_id

log = logging.getLogger("api.graphql")

UNAVAILABLE_MESSAGE = "The database is unavailable: try again shortly."


def _expected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is None or isinstance(original, AppError | GraphQLError)


def _log_unexpected(error: GraphQLError) -> None:
    if _expected(error):
        return
    if unavailable(error.original_error):
        log.warning("the database is unavailable: %r", error.original_error)
    else:
        log.error(
            "unexpected error in %s",
            ".".join(str(p) for p in error.path or ()) or "operation",
            exc_info=error.original_error,
        )


def finished(error: GraphQLError) -> GraphQLError:
    """The error as it leaves: logged when unexpected, then coded (and masked)."""
    _log_unexpected(error)
    return coded(error)


def bad_request(message: str) -> GraphQLError:
    """A client's mistake found before execution."""
    return coded(GraphQLError(message))


def coded(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, AppError):
        code, message = original.code, original.message
    elif _expected(error):
        code = (error.extensions or {}).get("code", ErrorCode.BAD_USER_INPUT)
        message = error.message
    elif unavailable(original):
        code, message = ErrorCode.SERVICE_UNAVAILABLE, UNAVAILABLE_MESSAGE
    else:
        code, message = ErrorCode.INTERNAL_SERVER_ERROR, "Internal server error."
    extensions = {**(error.extensions or {}), "code": str(code)}
    if code in (ErrorCode.INTERNAL_SERVER_ERROR, ErrorCode.SERVICE_UNAVAILABLE):
        extensions["requestId"] = request_id()
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )
