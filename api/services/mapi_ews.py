"""Enabling and disabling MAPI/EWS: all-or-nothing, idempotent, within the domain's allowance.

A disable (and an administrator's disconnect) also ends the accounts' open sessions: they are
marked in the same transaction, and their gateways told once it has committed
(api/services/protocol_sessions.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from api.errors import UserError, UserErrorCode, UserErrors
from api.events import Event, EventBus, Topic
from api.models import (
    PROTOCOL_BITS,
    Account,
    AuditAction,
    Domain,
    MailProtocol,
    ProtocolSession,
    SessionEndReason,
    mask_of,
)
from api.services import audit, connected, domains, protocol_sessions, usage, validation
from api.services.domains import Usage
from api.services.event_payloads import AccountSnapshot, MapiEwsChanged
from api.services.tenancy import Tenant

_FIELD = ("input", "usernames")


def parse_usernames(usernames: Sequence[str], *, domain: str, max_batch: int) -> list[str]:
    if not usernames:
        raise UserErrors(
            [UserError(UserErrorCode.INVALID_INPUT, "Name at least one username.", _FIELD)]
        )
    if len(usernames) > max_batch:
        raise UserErrors(
            [
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    f"At most {max_batch} usernames at once; {len(usernames)} were given.",
                    _FIELD,
                )
            ]
        )
    parsed: list[str] = []
    problems: list[UserError] = []
    for index, raw in enumerate(usernames):
        try:
            parsed.append(validation.username_in_domain(raw, domain))
        except ValueError as error:
            problems.append(
                UserError(UserErrorCode.INVALID_INPUT, str(error), (*_FIELD, str(index)))
            )
    if problems:
        raise UserErrors(problems)
    return parsed


async def named_accounts(
    conn: BaseDBAsyncClient, tenant: Tenant, names: Sequence[str]
) -> dict[str, Account]:
    """The named accounts of the domain by username; UserErrors (NOT_FOUND, pointing at each
    missing item) unless every one exists."""
    found = {
        account.username: account
        for account in await Account.filter(
            domain_id=tenant.domain_id, username__in=set(names)
        ).using_db(conn)
    }
    missing = [
        UserError(
            UserErrorCode.NOT_FOUND, f"No account {name}@{tenant.domain}.", (*_FIELD, str(index))
        )
        for index, name in enumerate(names)
        if name not in found
    ]
    if missing:
        raise UserErrors(missing)
    return found


@dataclass(frozen=True, slots=True)
class MapiEwsSet:
    """What an enable or disable did."""

    # The named accounts as they now stand, in the order named, and their open sessions.
    accounts: list[Account]
    open_sessions: dict[int, int]
    usage: Usage
    # Sessions of the disabled accounts that their gateways were told to end.
    sessions_ending: int
    # The named accounts that already stood so (seat, and protocols for an enable): nothing
    # was written or announced for them.
    unchanged: list[str]


async def set_mapi_ews(
    *,
    events: EventBus,
    actor: str,
    tenant: Tenant,
    usernames: Sequence[str],
    enabled: bool,
    max_batch: int,
    protocols: Sequence[MailProtocol] | None = None,
) -> MapiEwsSet:
    """Enable (or disable) MAPI/EWS for every named account, or for none. An enable gives the
    accounts `protocols` (None: both), those already enabled too when it names them.

    Once committed, publishes one account change per account that changed and, for a disable,
    tells the gateways to end the accounts' open sessions.
    """
    names = parse_usernames(usernames, domain=tenant.domain, max_batch=max_batch)
    mask = parse_protocols(protocols, ("input", "protocols")) if protocols is not None else None
    wanted = list(dict.fromkeys(names))
    now = datetime.now(UTC)
    async with in_transaction("default") as conn:
        domain = await domains.lock_domain(conn, tenant.domain_id)
        found = await named_accounts(conn, tenant, names)
        changing = [found[name] for name in wanted if found[name].mapi_ews_enabled is not enabled]
        in_use = domain.mapi_ews_enabled_count
        limit = domain.max_mapi_ews_accounts
        after = in_use + len(changing) if enabled else in_use - len(changing)
        if enabled and changing and limit is not None and after > limit:
            raise UserErrors(
                [
                    UserError(
                        UserErrorCode.LIMIT_EXCEEDED,
                        f"{domain.name} may have {limit} MAPI/EWS accounts; {in_use} are in use, "
                        f"so {len(changing)} more would exceed the limit.",
                        _FIELD,
                    )
                ]
            )
        ending = await write_change(
            conn,
            domain,
            changing,
            enabled=enabled,
            enabled_before=in_use,
            actor=actor,
            at=now,
            protocols=mask_of(None) if mask is None else mask,
        )
        narrowed: list[Account] = []
        cut: list[ProtocolSession] = []
        if enabled and mask is not None:
            fresh = {a.id for a in changing}
            narrowed, cut = await write_protocols(
                conn,
                domain,
                [found[n] for n in wanted if found[n].id not in fresh],
                mask,
                actor=actor,
                at=now,
            )
    used = Usage(domain=domain.name, enabled=after, limit=limit)
    await announce_change(events, domain, changing, used, ending, actor=actor, at=now)
    await announce_protocols(events, domain, narrowed, cut, actor=actor, at=now)
    named = [found[name] for name in wanted]
    # Only an account enabled before this call can have open sessions: a disabled one's were
    # just told to end, and one enabled now has not logged in since.
    unchanged = {a.id for a in named} - {a.id for a in changing}
    untouched = unchanged - {a.id for a in narrowed}
    return MapiEwsSet(
        accounts=named,
        open_sessions=await connected.open_counts(unchanged) if enabled else {},
        usage=used,
        sessions_ending=len(ending),
        unchanged=[a.username for a in named if a.id in untouched],
    )


async def write_change(
    conn: BaseDBAsyncClient,
    domain: Domain,
    changing: Sequence[Account],
    *,
    enabled: bool,
    enabled_before: int,
    actor: str,
    at: datetime,
    protocols: int | None = None,
) -> list[ProtocolSession]:
    """Inside the change's transaction, under the domain's lock: the accounts' MAPI/EWS, one
    audit entry each, the day's use (from `enabled_before` accounts) and, for a disable, their
    open sessions told to end (returned, to announce once committed). An enable gives them
    `protocols` (None: both)."""
    if not changing:
        return []
    after = enabled_before + len(changing) if enabled else enabled_before - len(changing)
    await usage.record(
        conn,
        domain_id=domain.id,
        before=enabled_before,
        after=after,
        allowance=domain.max_mapi_ews_accounts,
        at=at,
    )
    await (
        Account.filter(id__in=[a.id for a in changing])
        .using_db(conn)
        .update(
            mapi_ews_enabled=enabled,
            mapi_ews_enabled_at=at if enabled else None,
            **(
                {"mapi_ews_protocols": mask_of(None) if protocols is None else protocols}
                if enabled
                else {}
            ),
        )
    )
    await domains.count_enabled(conn, domain.id, after - enabled_before)
    domain.mapi_ews_enabled_count = after
    for account in changing:
        account.mapi_ews_enabled = enabled
        account.mapi_ews_enabled_at = at if enabled else None
        if enabled:
            account.mapi_ews_protocols = mask_of(None) if protocols is None else protocols
    await audit.record(
        conn=conn,
        actor=actor,
        action=AuditAction.MAPI_EWS_ENABLED if enabled else AuditAction.MAPI_EWS_DISABLED,
        domain_id=domain.id,
        targets=[f"{a.username}@{domain.name}" for a in changing],
        at=at,
    )
    if enabled:
        return []
    return await protocol_sessions.mark_ending(
        conn, account_ids=[a.id for a in changing], reason=SessionEndReason.MAPI_EWS_DISABLED, at=at
    )


async def announce_change(
    events: EventBus,
    domain: Domain,
    changing: Sequence[Account],
    used: Usage,
    ending: Sequence[ProtocolSession],
    *,
    actor: str,
    at: datetime,
) -> None:
    """Once committed: one account change per account, the usage, the sessions' commands."""
    if not changing:
        return
    # An account that changed has no open session now: a disabled one's were just told to end,
    # and one that was disabled until now could open none (a refused login opens nothing).
    await events.publish(
        [_change(account, domain.name, used, actor=actor, at=at) for account in changing]
        + domains.usage_events(domain.id, used)
        + await protocol_sessions.ending_events(
            ending, reason=SessionEndReason.MAPI_EWS_DISABLED, at=at
        )
    )


