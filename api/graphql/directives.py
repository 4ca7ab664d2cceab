"""@auth(requires:, permission:): printed in the schema and enforced by the same declaration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import strawberry
from strawberry.extensions import FieldExtension
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema_directive import Location

from api.auth.principal import Permission, Principal, Role
from api.errors import BadUserInput, Forbidden, Unauthenticated, UserError, UserErrorCode
from api.graphql.context import Info, path_key
from api.services import tenancy

# The principal's enums are GraphQL enums too: strawberry.enum registers the class itself.
strawberry.enum(Role, name="Role", description="Who is acting.")
strawberry.enum(
    Permission,
    name="Permission",
    description="A right that a system administrator grants to the administrators of one domain.",
)

DomainOf = Callable[[dict[str, Any]], str | None]


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="auth",
    description=(
        "Access rule of a field, enforced before its resolver runs, for queries, mutations and "
        "subscriptions alike. A failed rule is a GraphQL error with extensions.code "
        "UNAUTHENTICATED (no or bad credentials) or FORBIDDEN (signed in, not allowed)."
    ),
)
class AuthDirective:
    requires: Role
    permission: Permission | None = strawberry.UNSET


def domain_argument(kwargs: dict[str, Any]) -> str | None:
    """The domain a field names: its `domain` argument, or its input's `domain` field."""
    if "domain" in kwargs:
        return kwargs["domain"]  # type: ignore[no-any-return]
    payload = kwargs.get("input")
    domain = getattr(payload, "domain", None)
    return domain if isinstance(domain, str) else None


class Auth(BasePermission):
    """The permission behind @auth. For DOMAIN_ADMIN fields it also applies the domain rule
    (api.services.tenancy) and records the resulting tenant for the resolver."""

    def __init__(
        self,
        requires: Role,
        permission: Permission | None = None,
        *,
        domain_of: DomainOf = domain_argument,
        unknown_domain_ok: bool = False,
        domain_input: tuple[str, ...] | None = None,
        per_object: bool = False,
    ) -> None:
        self.requires = requires
        self.per_object = per_object
        self.permission = permission
        self.domain_of = domain_of
        self.unknown_domain_ok = unknown_domain_ok
        self.domain_input = domain_input
        self._directive = AuthDirective(
            requires=requires, permission=permission if permission else strawberry.UNSET
        )

    @property
    def schema_directive(self) -> object:
        return self._directive

    async def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        principal: Principal | None = info.context.principal
        if principal is None:
            raise Unauthenticated("Sign in first: this field needs a bearer token.")
        if not principal.satisfies(self.requires):
            raise Forbidden(f"This field is for the {self.requires.value} role.")
        if self.requires is not Role.DOMAIN_ADMIN or self.per_object:
            return True  # per_object: the resolver applies the domain rule to each object
        requested = self.domain_of(kwargs)
        try:
            tenant = await tenancy.resolve_tenant(principal, requested)
        except BadUserInput as problem:
            if self.domain_input is None:
                raise
            return self._refuse_input(
                info, UserErrorCode.INVALID_INPUT, problem.message, self.domain_input
            )
        if tenant is None and not self.unknown_domain_ok:
            message = f"No domain {requested}."  # resolve_tenant accepted it as a domain name
            if self.domain_input is None:
                raise BadUserInput(message)
            return self._refuse_input(info, UserErrorCode.NOT_FOUND, message, self.domain_input)
        if (
            tenant is not None
            and self.permission is not None
            and self.permission not in await tenancy.permissions(principal, tenant.domain_id)
        ):
            raise Forbidden(
                f"A system administrator has not granted {self.permission.value} to the "
                f"administrators of {tenant.domain}."
            )
        info.context.tenants[path_key(info)] = tenant
        return True

    def _refuse_input(
        self, info: Info, code: UserErrorCode, message: str, field: tuple[str, ...]
    ) -> bool:
        """A mutation names its domain in its input: a domain that is missing, malformed or
        unknown is the input's fault, so the mutation answers with a userError (nothing runs)."""
        info.context.tenants[path_key(info)] = UserError(code, message, field)
        return True


def auth(
    requires: Role,
    permission: Permission | None = None,
    *,
    domain_of: DomainOf = domain_argument,
    unknown_domain_ok: bool = False,
    domain_input: tuple[str, ...] | None = None,
    per_object: bool = False,
) -> list[FieldExtension]:
    """Field extensions for `@auth(requires:, permission:)`.

    `domain_of` finds the domain a call names; `domain_input` is its path in a mutation's input,
    where a bad domain becomes a userError; `unknown_domain_ok` lets a query answer null;
    `per_object`: the field names no domain, and its resolver applies the domain rule to each
    object it returns (node, nodes).
    """
    rule = Auth(
        requires,
        permission,
        domain_of=domain_of,
        unknown_domain_ok=unknown_domain_ok,
        domain_input=domain_input,
        per_object=per_object,
    )
    return [PermissionExtension(permissions=[rule])]
