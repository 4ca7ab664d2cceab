"""The MAPI/EWS tab: the account lists and the enable/disable mutations."""

from __future__ import annotations

from typing import Annotated, Any

import strawberry

from api import models
from api.auth.principal import Permission, Role
from api.errors import UserErrors
from api.graphql.context import Info, asks_for, tenant_of
from api.graphql.directives import auth
from api.graphql.inputs import plain_input
from api.graphql.types import (
    Account,
    AccountConnection,
    AccountEdge,
    MapiEwsUsage,
    SortDirection,
    UserError,
    account_of,
    page_info_of,
    refused,
    usage_of,
)
from api.services import accounts, mapi_ews
from api.services.accounts import AccountSortField
from api.services.paging import Page, PageRequest
from api.services.tenancy import Tenant

strawberry.enum(AccountSortField, name="AccountSortField")  # the service's enum, registered


@strawberry.input
class AccountOrder:
    field: AccountSortField
    direction: SortDirection = SortDirection.ASC


@plain_input
@strawberry.input
class EnableMapiEwsInput:
    domain: str | None = strawberry.field(
        default=None,
        description="Defaults to the caller's own domain; a system administrator must name one.",
    )
    usernames: list[str] = strawberry.field(
        description="Usernames (or full addresses within the domain). All are enabled, or none is."
    )


@plain_input
@strawberry.input
class DisableMapiEwsInput:
    domain: str | None = None
    usernames: list[str] = strawberry.field(
        description="Usernames (or full addresses within the domain). All are disabled, or none is."
    )


@strawberry.type
class EnableMapiEwsPayload:
    accounts: list[Account] = strawberry.field(
        default_factory=list,
        description="The named accounts as they now stand; empty when userErrors is not.",
    )
    usage: MapiEwsUsage | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DisableMapiEwsPayload:
    accounts: list[Account] = strawberry.field(default_factory=list)
    usage: MapiEwsUsage | None = None
    sessions_ending: int = strawberry.field(
        default=0,
        description="Open sessions of the disabled accounts that their gateways were told to end.",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@plain_input
@strawberry.input
class DisconnectMapiEwsInput:
    domain: str | None = None
    usernames: list[str] = strawberry.field(
        description="Usernames (or full addresses within the domain) whose open sessions should "
        "end."
    )


@strawberry.type
class DisconnectMapiEwsPayload:
    sessions_ending: int = strawberry.field(
        default=0, description="Open sessions that their gateways were told to end."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


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
    page: Page[models.Account], tenant: Tenant, sessions: dict[int, int]
) -> AccountConnection:
    return AccountConnection(
        edges=[
            AccountEdge(
                cursor=cursor,
                node=account_of(row, tenant.domain, active_sessions=sessions.get(row.id, 0)),
            )
            for cursor, row in zip(page.cursors, page.items, strict=True)
        ],
        page_info=page_info_of(page),
        count=page.count,
    )


async def _list(
    info: Info,
    *,
    enabled: bool | None,
    search: str | None,
    order_by: AccountOrder | None,
    request: PageRequest,
    idle_for_days: int | None = None,
) -> AccountConnection:
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
    ) -> AccountConnection:
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
    ) -> AccountConnection:
        return await _list(
            info,
            enabled=mapi_ews_enabled,
            search=search,
            order_by=order_by,
            request=PageRequest(first=first, after=after, last=last, before=before),
        )


async def _set(
    info: Info, usernames: list[str], *, enabled: bool
) -> tuple[list[Account], MapiEwsUsage, int]:
    tenant = tenant_of(info)
    done = await mapi_ews.set_mapi_ews(
        events=info.context.events,
        actor=info.context.require_principal().username,
        tenant=tenant,
        usernames=usernames,
        enabled=enabled,
        max_batch=info.context.settings.batch_size_max,
    )
    changed = [
        account_of(row, tenant.domain, active_sessions=done.open_sessions.get(row.id, 0))
        for row in done.accounts
    ]
    return changed, usage_of(done.usage), done.sessions_ending


@strawberry.type
class AccountMutation:
    @strawberry.mutation(
        extensions=auth(Role.DOMAIN_ADMIN, Permission.MANAGE_MAPI_EWS, domain_input=_DOMAIN)
    )
    async def enable_mapi_ews(self, info: Info, input: EnableMapiEwsInput) -> EnableMapiEwsPayload:
        try:
            changed, usage, _ = await _set(info, input.usernames, enabled=True)
        except UserErrors as refusal:
            return refused(EnableMapiEwsPayload, refusal)
        return EnableMapiEwsPayload(accounts=changed, usage=usage, user_errors=[])

    @strawberry.mutation(
        extensions=auth(Role.DOMAIN_ADMIN, Permission.MANAGE_MAPI_EWS, domain_input=_DOMAIN)
    )
    async def disable_mapi_ews(
        self, info: Info, input: DisableMapiEwsInput
    ) -> DisableMapiEwsPayload:
        try:
            changed, usage, ending = await _set(info, input.usernames, enabled=False)
        except UserErrors as refusal:
            return refused(DisableMapiEwsPayload, refusal)
        return DisableMapiEwsPayload(
            accounts=changed, usage=usage, sessions_ending=ending, user_errors=[]
        )

    @strawberry.mutation(
        extensions=auth(Role.DOMAIN_ADMIN, Permission.MANAGE_MAPI_EWS, domain_input=_DOMAIN),
        description="Tell the gateways to end every open MAPI/EWS session of these accounts now "
        "(MAPI/EWS stays enabled: the clients may sign in again). All the accounts exist, or "
        "nothing is done; audited per account.",
    )
    async def disconnect_mapi_ews(
        self, info: Info, input: DisconnectMapiEwsInput
    ) -> DisconnectMapiEwsPayload:
        try:
            ending = await mapi_ews.disconnect(
                events=info.context.events,
                actor=info.context.require_principal().username,
                tenant=tenant_of(info),
                usernames=input.usernames,
                max_batch=info.context.settings.batch_size_max,
            )
        except UserErrors as refusal:
            return refused(DisconnectMapiEwsPayload, refusal)
        return DisconnectMapiEwsPayload(sessions_ending=ending, user_errors=[])

    @strawberry.mutation(
        extensions=auth(
            Role.DOMAIN_ADMIN, domain_of=_email_domain, domain_input=("input", "emailAddress")
        )
    )
    async def create_account(self, info: Info, input: CreateAccountInput) -> AccountPayload:
        try:
            tenant = tenant_of(info)
            row = await accounts.create_account(
                actor=info.context.require_principal().username,
                tenant=tenant,
                email_address=input.email_address,
                name=input.name,
                password=input.password,
                is_domain_admin=input.is_domain_admin,
            )
        except UserErrors as refusal:
            return refused(AccountPayload, refusal)
        # A new account has no session yet.
        return AccountPayload(
            account=account_of(row, tenant.domain, active_sessions=0), user_errors=[]
        )
