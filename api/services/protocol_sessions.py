"""The MAPI and EWS sessions gateways hold open: confirmed, ended, told to end, swept.

A session opens with an allowed login that carries a session id (api/services/logins.py). From
then on its gateway confirms it (`touch`) and reports it closed (`end`); a change that takes
MAPI/EWS away, or an administrator's disconnect, marks the account's open sessions in the
change's own transaction (`mark_ending`) and, once that has committed, tells each holding
gateway (`ending_events`). The mark is what makes the cut-off certain: a gateway that missed the
command, because it was not connected or Redis restarted, is told again when it subscribes
(`backlog`) and whenever it confirms the session (`touch` names it in endNow).

Every read is scoped to one gateway or one domain; a gateway's session ids mean nothing to
another gateway.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient

from api.db import connection, is_sqlite, parameter_mark
from api.errors import UserError, UserErrorCode, UserErrors
from api.events import Event, EventBus, Topic
from api.internals.tortoise_private import from_row
from api.models import MailProtocol, ProtocolSession, SessionEndReason
from api.services import validation
from api.services.connected import describe, open_sql, session_changes
from api.services.event_payloads import SessionCommand

MAX_IDS = 1000
_FIELD = ("input", "sessionIds")
_SWEEP_BATCH = 500


def parse_session_ids(session_ids: Sequence[str]) -> list[str]:
    """The named ids, each once, in the order given; UserErrors for a bad list or id."""
    if not session_ids:
        raise UserErrors(
            [UserError(UserErrorCode.INVALID_INPUT, "Name at least one session id.", _FIELD)]
        )
    if len(session_ids) > MAX_IDS:
        message = f"At most {MAX_IDS} session ids at once; {len(session_ids)} were given."
        raise UserErrors([UserError(UserErrorCode.INVALID_INPUT, message, _FIELD)])
    problems: list[UserError] = []
    for index, value in enumerate(session_ids):
        try:
            validation.session_id(value)
        except ValueError as error:
            problems.append(
                UserError(UserErrorCode.INVALID_INPUT, str(error), (*_FIELD, str(index)))
            )
    if problems:
        raise UserErrors(problems)
    return list(dict.fromkeys(session_ids))


def _matching(conn: BaseDBAsyncClient, column: str, count: int, *, at: int) -> str:
    """`column` is one of `count` values bound from parameter `at` on: on PostgreSQL one array
    parameter (one plan whatever the count), on SQLite one placeholder each."""
    if is_sqlite(conn):
        return f"{column} IN ({', '.join(f'?{at + i}' for i in range(count))})"
    return f"{column} = ANY(${at}::varchar[])"


def _bind(conn: BaseDBAsyncClient, values: list[object], ids: list[str]) -> list[object]:
    """`values`, then the ids as `_matching` expects them."""
    return [*values, *ids] if is_sqlite(conn) else [*values, ids]


async def touch(
    *, gateway_id: int, session_ids: Sequence[str], ttl: timedelta
) -> tuple[int, list[str]]:
    """Confirm the gateway's open sessions among `session_ids`: (how many, the ids to close).

    One UPDATE, whatever the count. The ids to close are the rest: sessions told to end,
    expired ones, ids this gateway never opened (another gateway's included)."""
    ids = parse_session_ids(session_ids)
    now = datetime.now(UTC)
    conn = connection()
    p = parameter_mark(conn)
    # Built from fixed text and placeholders only; every value is a bound parameter.
    sql = (
        f"UPDATE protocol_session SET last_seen_at = {p}2, expires_at = {p}3 "  # noqa: S608
        f"WHERE gateway_id = {p}1 AND {_matching(conn, 'session_id', len(ids), at=5)} "
        f"AND {open_sql(f'{p}4')} RETURNING session_id"
    )
    rows = await conn.execute_query_dict(sql, _bind(conn, [gateway_id, now, now + ttl, now], ids))
    kept = {row["session_id"] for row in rows}
    return len(kept), [session_id for session_id in ids if session_id not in kept]


async def end(*, events: EventBus, gateway_id: int, session_ids: Sequence[str]) -> int:
    """The gateway closed these sessions: forget them. Returns how many were still tracked
    (open, or told to end and not yet closed); unknown and expired ids count for nothing."""
    ids = parse_session_ids(session_ids)
    now = datetime.now(UTC)
    conn = connection()
    p = parameter_mark(conn)
    sql = (
        f"DELETE FROM protocol_session WHERE gateway_id = {p}1 AND "  # noqa: S608
        f"{_matching(conn, 'session_id', len(ids), at=2)} RETURNING *"
    )
    rows = await conn.execute_query_dict(sql, _bind(conn, [gateway_id], ids))
    gone = [from_row(ProtocolSession, row) for row in rows]
    tracked = [row for row in gone if row.expires_at > now]
    # Those told to end were announced as ENDED when they were told.
    announce = [row for row in tracked if row.end_reason is None]
    await events.publish(
        session_changes(await describe(announce), reason=SessionEndReason.ENDED_BY_GATEWAY, at=now)
    )
    return len(tracked)


async def mark_ending(
    conn: BaseDBAsyncClient,
    *,
    account_ids: Sequence[int],
    reason: SessionEndReason,
    at: datetime,
    protocol: MailProtocol | None = None,
) -> list[ProtocolSession]:
    """Inside the caller's transaction: mark every open session of these accounts (over
    `protocol` only, if given) as told to end, and return them (to announce with
    `ending_events` once the transaction commits)."""
    if not account_ids:
        return []
    if is_sqlite(conn):
        placeholders = ", ".join(f"?{i + 4}" for i in range(len(account_ids)))
        sql = (
            "UPDATE protocol_session SET end_reason = ?1, ended_at = ?2 "  # noqa: S608
            f"WHERE (?3 IS NULL OR protocol = ?3) AND account_id IN ({placeholders}) "
            f"AND {open_sql('?2')} RETURNING *"
        )
        values: list[object] = [reason.value, at, protocol, *account_ids]
    else:
        sql = (
            "UPDATE protocol_session SET end_reason = $1, ended_at = $2 "  # noqa: S608
            "WHERE ($3::varchar IS NULL OR protocol = $3) AND account_id = ANY($4::int[]) "
            f"AND {open_sql('$2')} RETURNING *"
        )
        values = [reason.value, at, protocol, list(account_ids)]
    rows = await conn.execute_query_dict(sql, values)
    return [from_row(ProtocolSession, row) for row in rows]


async def open_clients(
    conn: BaseDBAsyncClient, domain_id: int, at: datetime
) -> dict[tuple[MailProtocol, str | None], int]:
    """The domain's open sessions by (protocol, client name): how many of each."""
    p = parameter_mark(conn)
    rows = await conn.execute_query_dict(
        "SELECT protocol, client_name, count(*) AS n FROM protocol_session "  # noqa: S608
        f"WHERE domain_id = {p}1 AND {open_sql(f'{p}2')} GROUP BY protocol, client_name",
        [domain_id, at],
    )
    return {(MailProtocol(r["protocol"]), r["client_name"]): int(r["n"]) for r in rows}


async def mark_ending_clients(
    conn: BaseDBAsyncClient,
    *,
    domain_id: int,
    clients: Sequence[tuple[MailProtocol, str | None]],
    reason: SessionEndReason,
    at: datetime,
) -> list[ProtocolSession]:
    """As `mark_ending`, for the domain's open sessions of these (protocol, client name) pairs:
    one statement whatever their number."""
    if not clients:
        return []
    protocols = [protocol.value for protocol, _ in clients]
    names = [name for _, name in clients]
    if is_sqlite(conn):
        pairs = " OR ".join(
            f"(protocol = ?{4 + 2 * i} AND client_name IS ?{5 + 2 * i})"
            for i in range(len(clients))
        )
        sql = (
            "UPDATE protocol_session SET end_reason = ?1, ended_at = ?2 "  # noqa: S608
            f"WHERE domain_id = ?3 AND ({pairs}) AND {open_sql('?2')} RETURNING *"
        )
        values: list[object] = [reason.value, at, domain_id]
        for protocol, name in zip(protocols, names, strict=True):
            values += [protocol, name]
    else:
        sql = (
            "UPDATE protocol_session s SET end_reason = $1, ended_at = $2 "  # noqa: S608
            "FROM unnest($4::varchar[], $5::varchar[]) AS c(protocol, client_name) "
            "WHERE s.domain_id = $3 AND s.protocol = c.protocol "
            "AND s.client_name IS NOT DISTINCT FROM c.client_name AND "
            f"{open_sql('$2', 's')} RETURNING s.*"
        )
        values = [reason.value, at, domain_id, protocols, names]
    rows = await conn.execute_query_dict(sql, values)
    return [from_row(ProtocolSession, row) for row in rows]


async def ending_events(
    rows: Sequence[ProtocolSession], *, reason: SessionEndReason, at: datetime
) -> list[Event]:
    """For sessions `mark_ending` marked: one command per gateway and account, to the gateway
    holding them, and one ENDED change per session, to its domain."""
    described = await describe(rows)
    commands: dict[tuple[int, str], list[str]] = defaultdict(list)
    for row, session in zip(rows, described, strict=True):
        commands[(row.gateway_id, f"{session.username}@{session.domain}")].append(row.session_id)
    return [
        Event(
            Topic.SESSION_COMMANDS,
            gateway_id,
            SessionCommand(
                end_session_ids=tuple(ids), email_address=address, reason=reason, issued_at=at
            ),
        )
        for (gateway_id, address), ids in commands.items()
    ] + session_changes(described, reason=reason, at=at)


async def backlog(*, gateway_id: int) -> list[SessionCommand]:
    """Every session of this gateway that was told to end and is still tracked, as commands
    (one per account and reason): what a gateway receives first when it subscribes."""
    rows = (
        await ProtocolSession.filter(gateway_id=gateway_id, end_reason__isnull=False)
        .order_by("id")
        .values("session_id", "username", "domain__name", "end_reason", "ended_at")
    )
    grouped: dict[tuple[str, SessionEndReason], tuple[list[str], datetime]] = {}
    for row in rows:
        key = (f"{row['username']}@{row['domain__name']}", SessionEndReason(row["end_reason"]))
        grouped.setdefault(key, ([], row["ended_at"]))[0].append(row["session_id"])
    return [
        SessionCommand(
            end_session_ids=tuple(ids), email_address=address, reason=reason, issued_at=issued
        )
        for (address, reason), (ids, issued) in grouped.items()
    ]


async def sweep(*, events: EventBus, now: datetime | None = None) -> int:
    """Forget sessions past their expiry, in batches, announcing as EXPIRED those that were
    open (the rest were announced when they were told to end). Each row is deleted by one
    statement that returns it, so with several processes sweeping each is announced once."""
    when = now or datetime.now(UTC)
    conn = connection()
    # Fixed text and a constant: the one value is a bound parameter.
    if is_sqlite(conn):
        sql = (
            "DELETE FROM protocol_session WHERE id IN (SELECT id FROM protocol_session "  # noqa: S608
            f"WHERE expires_at <= ?1 LIMIT {_SWEEP_BATCH}) RETURNING *"
        )
    else:
        sql = (
            "DELETE FROM protocol_session WHERE id IN (SELECT id FROM protocol_session "  # noqa: S608
            f"WHERE expires_at <= $1 LIMIT {_SWEEP_BATCH} FOR UPDATE SKIP LOCKED) RETURNING *"
        )
    swept = 0
    while True:
        rows = [from_row(ProtocolSession, r) for r in await conn.execute_query_dict(sql, [when])]
        swept += len(rows)
        expired = [row for row in rows if row.end_reason is None]
        await events.publish(
            session_changes(await describe(expired), reason=SessionEndReason.EXPIRED, at=when)
        )
        if len(rows) < _SWEEP_BATCH:
            return swept
