"""The typed context: one per HTTP request, one per WebSocket connection."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from graphql import FieldNode, FragmentSpreadNode, InlineFragmentNode
from starlette.websockets import WebSocket
from strawberry.types import Info as StrawberryInfo

from api.auth.principal import Principal
from api.auth.throttle import SignInThrottle
from api.errors import Unauthenticated, UserError, UserErrors
from api.events import EventBus
from api.internals.strawberry_private import resolve_info
from api.services.access_policy import PolicyCache
from api.services.tenancy import Tenant
from api.settings import Settings

PathKey = tuple[str | int, ...]


@dataclass
class OperationState:
    """What one operation works out as it runs. A WebSocket connection shares its context
    between the operations it carries, each in its own task; this state is per task, so two
    subscriptions on one connection never see each other's domain."""

    # The domain each @auth field acts in, by response path, set before its resolver runs.
    # A mutation whose input names a bad domain gets the UserError to answer with instead.
    tenants: dict[PathKey, Tenant | UserError | None] = field(default_factory=dict)


_operation: ContextVar[OperationState | None] = ContextVar("operation_state", default=None)


def begin_operation() -> None:
    """Called by the pipeline as each operation starts."""
    _operation.set(OperationState())


def operation_state() -> OperationState:
    state = _operation.get()
    if state is None:
        state = OperationState()
        _operation.set(state)
    return state


@dataclass
class Context:
    settings: Settings
    principal: Principal | None
    events: EventBus
    throttle: SignInThrottle | None = None
    # Each domain's client access policy, as this process decides reports by it.
    policies: PolicyCache | None = None
    # The client's IP address (the proxy's, unless uvicorn trusts its X-Forwarded-For).
    client_address: str | None = None
    # WebSocket only: the upgrade request's Authorization header and the connection_init payload.
    upgrade_authorization: str | None = None
    connection_params: dict[str, Any] | None = None
    # WebSocket only: the connection.
    websocket: WebSocket | None = None

    @property
    def tenants(self) -> dict[PathKey, Tenant | UserError | None]:
        return operation_state().tenants

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated("Sign in first.")
        return self.principal


Info = StrawberryInfo[Context, Any]


def path_key(info: Info) -> PathKey:
    return tuple(info.path.as_list())


def tenant_of(info: Info) -> Tenant:
    """The domain @auth resolved for this field (its resolver runs only after that).

    Raises UserErrors when the field's input named a bad domain: mutations answer with it."""
    tenant = info.context.tenants.get(path_key(info))
    if isinstance(tenant, UserError):
        raise UserErrors([tenant])
    if tenant is None:
        raise LookupError(f"no domain was resolved for {info.path.as_list()}")
    return tenant


def optional_tenant_of(info: Info) -> Tenant | None:
    tenant = info.context.tenants.get(path_key(info))
    return tenant if isinstance(tenant, Tenant) else None


def asks_for(info: Info, name: str) -> bool:
    """Whether the field's selection names a field `name` at any depth, fragments included: so
    a list reads what only some of its fields need (sessions per account) only when asked."""
    raw = resolve_info(info)
    seen: set[str] = set()
    waiting = [node.selection_set for node in raw.field_nodes if node.selection_set]
    while waiting:
        for selection in waiting.pop().selections:
            if isinstance(selection, FieldNode):
                if selection.name.value == name:
                    return True
                if selection.selection_set:
                    waiting.append(selection.selection_set)
            elif isinstance(selection, InlineFragmentNode):
                waiting.append(selection.selection_set)
            elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
                seen.add(selection.name.value)
                fragment = raw.fragments.get(selection.name.value)
                if fragment is not None:
                    waiting.append(fragment.selection_set)
    return False
