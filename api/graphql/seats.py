"""Seats: idle MAPI/EWS accounts taken back by an administrator (reclaimIdleMapiEws)."""

from __future__ import annotations

import strawberry

from api.auth.principal import Permission, Role
from api.errors import UserErrors
from api.graphql.context import Info, tenant_of
from api.graphql.directives import auth
from api.graphql.inputs import plain_input
from api.graphql.types import (
    Account,
    MapiEwsUsage,
    UserError,
    account_of,
    refused,
    usage_of,
)
from api.services import reclaim


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


@strawberry.type
class SeatsMutation:
    @strawberry.mutation(
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
