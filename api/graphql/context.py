"""The typed per-request (or per-connection) context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strawberry.dataloader import DataLoader
from strawberry.types import Info as StrawberryInfo

from api.auth.principal import Principal
from api.errors import Unauthenticated, UserError, UserErrors
from api.services import domains
from api.services.tenancy import Scope
from api.settings import Settings


@dataclass
class Context:
    settings: Settings
    principal: Principal | None
    # The domain each @auth field acts in, by response path, set before its resolver runs.
    # A mutation whose input names a bad domain gets the UserError to answer with instead.
    scopes: dict[tuple[str | int, ...], Scope | UserError | None] = field(default_factory=dict)
    # MAPI/EWS accounts per domain id, batched: a list of domains costs one COUNT, not one each.
    enabled_counts: DataLoader[int, int] = field(
        default_factory=lambda: DataLoader(
            load_fn=lambda ids: domains.enabled_counts(domain_ids=ids), max_batch_size=500
        )
    )

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise Unauthenticated("Sign in first.")
        return self.principal


Info = StrawberryInfo[Context, Any]


def path_key(info: Info) -> tuple[str | int, ...]:
    return tuple(info.path.as_list())


def scope_of(info: Info) -> Scope:
    """The domain @auth resolved for this field (its resolver runs only after that).

    Raises UserErrors when the field's input named a bad domain: mutations answer with it."""
    scope = info.context.scopes.get(path_key(info))
    if isinstance(scope, UserError):
        raise UserErrors([scope])
    if scope is None:
        raise LookupError(f"no domain was resolved for {info.path.as_list()}")
    return scope


def optional_scope_of(info: Info) -> Scope | None:
    scope = info.context.scopes.get(path_key(info))
    return scope if isinstance(scope, Scope) else None
