"""Seats: who has MAPI/EWS. Enable, disable and disconnect accounts, take idle seats back, and
follow those changes live."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import StrEnum
from typing import Any

import strawberry

from api.auth.principal import Permission, Role
from api.errors import UserErrors
from api.events import Topic
from api.graphql.context import Info, tenant_of
from api.graphql.directives import auth
from api.graphql.inputs import plain_input
from api.graphql.mutations import mutation, refused
from api.graphql.streams import follow
from api.graphql.types import (
    Account,
    MapiEwsUsage,
    UserError,
    account_of,
    usage_of,
)
from api.models import MailProtocol
from api.services import mapi_ews, reclaim
from api.services.event_payloads import MapiEwsChanged


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
    protocols: list[MailProtocol] | None = strawberry.field(
        default=None,
        description="The protocols they may use; absent: both. Accounts already enabled get "
        "these too.",
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
    unchanged: list[str] = strawberry.field(
        default_factory=list,
        description="Usernames of the named accounts that had MAPI/EWS already, with these "
        "protocols: nothing changed for them (no audit entry, no event).",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class DisableMapiEwsPayload:
    accounts: list[Account] = strawberry.field(default_factory=list)
    usage: MapiEwsUsage | None = None
    unchanged: list[str] = strawberry.field(
        default_factory=list,
        description="Usernames of the named accounts that did not have MAPI/EWS: nothing "
        "changed for them.",
    )
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


@strawberry.enum(name="MapiEwsChangeKind")
class MapiEwsChangeKind(StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


@strawberry.type(description="MAPI/EWS was enabled or disabled for an account.")
class MapiEwsAccountChange:
    kind: MapiEwsChangeKind
    account: Account
    actor: str = strawberry.field(description="Username of whoever made the change.")
    occurred_at: datetime
    usage: MapiEwsUsage
    render_memo: strawberry.Private[dict[Any, Any] | None] = None


def change_reported(change: MapiEwsChanged, memo: dict[Any, Any]) -> MapiEwsAccountChange:
    return MapiEwsAccountChange(
        kind=MapiEwsChangeKind.ENABLED if change.enabled else MapiEwsChangeKind.DISABLED,
        account=account_of(change.account, change.account.domain),
        actor=change.actor,
        occurred_at=change.occurred_at,
        usage=usage_of(change.usage),
        render_memo=memo,
    )


@plain_input
@strawberry.input
class ReclaimIdleMapiEwsInput:
    domain: str | None = None
    idle_for_days: int = strawberry.field(
        description="Disable MAPI/EWS for every account idle at least this many days (as "
        "idleForDays counts)."
    )
    dry_run: bool = strawberry.field(
        default=False, description="Only say which accounts it would disable; change nothing."
    )


@strawberry.type
class ReclaimIdleMapiEwsPayload:
    accounts: list[Account] = strawberry.field(
        default_factory=list,
        description="The accounts disabled, or with dryRun those that would be.",
    )
    usage: MapiEwsUsage | None = None
    dry_run: bool = False
    sessions_ending: int = strawberry.field(
        default=0,
        description="Open sessions of the disabled accounts that their gateways were told to end "
        "(0 on a dry run).",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


_DOMAIN = ("input", "domain")


async def _set(
    info: Info,
    usernames: list[str],
    *,
    enabled: bool,
    protocols: list[MailProtocol] | None = None,
) -> tuple[list[Account], MapiEwsUsage, int, list[str]]:
    tenant = tenant_of(info)
    done = await mapi_ews.set_mapi_ews(
        events=info.context.events,
        actor=info.context.require_principal().username,
        tenant=tenant,
        usernames=usernames,
        enabled=enabled,
        max_batch=info.context.settings.batch_size_max,
        protocols=protocols,
    )
    changed = [
        account_of(row, tenant.domain, active_sessions=done.open_sessions.get(row.id, 0))
        for row in done.accounts
    ]
    return changed, usage_of(done.usage), done.sessions_ending, done.unchanged


@strawberry.type
class SeatsMutation:
    @mutation(extensions=auth(Role.DOMAIN_ADMIN, Permission.MANAGE_MAPI_EWS, domain_input=_DOMAIN))
    async def enable_mapi_ews(self, info: Info, input: EnableMapiEwsInput) -> EnableMapiEwsPayload:
        changed, usage, _, unchanged = await _set(
            info, input.usernames, enabled=True, protocols=input.protocols
        )
        return EnableMapiEwsPayload(
            accounts=changed, usage=usage, unchanged=unchanged, user_errors=[]
        )

    @mutation(extensions=auth(Role.DOMAIN_ADMIN, Permission.MANAGE_MAPI_EWS, domain_input=_DOMAIN))
    async def disable_mapi_ews(
        self, info: Info, input: DisableMapiEwsInput
    ) -> DisableMapiEwsPayload:
        changed, usage, ending, unchanged = await _set(info, input.usernames, enabled=False)
        return DisableMapiEwsPayload(
            accounts=changed,
            usage=usage,
            sessions_ending=ending,
            unchanged=unchanged,
            user_errors=[],
        )

    @mutation(
        extensions=auth(Role.DOMAIN_ADMIN, Permission.MANAGE_MAPI_EWS, domain_input=_DOMAIN),
        description="Tell the gateways to end every open MAPI/EWS session of these accounts now "
        "(MAPI/EWS stays enabled: the clients may sign in again). All the accounts exist, or "
        "nothing is done; audited per account.",
    )
    async def disconnect_mapi_ews(
        self, info: Info, input: DisconnectMapiEwsInput
    ) -> DisconnectMapiEwsPayload:
        ending = await mapi_ews.disconnect(
            events=info.context.events,
            actor=info.context.require_principal().username,
            tenant=tenant_of(info),
            usernames=input.usernames,
            max_batch=info.context.settings.batch_size_max,
        )
        return DisconnectMapiEwsPayload(sessions_ending=ending, user_errors=[])

    @mutation(
        extensions=auth(
            Role.DOMAIN_ADMIN, Permission.MANAGE_MAPI_EWS, domain_input=("input", "domain")
        ),
        description="Disable MAPI/EWS for every account of the domain idle at least idleForDays "
        "days, as one change (audited per account, their sessions told to end); with dryRun, "
        "only list them.",
    )
    async def reclaim_idle_mapi_ews(
        self, info: Info, input: ReclaimIdleMapiEwsInput
    ) -> ReclaimIdleMapiEwsPayload:
        try:
            tenant = tenant_of(info)
            done = await reclaim.reclaim_idle(
                events=info.context.events,
                actor=info.context.require_principal().username,
                tenant=tenant,
                idle_for_days=input.idle_for_days,
                dry_run=input.dry_run,
            )
        except UserErrors as refusal:
            return refused(ReclaimIdleMapiEwsPayload, refusal, dry_run=input.dry_run)
        return ReclaimIdleMapiEwsPayload(
            accounts=[
                account_of(row, tenant.domain, active_sessions=done.open_sessions.get(row.id, 0))
                for row in done.accounts
            ],
            usage=usage_of(done.usage),
            dry_run=done.dry_run,
            sessions_ending=done.sessions_ending,
            user_errors=[],
        )


@strawberry.type
class SeatsSubscription:
    @strawberry.subscription(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="Every enable and disable in a domain, as it happens, from any server process.",
    )
    async def mapi_ews_account_changes(
        self, info: Info, domain: str | None = None
    ) -> AsyncGenerator[MapiEwsAccountChange, None]:
        changes = follow(info, Topic.ACCOUNT_CHANGES, change_reported)
        del info  # not kept while the subscription lasts (follow)
        async for change in changes:
            yield change
