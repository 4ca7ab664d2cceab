"""The GraphQL context of each HTTP request and WebSocket connection, read from the ASGI scope."""

from __future__ import annotations

from starlette.types import Scope
from starlette.websockets import WebSocket

from api.auth.principal import Principal
from api.auth.throttle import SignInThrottle
from api.events import EventBus
from api.graphql.context import Context
from api.services.access_policy import PolicyCache
from api.settings import Settings


def client_address(scope: Scope) -> str | None:
    """The client's address (a trusted proxy's X-Forwarded-For, as uvicorn applied it)."""
    client = scope.get("client")
    return str(client[0]) if client else None


def authorization_header(headers: dict[bytes, bytes]) -> str | None:
    value = headers.get(b"authorization")
    return value.decode("latin-1") if value is not None else None


class ContextFactory:
    def __init__(
        self,
        settings: Settings,
        events: EventBus,
        throttle: SignInThrottle | None = None,
        policies: PolicyCache | None = None,
    ) -> None:
        self.settings = settings
        self.events = events
        self.throttle = throttle
        self.policies = policies

    def for_http(self, scope: Scope, principal: Principal | None) -> Context:
        """An HTTP request's: its principal was read from the Authorization header already."""
        return Context(
            settings=self.settings,
            principal=principal,
            events=self.events,
            throttle=self.throttle,
            policies=self.policies,
            client_address=client_address(scope),
        )

    def for_websocket(self, scope: Scope, websocket: WebSocket) -> Context:
        """A connection's, shared by its operations: the principal comes at connection_init."""
        return Context(
            settings=self.settings,
            principal=None,
            events=self.events,
            throttle=self.throttle,
            policies=self.policies,
            client_address=client_address(scope),
            upgrade_authorization=authorization_header(dict(scope["headers"])),
            websocket=websocket,
        )
