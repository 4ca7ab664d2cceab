"""Errors that services raise and the GraphQL layer turns into coded responses."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class ErrorCode(StrEnum):
    """extensions.code of a GraphQL error outside userErrors."""

    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    # An id that names nothing the caller may see: missing and another domain's answer alike.
    NOT_FOUND = "NOT_FOUND"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
    # A subscription whose client read too slowly: it missed events, resubscribe and reload.
    FELL_BEHIND = "FELL_BEHIND"
    # The database cannot be reached right now (a restart, a failover): nothing was changed by
    # the failed part; try again shortly.
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    # The caller's budget of query cost holds less than the operation costs: nothing ran; try
    # again after extensions.retryAfter seconds (README, Operations).
    THROTTLED = "THROTTLED"


class UserErrorCode(StrEnum):
    INVALID_INPUT = "INVALID_INPUT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    LIMIT_EXCEEDED = "LIMIT_EXCEEDED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    # Too many failed sign-ins for the name or the client address: wait, then try again.
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"


class AppError(Exception):
    """An expected failure that reaches the client with its message and code."""

    code: ErrorCode = ErrorCode.BAD_USER_INPUT

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Unauthenticated(AppError):
    code = ErrorCode.UNAUTHENTICATED


class Forbidden(AppError):
    code = ErrorCode.FORBIDDEN


class BadUserInput(AppError):
    code = ErrorCode.BAD_USER_INPUT


class NotFound(AppError):
    code = ErrorCode.NOT_FOUND


class FellBehind(AppError):
    code = ErrorCode.FELL_BEHIND


@dataclass(frozen=True, slots=True)
class UserError:
    """One problem with a mutation's input; `field` is the path to the input item at fault."""

    code: UserErrorCode
    message: str
    field: tuple[str, ...] | None = None


@dataclass
class UserErrors(Exception):
    """Raised by a service to refuse a mutation: nothing was changed."""

    errors: Sequence[UserError] = field(default_factory=list)

    def __str__(self) -> str:
        return "; ".join(error.message for error in self.errors)
