"""How a gateway's report is written, on either database (the SQL is api/services/login_sql.py).

The decision and the move of the last-login columns are one UPDATE, under the account row's lock;
the event is one INSERT, or the report is counted on the event it repeats (the same login first
reported less than the coalescing window before it); an allowed report with a session id also
opens (or refreshes) that session. On PostgreSQL all of it, allowed or refused, is a single
statement: one round trip, nothing read first. SQLite runs the same parts as statements of their
own in one short transaction, which holds the database's write lock from its first statement.
A batch is api/services/login_batches.py: one statement on PostgreSQL, these reports on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from api.db import gateway_connection, is_sqlite
from api.internals.tortoise_private import columns, from_row
from api.models import PROTOCOL_BITS, Account, LoginRefusal, MailProtocol, ProtocolSession
from api.services.connected import is_open
from api.services.event_payloads import AccountColumns
from api.services.login_sql import (
    PG_REPORT,
    PG_SESSION_REPORT,
    SESSION_COLUMNS,
    SQLITE_ALLOWED,
    SQLITE_BUMP,
    SQLITE_INSERT_EVENT,
    SQLITE_RECENT,
    SQLITE_SESSION,
)


@dataclass(frozen=True, slots=True)
class Report:
    username: str
    domain: str
    protocol: MailProtocol
    occurred_at: datetime
    client_address: str | None
    client_name: str | None = None
    session_id: str | None = None
    # Whether the domain's client access policy lets this client in (api/services/
    # access_policy.py: the process decides it, the statement applies it).
    client_ok: bool = True


@dataclass(frozen=True, slots=True)
class Gateway:
    """The gateway reporting: its token's id, which holds the sessions it opens, and name."""

    id: int
    name: str


@dataclass(frozen=True, slots=True)
class Logged:
    """The login event a report was counted on, as the report left it."""

    id: int
    count: int
    occurred_at: datetime
    last_occurred_at: datetime


@dataclass(frozen=True, slots=True)
class Recorded:
    """What one report did: the account after it, its event, and the session it touched."""

    account: AccountColumns
    event: Logged
    allowed: bool
    # The account's open sessions before the report.
    open_before: int
    # The session opened or refreshed (allowed reports with a session id only).
    session: ProtocolSession | None
    # That session id's row as it was before, if the gateway had reported it already.
    previous: ProtocolSession | None
    # Why it was refused; None when allowed.
    refusal: LoginRefusal | None = None

    @property
    def started(self) -> bool:
        """Whether the report opened a session (rather than refreshed an open one)."""
        previous = self.previous
        return self.session is not None and not (
            previous is not None and previous.account_id == self.account.id and is_open(previous)
        )

    @property
    def open_after(self) -> int:
        return self.open_before + (1 if self.started else 0)

    @property
    def replaced(self) -> ProtocolSession | None:
        """The session this one took the place of: the same id, open or expired unannounced,
        that is now another session."""
        previous = self.previous
        if self.started and previous is not None and previous.end_reason is None:
            return previous
        return None


async def write_report(
    report: Report, gateway: Gateway | None, ttl: timedelta, coalesce: timedelta
) -> Recorded | None:
    """What the report did, or None for no such account. A report repeating an event first
    reported less than `coalesce` before it is counted on that event."""
    now = datetime.now(UTC)
    since = report.occurred_at - coalesce  # with 0, the window is empty
    conn = gateway_connection()
    if is_sqlite(conn):
        async with in_transaction("default") as tx:
            return await _sqlite_report(tx, report, gateway, now, since, ttl)
    return await _pg_report(conn, report, gateway, now, since, ttl)


async def _pg_report(
    conn: BaseDBAsyncClient,
    report: Report,
    gateway: Gateway | None,
    now: datetime,
    since: datetime,
    ttl: timedelta,
) -> Recorded | None:
    """PostgreSQL's one statement, its answer read back into what the report did."""
    values: list[object] = [
        report.domain,
        report.username,
        report.occurred_at,
        report.protocol.value,
        report.client_address,
        report.client_name,
        now,
        since,
        report.client_ok,
    ]
    statement = PG_REPORT
    if gateway is not None and report.session_id is not None:
        statement = PG_SESSION_REPORT
        values += [gateway.id, report.session_id, now + ttl]
    rows = await conn.execute_query_dict(statement, values)
    if not rows:
        return None
    row = rows[0]
    known = columns(Account)
    extra = {key: row.pop(key) for key in list(row) if key not in known}
    account = from_row(Account, row)
    before = {column: extra.get(f"previous_{column}") for column in SESSION_COLUMNS}
    return Recorded(
        account=account,
        event=Logged(
            id=int(extra["event_id"]),
            count=int(extra["event_count"]),
            occurred_at=extra["event_first"],
            last_occurred_at=extra["event_last"],
        ),
        allowed=bool(extra["event_allowed"]),
        refusal=_refusal(extra["event_refusal"]),
        open_before=int(extra["open_before"]),
        session=_opened(report, account, gateway, extra, now, ttl),
        previous=(from_row(ProtocolSession, before) if before["id"] is not None else None),
    )