async def disconnect(
    *, events: EventBus, actor: str, tenant: Tenant, usernames: Sequence[str], max_batch: int
) -> int:
    """Tell the gateways to end every open session of the named accounts (all of them exist, or
    nothing happens); audited per account. Returns how many sessions were told to end: none is
    no error. MAPI/EWS stays as it is: the clients may sign in again."""
    names = parse_usernames(usernames, domain=tenant.domain, max_batch=max_batch)
    wanted = list(dict.fromkeys(names))
    now = datetime.now(UTC)
    async with in_transaction("default") as conn:
        found = await named_accounts(conn, tenant, names)
        ending = await protocol_sessions.mark_ending(
            conn,
            account_ids=[found[name].id for name in wanted],
            reason=SessionEndReason.DISCONNECTED_BY_ADMIN,
            at=now,
        )
        await audit.record(
            conn=conn,
            actor=actor,
            action=AuditAction.MAPI_EWS_DISCONNECTED,
            domain_id=tenant.domain_id,
            targets=[f"{name}@{tenant.domain}" for name in wanted],
            at=now,
        )
    await events.publish(
        await protocol_sessions.ending_events(
            ending, reason=SessionEndReason.DISCONNECTED_BY_ADMIN, at=now
        )
    )
    return len(ending)


def parse_protocols(protocols: Sequence[MailProtocol], field: tuple[str, ...]) -> int:
    """The protocols' mask; UserErrors for none."""
    if not protocols:
        raise UserErrors(
            [
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    "Name MAPI, EWS or both; to take both away, disable MAPI/EWS instead.",
                    field,
                )
            ]
        )
    return mask_of(list(protocols))


