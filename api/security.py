"""Response headers that every answer carries, and CORS for the configured origins only."""

from __future__ import annotations

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from api.settings import Settings

_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
# GraphQL answers carry tokens (login) and per-user data: no cache may keep them.
_NO_STORE = (b"cache-control", b"no-store")
# Browsers honour it over HTTPS only; production runs behind TLS (README, Operations).
_HSTS = (b"strict-transport-security", b"max-age=31536000")


def response_headers(*, production: bool) -> dict[bool, list[tuple[bytes, bytes]]]:
    """The headers every response gets, by whether it is a /graphql answer. Computed once and
    added by the request-id middleware's one `send` wrapper (a middleware of their own was a
    measurable share of a gateway report's time)."""
    common = [*_ALWAYS, *([_HSTS] if production else [])]
    return {False: common, True: [*common, _NO_STORE]}


def cors(settings: Settings) -> list[Middleware]:
    """Cross-origin requests only from MAPI_EWS_ALLOWED_ORIGINS (none by default: the dashboard
    at / is same-origin). The same list decides which origins may open a WebSocket."""
    if not settings.allowed_origins:
        return []
    return [
        Middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id"],
            max_age=600,
        )
    ]
