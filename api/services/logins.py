"""Logins reported by the protocol gateways: the decision, the last-login columns, the history.

`record_login` sits on the gateways' hot path (every MAPI and EWS login asks it). The decision
and the move of the last-login columns are one UPDATE, under the row's lock; the event is one
INSERT. On PostgreSQL the whole report, allowed or refused, is a single statement: one round
trip, nothing read first. SQLite runs the same UPDATE and INSERT in one short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from api.db import connection, is_sqlite
from api.errors import BadUserInput, UserError, UserErrorCode, UserErrors
from api.events import Event, EventBus, Topic
from api.models import Account, LoginEvent, MailProtocol
from api.services import validation
from api.services.live import AccountSnapshot, LoginReported
from api.services.paging import PageRequest, SortSpec, Window, window
from api.services.tenancy import Tenant

# A gateway's clock may run a little ahead of ours; a login further in the future than this is
# refused, as it would pin lastLogin ahead of every real login until then.
CLOCK_SKEW = timedelta(minutes=5)
_NEWEST_FIRST = SortSpec(column="occurred_at", descending=True, is_datetime=True)
_PRUNE_BATCH = 5000

# Forward only: each column takes the report's time only when that is newer. Every CASE reads
# the row as it was before this UPDATE, and PostgreSQL re-evaluates it against the latest
# version when reports race for the row, so a late or racing report never moves a time back.
_SET_FORWARD = """
    last_login = CASE WHEN last_login IS NULL OR last_login < {t} THEN {t} ELSE last_login END,
    last_login_protocol = CASE WHEN last_login IS NULL OR last_login < {t}
        THEN {p} ELSE last_login_protocol END,
    last_mapi_login = CASE WHEN {p} = 'MAPI' AND (last_mapi_login IS NULL OR last_mapi_login < {t})
        THEN {t} ELSE last_mapi_login END,
    last_ews_login = CASE WHEN {p} = 'EWS' AND (last_ews_login IS NULL OR last_ews_login < {t})
        THEN {t} ELSE last_ews_login END
