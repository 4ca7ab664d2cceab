"""How a gateway's report is written: one statement on PostgreSQL, one short transaction on SQLite.

The decision and the move of the last-login columns are one UPDATE, under the account row's lock;
the event is one INSERT, or the report is counted on the event it repeats (the same login first
reported less than the coalescing window before it); an allowed report with a session id also
opens (or refreshes) that session. On PostgreSQL all of it, allowed or refused, is a single
statement: one round trip, nothing read first. SQLite runs the same UPDATE, the event's lookup
and write and the session's upsert in one short transaction, which holds the database's write
lock from its first statement.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from api.db import gateway_connection, is_sqlite
from api.internals.tortoise_private import columns, from_row
from api.models import Account, LoginEvent, MailProtocol, ProtocolSession
from api.services.connected import is_open, open_sql
from api.services.live import AccountColumns

SESSION_COLUMNS = (
    "id",
    "gateway_id",
    "session_id",
    "domain_id",
    "account_id",
    "username",
    "protocol",
    "client_address",
    "client_name",
    "started_at",
    "last_seen_at",
    "expires_at",
    "end_reason",
    "ended_at",
)

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
_PG_PARAMS = {
    "d": "$1",
    "u": "$2",
    "t": "$3::timestamptz",
    "p": "$4::varchar",
    "c": "$5::varchar",
    "n": "$6::varchar",
    "now": "$7::timestamptz",
    "since": "$8::timestamptz",
}
_PG_SESSION_PARAMS = {**_PG_PARAMS, "g": "$9::int", "s": "$10::varchar", "exp": "$11::timestamptz"}
_SQLITE_PARAMS = {"d": "?1", "u": "?2", "t": "?3", "p": "?4"}
# PostgreSQL: the whole report in one statement (atomic on its own, one round trip). `changed`
# is the allowed case; otherwise `target` reads the account as it is, and the event is stored
# either way, with `allowed` saying which. No row at all: no such account. `recent` is the event
# this report repeats (the same login first reported within the coalescing window before it):
# `bumped` counts the report on it, under its row lock, and only without one is a row inserted.
# `open_before` counts the account's open sessions before this report (for the event's account).
_EVENT_RESULT = "id, allowed, count, occurred_at, last_occurred_at"
_PG_LOGGED = (
    "WITH changed AS (" + _UPDATE + "), "  # noqa: S608
    "target AS (SELECT * FROM changed UNION ALL "
    "SELECT * FROM account WHERE "
    + _WHERE_ENABLED.removesuffix(" AND mapi_ews_enabled")
    + " AND NOT EXISTS (SELECT 1 FROM changed)), "
    "recent AS (SELECT e.id, e.occurred_at FROM login_event e, target "
    "WHERE e.account_id = target.id "
    "AND e.occurred_at > {since} AND e.occurred_at <= {t} AND e.protocol = {p} "
    "AND e.client_address IS NOT DISTINCT FROM {c} AND e.client_name IS NOT DISTINCT FROM {n} "
    "AND e.allowed = EXISTS (SELECT 1 FROM changed) ORDER BY e.occurred_at DESC LIMIT 1), "
    "bumped AS (UPDATE login_event e SET count = e.count + 1, "
    "last_occurred_at = GREATEST(COALESCE(e.last_occurred_at, e.occurred_at), {t}) "
    "FROM recent WHERE e.id = recent.id AND e.occurred_at = recent.occurred_at "
    # The window again, on the table itself: it limits the UPDATE to the window's partitions
    # (pruned when planned), instead of every day the retention keeps.
    "AND e.occurred_at > {since} AND e.occurred_at <= {t} "
    "RETURNING e.id, e.allowed, e.count, e.occurred_at, e.last_occurred_at), "
    "inserted AS (INSERT INTO login_event "
    "(domain_id, account_id, username, protocol, occurred_at, client_address, client_name, "
    "allowed, count, last_occurred_at) "
    "SELECT domain_id, id, username, {p}, {t}, {c}, {n}, EXISTS (SELECT 1 FROM changed), 1, {t} "
    "FROM target WHERE NOT EXISTS (SELECT 1 FROM bumped) RETURNING " + _EVENT_RESULT + "), "
    "logged AS (SELECT * FROM bumped UNION ALL SELECT * FROM inserted)"
)
_PG_RESULT = (
    "SELECT target.*, logged.id AS event_id, logged.allowed AS event_allowed, "  # noqa: S608
    "logged.count AS event_count, logged.occurred_at AS event_first, "
    "logged.last_occurred_at AS event_last, "
    "(SELECT count(*) FROM protocol_session o WHERE o.account_id = target.id "
    "AND " + open_sql("{now}", "o") + ") AS open_before"
)
_PG_REPORT = (_PG_LOGGED + " " + _PG_RESULT + " FROM target CROSS JOIN logged").format(**_PG_PARAMS)
# An upsert that keeps a session's start when the same account's open session is reported again.
_SAME_OPEN = "protocol_session.account_id = EXCLUDED.account_id AND " + open_sql(
    "{now}", "protocol_session"
)
# With a session id, the same statement also opens the session if the report is allowed, or
# refreshes it; `previous` is that id's row as it was (the statement's snapshot), so the caller
# can tell a new session from a refreshed one.
_PG_SESSION_REPORT = (
    _PG_LOGGED + ", "  # noqa: S608 - the constants above
    "previous AS (SELECT * FROM protocol_session WHERE gateway_id = {g} AND session_id = {s}), "
    "opened AS (INSERT INTO protocol_session (gateway_id, session_id, domain_id, account_id, "
    "username, protocol, client_address, client_name, started_at, last_seen_at, expires_at) "
    "SELECT {g}, {s}, domain_id, id, username, {p}, {c}, {n}, {t}, {now}, {exp} FROM changed "
    "ON CONFLICT (gateway_id, session_id) DO UPDATE SET "
    "started_at = CASE WHEN " + _SAME_OPEN + " THEN protocol_session.started_at "
    "ELSE EXCLUDED.started_at END, "
    "domain_id = EXCLUDED.domain_id, account_id = EXCLUDED.account_id, "
    "username = EXCLUDED.username, protocol = EXCLUDED.protocol, "
    "client_address = EXCLUDED.client_address, client_name = EXCLUDED.client_name, "
    "last_seen_at = EXCLUDED.last_seen_at, expires_at = EXCLUDED.expires_at, "
    "end_reason = NULL, ended_at = NULL "
    "RETURNING id, started_at) "
    + _PG_RESULT
    + ", opened.id AS opened_id, opened.started_at AS opened_started_at, "
    + ", ".join(f"previous.{column} AS previous_{column}" for column in SESSION_COLUMNS)
    + " FROM target CROSS JOIN logged LEFT JOIN opened ON true LEFT JOIN previous ON true"
).format(**_PG_SESSION_PARAMS)
# SQLite: the allowed case's UPDATE, counting the account's open sessions as it returns the row.
_SQLITE_ALLOWED = (
    _UPDATE.format(**_SQLITE_PARAMS)  # noqa: S608 - constants only
    + ", (SELECT count(*) FROM protocol_session o WHERE o.account_id = account.id "
    "AND " + open_sql("?5", "o") + ") AS open_before"
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
    session_id = report.session_id if gateway is not None else None
    conn = gateway_connection()
    if not is_sqlite(conn):
        values: list[object] = [
            report.domain,
            report.username,
            report.occurred_at,
            report.protocol.value,
            report.client_address,
            report.client_name,
            now,
            since,
        ]
        statement = _PG_REPORT
        if gateway is not None and session_id is not None:
            statement = _PG_SESSION_REPORT
            values += [gateway.id, session_id, now + ttl]
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
            open_before=int(extra["open_before"]),
            session=_opened(report, account, gateway, extra, now, ttl),
            previous=(from_row(ProtocolSession, before) if before["id"] is not None else None),
        )
    async with in_transaction("default") as tx:
        values = [report.domain, report.username, report.occurred_at, report.protocol.value, now]
        rows = await tx.execute_query_dict(_SQLITE_ALLOWED, values)
        # A refused login's account has MAPI/EWS off, so no open session: a disable tells every
        # open one to end, and only an allowed login opens one.
        open_before = 0
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
            account, allowed = found, False
        event = await _sqlite_log(tx, report, account, allowed, since)
        previous = session = None
        if allowed and gateway is not None and session_id is not None:
            previous = (
                await ProtocolSession.filter(gateway_id=gateway.id, session_id=session_id)
                .using_db(tx)
                .first()
            )
            session = await _sqlite_upsert(tx, report, account, gateway, previous, now, ttl)
    return Recorded(account, event, allowed, open_before, session, previous)


async def _sqlite_log(
    tx: BaseDBAsyncClient, report: Report, account: Account, allowed: bool, since: datetime
) -> Logged:
    """SQLite's form of the statement's event: counted on the event it repeats, or a new one
    (the transaction holds the database's write lock, so no other report races for it)."""
    recent = (
        await LoginEvent.filter(
            account_id=account.id,
            occurred_at__gt=since,
            occurred_at__lte=report.occurred_at,
            protocol=report.protocol,
            client_address=report.client_address,
            client_name=report.client_name,
            allowed=allowed,
        )
        .using_db(tx)
        .order_by("-occurred_at")
        .first()
    )
    if recent is not None:
        last = max(recent.last_occurred_at or recent.occurred_at, report.occurred_at)
        await (
            LoginEvent.filter(id=recent.id)
            .using_db(tx)
            .update(count=F("count") + 1, last_occurred_at=last)
        )
        return Logged(recent.id, recent.count + 1, recent.occurred_at, last)
    event = await LoginEvent.create(
        domain_id=account.domain_id,
        account_id=account.id,
        username=report.username,
        protocol=report.protocol,
        occurred_at=report.occurred_at,
        client_address=report.client_address,
        client_name=report.client_name,
        allowed=allowed,
        count=1,
        last_occurred_at=report.occurred_at,
        using_db=tx,
    )
    return Logged(event.id, 1, report.occurred_at, report.occurred_at)


def _opened(
    report: Report,
    account: Account,
    gateway: Gateway | None,
    row: dict[str, Any],
    now: datetime,
    ttl: timedelta,
) -> ProtocolSession | None:
    """The session PostgreSQL's statement opened or refreshed, as a row (nothing read)."""
    if row.get("opened_id") is None or gateway is None or report.session_id is None:
        return None
    return ProtocolSession(
        id=int(row["opened_id"]),
        gateway_id=gateway.id,
        session_id=report.session_id,
        domain_id=account.domain_id,
        account_id=account.id,
        username=account.username,
        protocol=report.protocol,
        client_address=report.client_address,
        client_name=report.client_name,
        started_at=_aware(row["opened_started_at"]),
        last_seen_at=now,
        expires_at=now + ttl,
    )


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _sqlite_upsert(
    tx: BaseDBAsyncClient,
    report: Report,
    account: Account,
    gateway: Gateway,
    previous: ProtocolSession | None,
    now: datetime,
    ttl: timedelta,
) -> ProtocolSession:
    """SQLite's form of the PostgreSQL statement's upsert, inside the report's transaction
    (which holds the database's write lock since its first UPDATE)."""
    fields = {
        "domain_id": account.domain_id,
        "account_id": account.id,
        "username": account.username,
        "protocol": report.protocol,
        "client_address": report.client_address,
        "client_name": report.client_name,
        "last_seen_at": now,
        "expires_at": now + ttl,
        "end_reason": None,
        "ended_at": None,
    }
    if previous is None:
        return await ProtocolSession.create(
            gateway_id=gateway.id,
            session_id=report.session_id,
            started_at=report.occurred_at,
            using_db=tx,
            **fields,
        )
    same_open = previous.account_id == account.id and is_open(previous)
    started_at = previous.started_at if same_open else report.occurred_at
    await (
        ProtocolSession.filter(id=previous.id).using_db(tx).update(started_at=started_at, **fields)
    )
    return ProtocolSession(
        id=previous.id,
        gateway_id=gateway.id,
        session_id=previous.session_id,
        started_at=started_at,
        **fields,
    )