async def _sqlite_report(
    tx: BaseDBAsyncClient,
    report: Report,
    gateway: Gateway | None,
    now: datetime,
    since: datetime,
    ttl: timedelta,
) -> Recorded | None:
    """SQLite's form of the statement, part by part, inside the report's transaction."""
    values = [
        report.domain,
        report.username,
        report.occurred_at,
        report.protocol.value,
        now,
        report.client_ok,
    ]
    rows = await tx.execute_query_dict(SQLITE_ALLOWED, values)
    open_before = 0
    refusal: LoginRefusal | None = None
    if rows:
        open_before = int(rows[0].pop("open_before"))
        account, allowed = from_row(Account, rows[0]), True
    else:
        found = (
            await Account.filter(domain__name=report.domain, username=report.username)
            .using_db(tx)
            .first()
        )
        if found is None:
            return None
        account, allowed, refusal = found, False, refusal_of(found, report)
        if refusal is not LoginRefusal.MAPI_EWS_DISABLED:  # then it has no open session
            open_before = await _open_count(tx, found.id, now)
    event = await _sqlite_log(tx, report, account, refusal, since)
    previous = session = None
    if allowed and gateway is not None and report.session_id is not None:
        previous = (
            await ProtocolSession.filter(gateway_id=gateway.id, session_id=report.session_id)
            .using_db(tx)
            .first()
        )
        session = await _sqlite_session(tx, report, account, gateway, now, ttl)
    return Recorded(account, event, allowed, open_before, session, previous, refusal)


def refusal_of(account: Account, report: Report) -> LoginRefusal | None:
    """Why the report is refused (the first reason that applies), None if it is not: the same
    rule as the statements' (login_sql._REFUSAL)."""
    if not account.mapi_ews_enabled:
        return LoginRefusal.MAPI_EWS_DISABLED
    if not account.mapi_ews_protocols & PROTOCOL_BITS[report.protocol]:
        return LoginRefusal.PROTOCOL_NOT_ALLOWED
    if not report.client_ok:
        return LoginRefusal.CLIENT_NOT_ALLOWED
    return None


def _refusal(value: str | None) -> LoginRefusal | None:
    return LoginRefusal(value) if value is not None else None


async def _open_count(tx: BaseDBAsyncClient, account_id: int, now: datetime) -> int:
    return await (
        ProtocolSession.filter(account_id=account_id, end_reason=None, expires_at__gt=now)
        .using_db(tx)
        .count()
    )


async def _sqlite_log(
    tx: BaseDBAsyncClient,
    report: Report,
    account: Account,
    refusal: LoginRefusal | None,
    since: datetime,
) -> Logged:
    """The event: counted on the event it repeats, or a new one (the transaction holds the
    database's write lock, so no other report races for it)."""
    allowed = refusal is None
    login = [account.id, report.protocol.value, report.client_address, report.client_name]
    why = refusal.value if refusal is not None else None
    recent = await tx.execute_query_dict(
        SQLITE_RECENT, [*login, allowed, since, report.occurred_at, why]
    )
    if recent:
        first = recent[0]
        bumped = await tx.execute_query_dict(SQLITE_BUMP, [first["id"], report.occurred_at])
        return Logged(
            int(first["id"]),
            int(bumped[0]["count"]),
            _time(first["occurred_at"]),
            _time(bumped[0]["last_occurred_at"]),
        )
    inserted = await tx.execute_query_dict(
        SQLITE_INSERT_EVENT,
        [
            account.domain_id,
            account.id,
            report.username,
            *login[1:2],
            report.occurred_at,
            *login[2:],
            allowed,
            why,
            report.occurred_at,
        ],
    )
    return Logged(int(inserted[0]["id"]), 1, report.occurred_at, report.occurred_at)


async def _sqlite_session(
    tx: BaseDBAsyncClient,
    report: Report,
    account: Account,
    gateway: Gateway,
    now: datetime,
    ttl: timedelta,
) -> ProtocolSession:
    """The session opened or refreshed, by the same upsert as PostgreSQL's."""
    rows = await tx.execute_query_dict(
        SQLITE_SESSION,
        [
            gateway.id,
            report.session_id,
            account.domain_id,
            account.id,
            account.username,
            report.protocol.value,
            report.client_address,
            report.client_name,
            report.occurred_at,
            now,
            now + ttl,
        ],
    )
    return _session(report, account, gateway, int(rows[0]["id"]), rows[0]["started_at"], now, ttl)


def _time(value: datetime | str) -> datetime:
    """A time as a raw row gives it (SQLite: ISO text), aware, in UTC."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _opened(
    report: Report,
    account: Account,
    gateway: Gateway | None,
    row: dict[str, Any],
    now: datetime,
    ttl: timedelta,
) -> ProtocolSession | None:
    """The session PostgreSQL's statement opened or refreshed, as a row (nothing read)."""
    if row.get("opened_id") is None or gateway is None:
        return None
    opened = int(row["opened_id"])
    return _session(report, account, gateway, opened, row["opened_started_at"], now, ttl)


def _session(
    report: Report,
    account: Account,
    gateway: Gateway,
    id: int,
    started_at: datetime | str,
    now: datetime,
    ttl: timedelta,
) -> ProtocolSession:
    """The session an upsert left: the report's, since `started_at`."""
    return ProtocolSession(
        id=id,
        gateway_id=gateway.id,
        session_id=report.session_id,
        domain_id=account.domain_id,
        account_id=account.id,
        username=account.username,
        protocol=report.protocol,
        client_address=report.client_address,
        client_name=report.client_name,
        started_at=_time(started_at),
        last_seen_at=now,
        expires_at=now + ttl,
    )
