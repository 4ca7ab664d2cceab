"""Accounts and domains gone from the mail server: removed here, seats freed at once.

A removal is one transaction under the domain's lock, whatever its size, in a constant number
of statements: the day's use (the seats freed), the domain's count, the removed accounts' open
sessions told to end (ACCOUNT_REMOVED, as a disable's are: the rows stay for the gateway's
backlog and endNow), one audit entry per account, then the accounts' rows. Their refresh tokens
go with them (no refresh, no sign-in), so a removed administrator's connections close at their
next check, and every process refuses their access tokens from then on (Topic.PRINCIPALS);
their login events stay, with no account, until retention. Once committed, a
removed account that held a seat is announced as disabled (the account as it was), with the
usage and the sessions' commands.

A removed domain keeps its row (`removed_at`): the monthly report bills it for every month it
existed in, and its audit stays. Creating the domain again brings the row back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from api.errors import UserError, UserErrorCode, UserErrors
from api.events import EVERY_DOMAIN, Event, EventBus, Topic
from api.models import (
    Account,
    AuditAction,
    ClientAccessPolicy,
    Domain,
    ProtocolSession,
    SessionEndReason,
)
from api.services import audit, domains, protocol_sessions, usage, validation
from api.services.domains import Usage
from api.services.event_payloads import (
    AccessPolicyChanged,
    AccountSnapshot,
    MapiEwsChanged,
    PrincipalsChanged,
)
from api.services.mapi_ews import named_accounts, parse_usernames
from api.services.provisioning import find_domain
from api.services.tenancy import Tenant

_REASON = SessionEndReason.ACCOUNT_REMOVED


@dataclass(frozen=True, slots=True)
class Removed:
    """What a removal did."""

    removed: int
    seats_freed: int
    sessions_ending: int
    usage: Usage


async def remove_accounts(
    *, events: EventBus, actor: str, domain: str, usernames: Sequence[str], max_batch: int
) -> Removed:
    """Remove every named account of the domain, or none (UserErrors: NOT_FOUND at each name
    that is not an account)."""
    now = datetime.now(UTC)
    async with in_transaction("default") as conn:
        row = await find_domain(conn, domain)
        parsed = parse_usernames(usernames, domain=row.name, max_batch=max_batch)
        names = list(dict.fromkeys(parsed))
        found = await named_accounts(conn, Tenant(row.id, row.name), parsed)
        accounts = [found[name] for name in names]
        ending = await remove_in(conn, row, accounts, actor=actor, at=now)
    used = Usage(
        domain=row.name, enabled=row.mapi_ews_enabled_count, limit=row.max_mapi_ews_accounts
    )
    seats = [a for a in accounts if a.mapi_ews_enabled]
    await announce(events, row, seats, used, ending, actor=actor, at=now)
    return Removed(len(accounts), len(seats), len(ending), used)


async def remove_domain(*, events: EventBus, actor: str, name: str, confirm: str) -> Removed:
    """Remove the domain and every account of it, in one transaction; `confirm` repeats the
    name (UserErrors at input.confirm otherwise, nothing removed)."""
    try:
        normal = validation.domain_name(name)
    except ValueError as error:
        raise UserErrors(
            [UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", "name"))]
        ) from None
    if confirm.strip().lower().rstrip(".") != normal:
        raise UserErrors(
            [
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    f"Type the domain's name, {normal}, to confirm its removal.",
                    ("input", "confirm"),
                )
            ]
        )
    now = datetime.now(UTC)
    async with in_transaction("default") as conn:
        try:
            row = await find_domain(conn, normal)
        except UserErrors as missing:
            raise UserErrors(
                [UserError(e.code, e.message, ("input", "name")) for e in missing.errors]
            ) from None
        accounts = await Account.filter(domain_id=row.id).using_db(conn)
        ending = await remove_in(conn, row, accounts, actor=actor, at=now)
        await Domain.filter(id=row.id).using_db(conn).update(removed_at=now)
        # A domain created again under this name starts with the default policy.
        await ClientAccessPolicy.filter(domain_id=row.id).using_db(conn).delete()
        await audit.record(
            conn=conn,
            actor=actor,
            action=AuditAction.DOMAIN_REMOVED,
            domain_id=row.id,
            targets=[row.name],
            at=now,
        )
    used = Usage(domain=row.name, enabled=0, limit=row.max_mapi_ews_accounts)
    seats = [a for a in accounts if a.mapi_ews_enabled]
    await announce(events, row, seats, used, ending, actor=actor, at=now)
    await events.publish(
        [
            Event(Topic.ACCESS_POLICY, 0, AccessPolicyChanged(row.id, row.name)),
            # The consoles drop the domain; `announce` told them already if seats were freed.
            *([] if seats else [Event(Topic.USAGE, EVERY_DOMAIN, used)]),
        ]
    )
    return Removed(len(accounts), len(seats), len(ending), used)


async def remove_in(
    conn: BaseDBAsyncClient,
    domain: Domain,
    accounts: Sequence[Account],
    *,
    actor: str,
    at: datetime,
) -> list[ProtocolSession]:
    """Inside the caller's transaction, under the domain's lock: the seats freed, the sessions
    told to end (returned, to announce once committed), the audit, the rows."""
    if not accounts:
        return []
    seats = sum(1 for a in accounts if a.mapi_ews_enabled)
    if seats:
        before = domain.mapi_ews_enabled_count
        await usage.record(
            conn,
            domain_id=domain.id,
            before=before,
            after=before - seats,
            allowance=domain.max_mapi_ews_accounts,
            at=at,
        )
        await domains.count_enabled(conn, domain.id, -seats)
        domain.mapi_ews_enabled_count = before - seats
    ids = [a.id for a in accounts]
    ending = await protocol_sessions.mark_ending(conn, account_ids=ids, reason=_REASON, at=at)
    await audit.record(
        conn=conn,
        actor=actor,
        action=AuditAction.ACCOUNT_REMOVED,
        domain_id=domain.id,
        targets=[f"{a.username}@{domain.name}" for a in accounts],
        at=at,
    )
    await Account.filter(id__in=ids).using_db(conn).delete()
    return ending


async def announce(
    events: EventBus,
    domain: Domain,
    seats: Sequence[Account],
    used: Usage,
    ending: Sequence[ProtocolSession],
    *,
    actor: str,
    at: datetime,
) -> None:
    """Once committed: each removed seat as a disable (the account as it was, so open
    dashboards drop its row), the usage, the sessions' commands and changes, and to every
    process that the domain's signed-in accounts must be checked again (a removed
    administrator's access tokens are refused from then on)."""
    changes = [
        Event(
            Topic.ACCOUNT_CHANGES,
            domain.id,
            MapiEwsChanged(
                enabled=False,
                account=AccountSnapshot.of(account, domain.name, active_sessions=0),
                actor=actor,
                occurred_at=at,
                usage=used,
            ),
        )
        for account in seats
    ]
    usage_event = domains.usage_events(domain.id, used) if seats else []
    signed_in = [Event(Topic.PRINCIPALS, 0, PrincipalsChanged(domain.id))]
    await events.publish(
        changes
        + usage_event
        + await protocol_sessions.ending_events(ending, reason=_REASON, at=at)
        + signed_in
    )
