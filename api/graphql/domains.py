"""Domains: reading them, their MAPI/EWS usage, and the system administrator's mutations."""

from __future__ import annotations

from typing import Any

import strawberry

from api.auth.principal import Role
from api.graphql.client_access import ClientAccessPolicy, policy_of
from api.graphql.context import Info, optional_tenant_of, tenant_of
from api.graphql.directives import auth
from api.graphql.mutations import mutation
from api.graphql.types import (
    Connection,
    MapiEwsUsage,
    Node,
    UserError,
    connection_of,
    global_id,
    usage_of,
)
from api.models import Domain as DomainRow
from api.services import client_access, domains
from api.services.paging import PageRequest


@strawberry.type
class Domain(Node):
    name: str
    mapi_ews_account_management: bool = strawberry.field(
        description="Whether the domain's administrators may enable and disable MAPI/EWS "
        "(the MANAGE_MAPI_EWS permission)."
    )
    max_mapi_ews_accounts: int | None = strawberry.field(
        description="Most accounts that may have MAPI/EWS at once; null means no limit."
    )
    mapi_ews_idle_reclaim_days: int | None = strawberry.field(
        description="Accounts with no allowed login for this many days lose MAPI/EWS by "
        "themselves (the daily `reclaim-idle` command, audited); null: never."
    )
    pk: strawberry.Private[int]
    # Read with the row, which keeps it: a list of domains costs no COUNT at all.
    enabled: strawberry.Private[int]

    @strawberry.field(description="Which clients may use MAPI/EWS in this domain.")
    async def client_access_policy(self) -> ClientAccessPolicy:
        return policy_of(await client_access.get_policy(self.pk), self.name)

    @strawberry.field
    def mapi_ews_usage(self) -> MapiEwsUsage:
        return usage_of(
            domains.Usage(domain=self.name, enabled=self.enabled, limit=self.max_mapi_ews_accounts)
        )


def domain_of(row: DomainRow) -> Domain:
    return Domain(
        id=global_id("Domain", row.id),
        name=row.name,
        mapi_ews_account_management=row.mapi_ews_account_management,
        max_mapi_ews_accounts=row.max_mapi_ews_accounts,
        mapi_ews_idle_reclaim_days=row.mapi_ews_idle_reclaim_days,
        pk=row.id,
        enabled=row.mapi_ews_enabled_count,
    )


@strawberry.input
class CreateDomainInput:
    name: str
    max_mapi_ews_accounts: int | None = strawberry.field(
        default=None, description="Null or absent: no limit."
    )
    mapi_ews_account_management: bool = True
    mapi_ews_idle_reclaim_days: int | None = strawberry.field(
        default=None, description="Null or absent: no idle reclaim."
    )


@strawberry.input
class UpdateDomainInput:
    name: str
    max_mapi_ews_accounts: int | None = strawberry.field(
        default=strawberry.UNSET, description="Absent: unchanged. Null: no limit."
    )
    mapi_ews_account_management: bool | None = strawberry.field(
        default=strawberry.UNSET, description="Absent: unchanged."
    )
    mapi_ews_idle_reclaim_days: int | None = strawberry.field(
        default=strawberry.UNSET, description="Absent: unchanged. Null: no idle reclaim."
    )


@strawberry.type
class DomainPayload:
    domain: Domain | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _name_argument(kwargs: dict[str, Any]) -> str | None:
    name = kwargs.get("name")
    return name if isinstance(name, str) else None


@strawberry.type
class DomainQuery:
    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN, domain_of=_name_argument, unknown_domain_ok=True)
    )
    async def domain(self, info: Info, name: str) -> Domain | None:
        tenant = optional_tenant_of(info)
        row = await domains.get_domain(domain_id=tenant.domain_id) if tenant else None
        return domain_of(row) if row else None

    @strawberry.field(extensions=auth(Role.DOMAIN_ADMIN))
    async def mapi_ews_usage(self, info: Info, domain: str | None = None) -> MapiEwsUsage:
        tenant = tenant_of(info)
        return usage_of(await domains.usage_of(domain_id=tenant.domain_id))

    @strawberry.field(extensions=auth(Role.SYSTEM_ADMIN))
    async def domains(
        self,
        info: Info,
        search: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[Domain]:
        settings = info.context.settings
        page = await domains.list_domains(
            search=search,
            request=PageRequest(first=first, after=after),
            default_size=settings.page_size_default,
            max_size=settings.page_size_max,
        )
        return connection_of(page, (domain_of(r) for r in page.items), page.count)


@strawberry.type
class DomainMutation:
    @mutation(extensions=auth(Role.SYSTEM_ADMIN))
    async def create_domain(self, info: Info, input: CreateDomainInput) -> DomainPayload:
        row = await domains.create_domain(
            actor=info.context.require_principal().username,
            name=input.name,
            max_mapi_ews_accounts=input.max_mapi_ews_accounts,
            mapi_ews_account_management=input.mapi_ews_account_management,
            mapi_ews_idle_reclaim_days=input.mapi_ews_idle_reclaim_days,
            events=info.context.events,
        )
        return DomainPayload(domain=domain_of(row), user_errors=[])

    @mutation(extensions=auth(Role.SYSTEM_ADMIN))
    async def update_domain(self, info: Info, input: UpdateDomainInput) -> DomainPayload:
        limit = input.max_mapi_ews_accounts
        management = input.mapi_ews_account_management
        idle = input.mapi_ews_idle_reclaim_days
        row = await domains.update_domain(
            actor=info.context.require_principal().username,
            name=input.name,
            max_mapi_ews_accounts=domains.KEEP if limit is strawberry.UNSET else limit,
            mapi_ews_account_management=(
                domains.KEEP if management is strawberry.UNSET or management is None else management
            ),
            mapi_ews_idle_reclaim_days=domains.KEEP if idle is strawberry.UNSET else idle,
            events=info.context.events,
        )
        return DomainPayload(domain=domain_of(row), user_errors=[])
