"""Who may connect, and with what: changing an account's protocols and a domain's client access
policy, and the clients a domain's logins used.

Each change is one transaction under the domain's lock (the lock of every change of its seats):
the change, its audit, and the open sessions it refuses marked as told to end (ACCESS_POLICY);
once committed, the gateways are told (api/services/protocol_sessions.py) and, for a policy,
every process forgets the domain's decider (Topic.ACCESS_POLICY). How reports are decided is
api/services/access_policy.py and the report statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from api.db import connection, is_sqlite
from api.errors import BadUserInput, UserError, UserErrorCode, UserErrors
from api.events import Event, EventBus, Topic
from api.models import (
    Account,
    AuditAction,
    ClientAccessPolicy,
    MailProtocol,
    ProtocolSession,
    SessionEndReason,
)
from api.services import (
    audit,
    client_rollup,
    connected,
    domains,
    mapi_ews,
    protocol_sessions,
)
from api.services.access_policy import Decider, Policy, PolicyCache, check_policy
from api.services.client_rollup import MAX_DAYS
from api.services.event_payloads import AccessPolicyChanged
from api.services.tenancy import Tenant

MAX_CLIENTS = 500
_REASON = SessionEndReason.ACCESS_POLICY


@dataclass(frozen=True, slots=True)
class ProtocolsSet:
    accounts: list[Account]
    open_sessions: dict[int, int]
    sessions_ending: int


async def set_protocols(
    *,
    events: EventBus,
    actor: str,
    tenant: Tenant,
    usernames: Sequence[str],
    protocols: Sequence[MailProtocol],
    max_batch: int,
) -> ProtocolsSet:
    """The protocols of every named account (each must have MAPI/EWS), or of none."""
    names = mapi_ews.parse_usernames(usernames, domain=tenant.domain, max_batch=max_batch)
    mask = mapi_ews.parse_protocols(protocols, ("input", "protocols"))
    wanted = list(dict.fromkeys(names))
    now = datetime.now(UTC)
    async with in_transaction("default") as conn:
        domain = await domains.lock_domain(conn, tenant.domain_id)
        found = await mapi_ews.named_accounts(conn, tenant, names)
        off = [
            UserError(
                UserErrorCode.INVALID_INPUT,
                f"MAPI/EWS is not enabled for {name}@{tenant.domain}: enable it with these "
                "protocols instead.",
                ("input", "usernames", str(index)),
            )
            for index, name in enumerate(names)
            if not found[name].mapi_ews_enabled
        ]
        if off:
            raise UserErrors(off)
        changed, ending = await mapi_ews.write_protocols(
            conn, domain, [found[name] for name in wanted], mask, actor=actor, at=now
        )
    await mapi_ews.announce_protocols(events, domain, changed, ending, actor=actor, at=now)
    accounts = [found[name] for name in wanted]
    return ProtocolsSet(
        accounts=accounts,
        open_sessions=await connected.open_counts([a.id for a in accounts]),
        sessions_ending=len(ending),
    )


async def get_policy(domain_id: int) -> Policy:
    return Policy.of(await ClientAccessPolicy.get_or_none(domain_id=domain_id))


@dataclass(frozen=True, slots=True)
class ClientUsage:
    """A client seen in a domain's logins over some days."""

    client_name: str | None
    protocol: MailProtocol
    accounts: int
    logins: int
    refused_logins: int
    last_seen_at: datetime
    allowed_now: bool


async def clients(tenant: Tenant, days: int, decider: Decider) -> list[ClientUsage]:
    """The clients of the domain's logins in the last `days` days (1 to MAX_DAYS: the whole UTC
    days before today, and today so far), most accounts first, at most MAX_CLIENTS; whether
    `decider` lets each in."""
    if not 1 <= days <= MAX_DAYS:
        raise BadUserInput(f"days is 1 to {MAX_DAYS}; {days} was given.")
    first_day = datetime.now(UTC).date() - timedelta(days=days)
    conn = connection()
    if is_sqlite(conn):
        since = datetime.combine(first_day, time(), tzinfo=UTC)
        rows = await conn.execute_query_dict(_CLIENTS, [tenant.domain_id, since, MAX_CLIENTS])
    else:
        rows = await client_rollup.clients(tenant.domain_id, first_day, MAX_CLIENTS)
    found: list[ClientUsage] = []
    for row in rows:
        protocol = MailProtocol(row["protocol"])
        last = row["last_seen"]
        if isinstance(last, str):
            last = datetime.fromisoformat(last)
        found.append(
            ClientUsage(
                client_name=row["client_name"],
                protocol=protocol,
                accounts=int(row["accounts"]),
                logins=int(row["logins"]),
                refused_logins=int(row["refused"]),
                last_seen_at=last if last.tzinfo else last.replace(tzinfo=UTC),
                allowed_now=decider.allows(protocol, row["client_name"]),
            )
        )
    return found


