"""Every error outside userErrors leaves with extensions.code; unexpected ones are masked."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from api.errors import AppError, ErrorCode
from api.observability import request_id

log = logging.getLogger("api.graphql")


def _expected(error: GraphQLError) -> bool:
    original = error.original_error
    return original is None or isinstance(original, AppError | GraphQLError)


def log_unexpected(errors: list[GraphQLError]) -> None:
    for error in errors:
        if not _expected(error):
            log.error(
                "unexpected error in %s",
                ".".join(str(p) for p in error.path or ()) or "operation",
                exc_info=error.original_error,
            )


def coded(error: GraphQLError) -> GraphQLError:
    original = error.original_error
    if isinstance(original, AppError):
        code, message = original.code, original.message
    elif _expected(error):
        code = (error.extensions or {}).get("code", ErrorCode.BAD_USER_INPUT)
        message = error.message
    else:
        code, message = ErrorCode.INTERNAL_SERVER_ERROR, "Internal server error."
    extensions = {**(error.extensions or {}), "code": str(code)}
    if code == ErrorCode.INTERNAL_SERVER_ERROR:
        extensions["requestId"] = request_id()
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions=extensions,
    )


class CodedErrors(SchemaExtension):
    """Gives each error its code; an unexpected one shows neither its message nor its trace."""

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is not None and result.errors:
            result.errors = [coded(error) for error in result.errors]
