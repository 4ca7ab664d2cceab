"""Idle MAPI/EWS seats: found, and taken back by an administrator or by the domain's policy.

An account is idle for N days when MAPI/EWS is enabled for it and its last allowed login is at
least N days old, or it never logged in and was enabled at least N days ago. One that never
logged in and has no enable time (imported, say) is not idle: nothing says how long it has had
the seat.
Reclaiming disables exactly the accounts the idle list holds at that moment, as one change under
the domain's lock, like a disable: audited per account, published, their sessions told to end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from api.errors import BadUserInput, UserError, UserErrorCode, UserErrors
from api.events import EventBus
from api.models import Account, Domain
from api.services import connected, domains, mapi_ews, validation
from api.services.domains import Usage
from api.services.tenancy import Tenant

# Who the audit log names for the daily policy.
POLICY_ACTOR = "policy:idle-reclaim"


def idle_accounts(domain_id: int, days: int, *, now: datetime) -> QuerySet[Account]:
    """The domain's enabled accounts idle at least `days` days at `now`: the last allowed login,
    or the enable time of one that never logged in, at least that old (NULL for both is never
    idle). Read through AccountRecency's two indexes (migration 0011), one for each half, so it
    reads the idle rows only."""
    cutoff = now - timedelta(days=days)
    logged_in = Q(recency__last_login__lte=cutoff)
    never = Q(recency__last_login__isnull=True, recency__mapi_ews_enabled_at__lte=cutoff)
    return Account.filter(recency__domain_id=domain_id, recency__mapi_ews_enabled=True).filter(
        logged_in | never
    )


def idle_argument(value: int | None) -> int | None:
    """A list's `idleForDays`, checked; a bad one is BAD_USER_INPUT (lists have no userErrors)."""
    if value is None:
        return None
    try:
        return validation.idle_days(value)
    except ValueError as error:
        raise BadUserInput(str(error)) from None


@dataclass(frozen=True, slots=True)
class Reclaimed:
    """What a reclaim did, or with `dry_run` would do."""

    accounts: list[Account]
    open_sessions: dict[int, int]
    usage: Usage
    sessions_ending: int
    dry_run: bool


def _idle(domain_id: int, days: int, now: datetime, conn: BaseDBAsyncClient) -> QuerySet[Account]:
    return idle_accounts(domain_id, days, now=now).using_db(conn)


async def reclaim_idle(
    *,
    events: EventBus,
    actor: str,
    tenant: Tenant,
    idle_for_days: int,
    dry_run: bool,
    now: datetime | None = None,
) -> Reclaimed:
    """Disable MAPI/EWS for every account of the domain idle at least `idle_for_days` days."""
    try:
        days = validation.idle_days(idle_for_days)
    except ValueError as error:
        raise UserErrors(
            [UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", "idleForDays"))]
        ) from None
    at = now or datetime.now(UTC)
    async with in_transaction("default") as conn:
        # A dry run reads what a reclaim would take, without the lock a change needs.
        if dry_run:
            domain = await Domain.filter(id=tenant.domain_id).using_db(conn).get()
        else:
            domain = await domains.lock_domain(conn, tenant.domain_id)
        idle = list(await _idle(domain.id, days, at, conn).order_by("username", "id"))
        in_use = domain.mapi_ews_enabled_count
        ending = []
        if not dry_run:
            ending = await mapi_ews.write_change(
                conn, domain, idle, enabled=False, enabled_before=in_use, actor=actor, at=at
            )
    after = in_use if dry_run else in_use - len(idle)
    usage = Usage(domain=domain.name, enabled=after, limit=domain.max_mapi_ews_accounts)
    if not dry_run:
        await mapi_ews.announce_change(events, domain, idle, usage, ending, actor=actor, at=at)
    return Reclaimed(
        accounts=idle,
        open_sessions=await connected.open_counts(a.id for a in idle) if dry_run else {},
        usage=usage,
        sessions_ending=len(ending),
        dry_run=dry_run,
    )


async def reclaim_by_policy(
    *, events: EventBus, now: datetime | None = None
) -> list[tuple[Domain, Reclaimed]]:
    """Every domain with an idle policy (mapi_ews_idle_reclaim_days), by name: its idle accounts
    reclaimed with the actor POLICY_ACTOR. A second run finds nothing left to take."""
    results = []
    for domain in await Domain.filter(
        mapi_ews_idle_reclaim_days__isnull=False, removed_at=None
    ).order_by("name"):
        days = domain.mapi_ews_idle_reclaim_days
        if days is None:  # the policy was removed meanwhile
            continue
        reclaimed = await reclaim_idle(
            events=events,
            actor=POLICY_ACTOR,
            tenant=Tenant(domain_id=domain.id, domain=domain.name),
            idle_for_days=days,
            dry_run=False,
            now=now,
        )
        results.append((domain, reclaimed))
    return results