# SQLite's answer, straight from login_event (PostgreSQL's: api/services/client_rollup.py, the
# same rows, which its tests check against this query). Distinct accounts by username: a
# removed account's events keep it, not its id.
CLIENTS_FROM_EVENTS = (
    "SELECT client_name, protocol, count(DISTINCT username) AS accounts, sum(count) AS logins, "
    "sum(CASE WHEN allowed THEN 0 ELSE count END) AS refused, "
    "max(COALESCE(last_occurred_at, occurred_at)) AS last_seen FROM login_event "
    "WHERE domain_id = {p}1 AND occurred_at >= {p}2 GROUP BY client_name, protocol "
    "ORDER BY accounts DESC, logins DESC, client_name LIMIT {p}3"
)
_CLIENTS = CLIENTS_FROM_EVENTS.format(p="?")


@dataclass(frozen=True, slots=True)
class PolicySet:
    policy: Policy
    sessions_ending: int
    refused_clients: list[ClientUsage]


async def set_policy(
    *,
    events: EventBus,
    policies: PolicyCache | None,
    actor: str,
    tenant: Tenant,
    policy: Policy,
    dry_run: bool,
) -> PolicySet:
    """Replace the domain's policy (checked: UserErrors and nothing changed otherwise) and end
    the open sessions it refuses; with `dry_run`, only say what it would refuse."""
    checked = check_policy(policy.mode, policy.rules, policy.allow_unnamed_clients)
    now = datetime.now(UTC)
    decider = Decider(checked)
    async with in_transaction("default") as conn:
        domain = await domains.lock_domain(conn, tenant.domain_id)
        open_now = await protocol_sessions.open_clients(conn, domain.id, now)
        refused = [client for client in open_now if not decider.allows(*client)]
        ending: list[ProtocolSession] = []
        if dry_run:
            sessions = sum(open_now[client] for client in refused)
        else:
            await _store(conn, domain.id, checked, actor=actor, at=now)
            ending = await protocol_sessions.mark_ending_clients(
                conn, domain_id=domain.id, clients=refused, reason=_REASON, at=now
            )
            sessions = len(ending)
            await audit.record(
                conn=conn,
                actor=actor,
                action=AuditAction.CLIENT_ACCESS_POLICY_CHANGED,
                domain_id=domain.id,
                targets=[domain.name],
                at=now,
            )
    if not dry_run:
        checked = Policy(checked.mode, checked.rules, checked.allow_unnamed_clients, now, actor)
        if policies is not None:
            policies.forget(domain.name)
        await events.publish(
            [Event(Topic.ACCESS_POLICY, 0, AccessPolicyChanged(domain.id, domain.name))]
            + await protocol_sessions.ending_events(ending, reason=_REASON, at=now)
        )
    seen = await clients(tenant, 30, decider)
    return PolicySet(
        policy=checked,
        sessions_ending=sessions,
        refused_clients=[client for client in seen if not client.allowed_now],
    )


async def _store(
    conn: BaseDBAsyncClient, domain_id: int, policy: Policy, *, actor: str, at: datetime
) -> None:
    values = {
        "mode": policy.mode,
        "rules": [rule.as_json() for rule in policy.rules],
        "allow_unnamed_clients": policy.allow_unnamed_clients,
        "updated_at": at,
        "updated_by": actor,
    }
    row = await ClientAccessPolicy.filter(domain_id=domain_id).using_db(conn).first()
    if row is None:
        await ClientAccessPolicy.create(domain_id=domain_id, using_db=conn, **values)
    else:
        await ClientAccessPolicy.filter(domain_id=domain_id).using_db(conn).update(**values)