"""
_WHERE_ENABLED = (
    "domain_id = (SELECT id FROM domain WHERE name = {d}) AND username = {u} AND mapi_ews_enabled"
)
# Built from the constants above only; every value is a bound parameter.
_UPDATE = "UPDATE account SET " + _SET_FORWARD + " WHERE " + _WHERE_ENABLED + " RETURNING *"  # noqa: S608
_PG_PARAMS = {"d": "$1", "u": "$2", "t": "$3::timestamptz", "p": "$4::varchar", "c": "$5"}
_SQLITE_PARAMS = {"d": "?1", "u": "?2", "t": "?3", "p": "?4", "c": "?5"}
# PostgreSQL: the whole report in one statement (atomic on its own, one round trip). `changed`
# is the allowed case; otherwise `target` reads the account as it is, and the event is stored
# either way, with `allowed` saying which. No row at all: no such account.
_PG_REPORT = (
    "WITH changed AS (" + _UPDATE.format(**_PG_PARAMS) + "), "  # noqa: S608
    "target AS (SELECT * FROM changed UNION ALL "
    "SELECT * FROM account WHERE "
    + _WHERE_ENABLED.removesuffix(" AND mapi_ews_enabled")
    + " AND NOT EXISTS (SELECT 1 FROM changed)), "
    "logged AS (INSERT INTO login_event "
    "(domain_id, account_id, username, protocol, occurred_at, client_address, allowed) "
    "SELECT domain_id, id, username, {p}, {t}, {c}, EXISTS (SELECT 1 FROM changed) FROM target "
    "RETURNING id, allowed) "
    "SELECT target.*, logged.id AS event_id, logged.allowed AS event_allowed "
    "FROM target CROSS JOIN logged"
).format(**_PG_PARAMS)
_SQLITE_ALLOWED = _UPDATE.format(**_SQLITE_PARAMS)


@dataclass(frozen=True, slots=True)
class Report:
    username: str
    domain: str
    protocol: MailProtocol
    occurred_at: datetime
    client_address: str | None


def parse_report(
    *,
    email_address: str,
    protocol: MailProtocol,
    client_address: str | None,
    occurred_at: datetime | None,
    now: datetime,
) -> Report:
    problems: list[UserError] = []
    username = domain = ""
    try:
        username, domain = validation.email_address(email_address)
    except ValueError as error:
        problems.append(
            UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", "emailAddress"))
        )
    address: str | None = None
    try:
        address = validation.client_address(client_address)
    except ValueError as error:
        problems.append(
            UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", "clientAddress"))
        )
    when = now
    if occurred_at is not None:
        if occurred_at.tzinfo is None:
            problems.append(
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    "occurredAt needs an offset, e.g. 2026-11-24T09:30:00Z.",
                    ("input", "occurredAt"),
                )
            )
        elif occurred_at > now + CLOCK_SKEW:
            problems.append(
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    "occurredAt is in the future: check the gateway's clock.",
                    ("input", "occurredAt"),
                )
            )
        else:
            when = occurred_at.astimezone(UTC)
    if problems:
        raise UserErrors(problems)
    return Report(username, domain, protocol, when, address)


async def _record(report: Report) -> tuple[Account, int, bool] | None:
    """(the account after the report, the event's id, allowed), or None for no such account."""
    values = [
        report.domain,
        report.username,
        report.occurred_at,
        report.protocol.value,
        report.client_address,
    ]
    conn = connection()
    if not is_sqlite(conn):
        rows = await conn.execute_query_dict(_PG_REPORT, values)
        if not rows:
            return None
        row = rows[0]
        event_id, allowed = row.pop("event_id"), row.pop("event_allowed")
        # The row as the database returned it, converted by Tortoise's own per-dialect rules.
        return Account._init_from_db(**row), int(event_id), bool(allowed)
    async with in_transaction() as tx:
        rows = await tx.execute_query_dict(_SQLITE_ALLOWED, values[:4])
        if rows:
            account, allowed = Account._init_from_db(**rows[0]), True
        else:
            found = (
                await Account.filter(domain__name=report.domain, username=report.username)
                .using_db(tx)
                .first()
            )
            if found is None:
                return None
            account, allowed = found, False
        event = await LoginEvent.create(
            domain_id=account.domain_id,
            account_id=account.id,
            username=report.username,
            protocol=report.protocol,
            occurred_at=report.occurred_at,
            client_address=report.client_address,
            allowed=allowed,
            using_db=tx,
        )
    return account, event.id, allowed


async def record_login(
    *,
    events: EventBus,
    email_address: str,
    protocol: MailProtocol,
    client_address: str | None = None,
    occurred_at: datetime | None = None,
) -> bool:
    """Whether the login may go through: exactly when MAPI/EWS is enabled for the account.

    Either way the report is stored as a login event and published once committed. An unknown
    address is NOT_FOUND and stores nothing: there is no account or domain to file it under."""
    report = parse_report(
        email_address=email_address,
        protocol=protocol,
        client_address=client_address,
        occurred_at=occurred_at,
        now=datetime.now(UTC),
    )
    recorded = await _record(report)
    if recorded is None:
        raise UserErrors(
            [
                UserError(
                    UserErrorCode.NOT_FOUND,
                    f"No account {report.username}@{report.domain}.",
                    ("input", "emailAddress"),
                )
            ]
        )
    account, event_id, allowed = recorded
    await events.publish([_login_event(event_id, report, account, allowed=allowed)])
    return allowed


def _login_event(event_id: int, report: Report, account: Account, *, allowed: bool) -> Event:
    reported = LoginReported(
        id=event_id,
        domain=report.domain,
        username=report.username,
        protocol=report.protocol,
        occurred_at=report.occurred_at,
        client_address=report.client_address,
        allowed=allowed,
        account=AccountSnapshot.of(account, report.domain),
    )
    return Event(Topic.LOGINS, account.domain_id, reported)


def _history(tenant: Tenant, username: str | None) -> QuerySet[LoginEvent]:
    queryset = LoginEvent.filter(domain_id=tenant.domain_id)
    if username is None:
        return queryset
    try:
        return queryset.filter(username=validation.username_in_domain(username, tenant.domain))
    except ValueError as error:
        raise BadUserInput(str(error)) from None


async def login_events(
    *,
    tenant: Tenant,
    username: str | None,
    request: PageRequest,
    default_size: int,
    max_size: int,
) -> tuple[Window[LoginEvent], dict[int, Account]]:
    """A page of the domain's login events, newest first, and the accounts they name as they
    stand now: two reads, whatever the page size. The total is counted apart, only when asked
    for (count_login_events): a busy domain's history is long."""
    page = await window(
        _history(tenant, username),
        spec=_NEWEST_FIRST,
        request=request,
        default_size=default_size,
        max_size=max_size,
    )
    ids = {row.account_id for row in page.items if row.account_id is not None}
    accounts = {a.id: a for a in await Account.filter(id__in=ids)} if ids else {}
    return page, accounts


async def count_login_events(*, tenant: Tenant, username: str | None) -> int:
    return await _history(tenant, username).count()


async def prune_login_events(*, older_than: timedelta, now: datetime | None = None) -> int:
    """Delete login events older than `older_than`, in batches that keep each lock short."""
    cutoff = (now or datetime.now(UTC)) - older_than
    deleted = 0
    while True:
        ids = (
            await LoginEvent.filter(occurred_at__lt=cutoff)
            .limit(_PRUNE_BATCH)
            .values_list("id", flat=True)
        )
        if not ids:
            return deleted
        deleted += await LoginEvent.filter(id__in=list(ids)).delete()
