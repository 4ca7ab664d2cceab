"""The accounts of a domain: the MAPI/EWS tab's lists, and creating an account."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from api.auth.principal import Role
from api.graphql.context import Info, asks_for, tenant_of
from api.graphql.directives import auth
from api.graphql.mutations import mutation
from api.graphql.types import (
    Account,
    Connection,
    SortDirection,
    UserError,
    account_of,
    connection_of,
)
from api.services import accounts
from api.services.accounts import AccountRow, AccountSortField
from api.services.paging import Page, PageRequest
from api.services.tenancy import Tenant

strawberry.enum(AccountSortField, name="AccountSortField")  # the service's enum, registered


@strawberry.input
class AccountOrder:
    field: AccountSortField
    direction: SortDirection = SortDirection.ASC


@strawberry.input
class CreateAccountInput:
    email_address: str
    name: str | None = None
    password: str
    is_domain_admin: bool = False


@strawberry.type
class AccountPayload:
    account: Account | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _connection(
    page: Page[AccountRow], tenant: Tenant, sessions: dict[int, int]
) -> Connection[Account]:
    return connection_of(
        page,
        (
            account_of(row, tenant.domain, active_sessions=sessions.get(row.id, 0))
            for row in page.items
        ),
        page.count,
    )


async def _list(
    info: Info,
    *,
    enabled: bool | None,
    search: str | None,
    order_by: AccountOrder | None,
    request: PageRequest,
    idle_for_days: int | None = None,
) -> Connection[Account]:
    tenant = tenant_of(info)
    settings = info.context.settings
    order = order_by or AccountOrder(field=AccountSortField.USERNAME)
    page, sessions = await accounts.list_accounts(
        tenant=tenant,
        mapi_ews_enabled=enabled,
        search=search,
        order=accounts.sort_spec(order.field, descending=order.direction is SortDirection.DESC),
        request=request,
        default_size=settings.page_size_default,
        max_size=settings.page_size_max,
        count_sessions=asks_for(info, "activeSessionCount"),
        idle_for_days=idle_for_days,
    )
    return _connection(page, tenant, sessions)


_DOMAIN = ("input", "domain")


def _email_domain(kwargs: dict[str, Any]) -> str | None:
    payload = kwargs.get("input")
    address = getattr(payload, "email_address", "")
    _, at, domain = address.rpartition("@")
    return domain if at else None


@strawberry.type
class AccountQuery:
    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="The accounts of a domain that have MAPI/EWS enabled: the MAPI/EWS tab. "
        "`domain` defaults to the caller's own; a system administrator must name one. `search` "
        "matches username, email address and name, without case. Pages hold at most 100 items.",
    )
    async def mapi_ews_accounts(
        self,
        info: Info,
        domain: str | None = None,
        search: str | None = None,
        order_by: AccountOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        idle_for_days: Annotated[
            int | None,
            strawberry.argument(
                description="Only accounts with no allowed login for at least this many days; "
                "one that never logged in counts from when MAPI/EWS was enabled for it."
            ),
        ] = None,
    ) -> Connection[Account]:
        return await _list(
            info,
            enabled=True,
            search=search,
            order_by=order_by,
            request=PageRequest(first=first, after=after, last=last, before=before),
            idle_for_days=idle_for_days,
        )

    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="All accounts of a domain, optionally only those with (or without) MAPI/EWS: "
        "for picking whom to enable.",
    )
    async def accounts(
        self,
        info: Info,
        domain: str | None = None,
        search: str | None = None,
        mapi_ews_enabled: bool | None = None,
        order_by: AccountOrder | None = None,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> Connection[Account]:
        return await _list(
            info,
            enabled=mapi_ews_enabled,
            search=search,
            order_by=order_by,
            request=PageRequest(first=first, after=after, last=last, before=before),
        )


@strawberry.type
class AccountMutation:
    @mutation(
        extensions=auth(
            Role.DOMAIN_ADMIN, domain_of=_email_domain, domain_input=("input", "emailAddress")
        )
    )
    async def create_account(self, info: Info, input: CreateAccountInput) -> AccountPayload:
        tenant = tenant_of(info)
        row = await accounts.create_account(
            actor=info.context.require_principal().username,
            tenant=tenant,
            email_address=input.email_address,
            name=input.name,
            password=input.password,
            is_domain_admin=input.is_domain_admin,
        )
        # A new account has no session yet.
        return AccountPayload(
            account=account_of(row, tenant.domain, active_sessions=0), user_errors=[]
        )