async def write_protocols(
    conn: BaseDBAsyncClient,
    domain: Domain,
    accounts: Sequence[Account],
    mask: int,
    *,
    actor: str,
    at: datetime,
) -> tuple[list[Account], list[ProtocolSession]]:
    """Inside the change's transaction, under the domain's lock: the enabled accounts' protocols
    set to `mask` (those it changes, audited one entry each), and their open sessions over a
    protocol taken away told to end. Returns the accounts changed and the sessions ending."""
    changing = [a for a in accounts if a.mapi_ews_enabled and a.mapi_ews_protocols != mask]
    if not changing:
        return [], []
    await (
        Account.filter(id__in=[a.id for a in changing])
        .using_db(conn)
        .update(mapi_ews_protocols=mask)
    )
    ending: list[ProtocolSession] = []
    for protocol, bit in PROTOCOL_BITS.items():
        losing = [a.id for a in changing if a.mapi_ews_protocols & bit and not mask & bit]
        ending += await protocol_sessions.mark_ending(
            conn,
            account_ids=losing,
            protocol=protocol,
            reason=SessionEndReason.ACCESS_POLICY,
            at=at,
        )
    for account in changing:
        account.mapi_ews_protocols = mask
    await audit.record(
        conn=conn,
        actor=actor,
        action=AuditAction.MAPI_EWS_PROTOCOLS_CHANGED,
        domain_id=domain.id,
        targets=[f"{a.username}@{domain.name}" for a in changing],
        at=at,
    )
    return changing, ending


async def announce_protocols(
    events: EventBus,
    domain: Domain,
    changed: Sequence[Account],
    ending: Sequence[ProtocolSession],
    *,
    actor: str,
    at: datetime,
) -> None:
    """Once committed: each account as it now stands (an ENABLED change: it still holds its
    seat), and the sessions' commands."""
    if not changed:
        return
    used = Usage(domain.name, domain.mapi_ews_enabled_count, domain.max_mapi_ews_accounts)
    counts = await connected.open_counts([a.id for a in changed])
    await events.publish(
        [
            Event(
                Topic.ACCOUNT_CHANGES,
                domain.id,
                MapiEwsChanged(
                    enabled=True,
                    account=AccountSnapshot.of(a, domain.name, active_sessions=counts.get(a.id, 0)),
                    actor=actor,
                    occurred_at=at,
                    usage=used,
                ),
            )
            for a in changed
        ]
        + await protocol_sessions.ending_events(
            ending, reason=SessionEndReason.ACCESS_POLICY, at=at
        )
    )


def _change(account: Account, domain: str, usage: Usage, *, actor: str, at: datetime) -> Event:
    change = MapiEwsChanged(
        enabled=account.mapi_ews_enabled,
        account=AccountSnapshot.of(account, domain, active_sessions=0),
        actor=actor,
        occurred_at=at,
        usage=usage,
    )
    return Event(Topic.ACCOUNT_CHANGES, account.domain_id, change)
