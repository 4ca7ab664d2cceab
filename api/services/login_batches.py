"""A gateway's batch of reports (recordProtocolLogins), written in a constant number of
statements on PostgreSQL, whatever its size: one transaction of

1. the named accounts, locked in id order (FOR NO KEY UPDATE, as a single report's UPDATE
   locks its one row; two batches naming the same accounts cannot deadlock);
2. one UPDATE moving each allowed account's last-login columns forward to its newest reports;
3. one statement for the events: the batch's repeats of one login grouped, each group counted
   on the event it repeats (as a single report is) or inserted as one event;
4. with session ids, one upsert of the sessions the allowed reports open or refresh.

Each report is answered as a single report would be (api/services/login_statements.py has the
rules); a report is refused exactly when its account has MAPI/EWS off as the batch commits.
SQLite writes the reports one after another, each as a single report.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from api.db import GATEWAY_CONNECTION, gateway_connection, is_sqlite
from api.models import Account, ProtocolSession
from api.services.login_statements import (
    SESSION_COLUMNS,
    Gateway,
    Logged,
    Recorded,
    Report,
    write_report,
)

MAX_REPORTS = 500

_LOCKED = (
    "SELECT a.id, a.domain_id, a.username, d.name AS domain FROM account a "
    "JOIN domain d ON d.id = a.domain_id "
    "JOIN unnest($1::varchar[], $2::varchar[]) AS r(d, u) ON d.name = r.d AND a.username = r.u "
    "ORDER BY a.id FOR NO KEY UPDATE OF a"
)
# Per account: its newest report, and its newest of each protocol; forward only, as one report.
_MOVED = (
    "WITH r AS (SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::varchar[]) AS r(a, t, p)), "
    "newest AS (SELECT a, max(t) AS t, (array_agg(p ORDER BY t DESC))[1] AS p, "
    "max(t) FILTER (WHERE p = 'MAPI') AS tm, max(t) FILTER (WHERE p = 'EWS') AS te "
    "FROM r GROUP BY a) "
    "UPDATE account SET "
    "last_login = CASE WHEN last_login IS NULL OR last_login < newest.t THEN newest.t "
    "ELSE last_login END, "
    "last_login_protocol = CASE WHEN last_login IS NULL OR last_login < newest.t THEN newest.p "
    "ELSE last_login_protocol END, "
    "last_mapi_login = CASE WHEN newest.tm IS NOT NULL AND "
    "(last_mapi_login IS NULL OR last_mapi_login < newest.tm) THEN newest.tm "
    "ELSE last_mapi_login END, "
    "last_ews_login = CASE WHEN newest.te IS NOT NULL AND "
    "(last_ews_login IS NULL OR last_ews_login < newest.te) THEN newest.te "
    "ELSE last_ews_login END "
    "FROM newest WHERE account.id = newest.a AND account.mapi_ews_enabled "
    "RETURNING account.*, (SELECT count(*) FROM protocol_session o "
    "WHERE o.account_id = account.id AND o.end_reason IS NULL AND o.expires_at > $4) "
    "AS open_before"
)
_UNCHANGED = (
    "SELECT a.*, (SELECT count(*) FROM protocol_session o WHERE o.account_id = a.id "
    "AND o.end_reason IS NULL AND o.expires_at > $2) AS open_before "
    "FROM account a WHERE a.id = ANY($1::int[])"
)
# One row per group: the same login (account, protocol, client address, client name, allowed)
# within the batch. `recent` is the event the group's first report repeats, as for one report.
_KEY = (
    "e.account_id = g.account_id AND e.protocol = g.p "
    "AND e.client_address IS NOT DISTINCT FROM g.c AND e.client_name IS NOT DISTINCT FROM g.n "
    "AND e.allowed = g.allowed"
)
# Built from the constants here only; every value is a bound parameter.
_LOGGED = (
    "WITH g AS (SELECT * FROM unnest($1::int[], $2::int[], $3::int[], $4::varchar[], "  # noqa: S608
    "$5::varchar[], $6::varchar[], $7::varchar[], $8::bool[], $9::timestamptz[], "
    "$10::timestamptz[], $11::int[]) "
    "AS g(k, domain_id, account_id, username, p, c, n, allowed, first, last, reports)), "
    "recent AS (SELECT DISTINCT ON (g.k) g.k, e.id, e.occurred_at, e.count AS count_before, "
    "COALESCE(e.last_occurred_at, e.occurred_at) AS last_before "
    "FROM g JOIN login_event e ON " + _KEY + " AND e.occurred_at > g.first - $12::interval "
    "AND e.occurred_at <= g.first AND (($13::bool[])[g.k + 1]) "
    "AND e.occurred_at > $14 AND e.occurred_at <= $15 "
    "ORDER BY g.k, e.occurred_at DESC), "
    "bumped AS (UPDATE login_event e SET count = e.count + g.reports, "
    "last_occurred_at = GREATEST(recent.last_before, g.last) FROM recent JOIN g ON g.k = recent.k "
    "WHERE e.id = recent.id AND e.occurred_at = recent.occurred_at "
    # The batch's whole window, on the table: the lookup and the UPDATE read only the
    # partitions it covers (pruned when planned), not every day the retention keeps.
    "AND e.occurred_at > $14 AND e.occurred_at <= $15 "
    "RETURNING recent.k, e.id, e.occurred_at, recent.count_before, recent.last_before), "
    "inserted AS (INSERT INTO login_event (domain_id, account_id, username, protocol, "
    "occurred_at, client_address, client_name, allowed, count, last_occurred_at) "
    "SELECT domain_id, account_id, username, p, first, c, n, allowed, reports, last FROM g "
    "WHERE NOT EXISTS (SELECT 1 FROM bumped WHERE bumped.k = g.k) ORDER BY g.k "
    "RETURNING id, domain_id, username, protocol, client_address, client_name, allowed, "
    "occurred_at) "
    "SELECT k, id, occurred_at, count_before, last_before FROM bumped UNION ALL "
    "SELECT g.k, i.id, i.occurred_at, 0, NULL FROM inserted i JOIN g ON i.domain_id = g.domain_id "
    "AND i.username = g.username AND i.protocol = g.p "
    "AND i.client_address IS NOT DISTINCT FROM g.c AND i.client_name IS NOT DISTINCT FROM g.n "
    "AND i.allowed = g.allowed AND i.occurred_at = g.first"
)
# The sessions allowed reports open or refresh, each id once (its batch's newest report);
# `previous` is each id's row as it was, so a new session is told from a refreshed one.
_SESSIONS = (
    "WITH s AS (SELECT * FROM unnest($2::varchar[], $3::int[], $4::int[], $5::varchar[], "  # noqa: S608
    "$6::varchar[], $7::varchar[], $8::varchar[], $9::timestamptz[]) "
    "AS s(session_id, domain_id, account_id, username, p, c, n, t)), "
    "previous AS (SELECT o.* FROM protocol_session o JOIN s ON o.session_id = s.session_id "
    "WHERE o.gateway_id = $1), "
    "opened AS (INSERT INTO protocol_session (gateway_id, session_id, domain_id, account_id, "
    "username, protocol, client_address, client_name, started_at, last_seen_at, expires_at) "
    "SELECT $1, session_id, domain_id, account_id, username, p, c, n, t, $10, $11 FROM s "
    "ORDER BY session_id "
    "ON CONFLICT (gateway_id, session_id) DO UPDATE SET "
    "started_at = CASE WHEN protocol_session.account_id = EXCLUDED.account_id "
    "AND protocol_session.end_reason IS NULL AND protocol_session.expires_at > $10 "
    "THEN protocol_session.started_at ELSE EXCLUDED.started_at END, "
    "domain_id = EXCLUDED.domain_id, account_id = EXCLUDED.account_id, "
    "username = EXCLUDED.username, protocol = EXCLUDED.protocol, "
    "client_address = EXCLUDED.client_address, client_name = EXCLUDED.client_name, "
    "last_seen_at = EXCLUDED.last_seen_at, expires_at = EXCLUDED.expires_at, "
    "end_reason = NULL, ended_at = NULL RETURNING *) "
    "SELECT opened.*, "
    + ", ".join(f"previous.{column} AS previous_{column}" for column in SESSION_COLUMNS)
    + " FROM opened LEFT JOIN previous ON previous.session_id = opened.session_id"
)


@dataclass(frozen=True, slots=True)
class _Group:
    """One login (what a repeat must match) and which of its windows in the batch."""

    domain_id: int
    account_id: int
    username: str
    protocol: str
    client_address: str | None
    client_name: str | None
    allowed: bool
    chunk: int = 0


async def write_reports(
    reports: list[Report], gateway: Gateway | None, ttl: timedelta, coalesce: timedelta
) -> list[Recorded | None]:
    """What each report did, in order (None: no such account)."""
    if not reports:
        return []
    if is_sqlite(gateway_connection()):
        return [await write_report(report, gateway, ttl, coalesce) for report in reports]
    now = datetime.now(UTC)
    async with in_transaction(GATEWAY_CONNECTION) as tx:
        found = {
            (str(row["domain"]), str(row["username"])): int(row["id"])
            for row in await tx.execute_query_dict(
                _LOCKED, [[r.domain for r in reports], [r.username for r in reports]]
            )
        }
        ids = [found.get((r.domain, r.username)) for r in reports]
        accounts, allowed = await _move_last_logins(tx, reports, ids, now)
        groups, events = await _log(tx, reports, ids, accounts, allowed, coalesce)
        sessions = await _open_sessions(tx, reports, ids, accounts, allowed, gateway, now, ttl)
    return _answers(reports, ids, accounts, allowed, groups, events, sessions)


async def _move_last_logins(
    tx: BaseDBAsyncClient, reports: list[Report], ids: list[int | None], now: datetime
) -> tuple[dict[int, tuple[Account, int]], set[int]]:
    """Each named account after the batch with its open sessions before it, and the allowed."""
    named = [(r, i) for r, i in zip(reports, ids, strict=True) if i is not None]
    rows = await tx.execute_query_dict(
        _MOVED,
        [
            [i for _, i in named],
            [r.occurred_at for r, _ in named],
            [r.protocol.value for r, _ in named],
            now,
        ],
    )
    allowed = {int(row["id"]) for row in rows}
    refused = sorted({i for _, i in named} - allowed)
    if refused:
        rows += await tx.execute_query_dict(_UNCHANGED, [refused, now])
    columns = Account._meta.db_fields
    accounts = {}
    for row in rows:
        open_before = int(row.pop("open_before"))
        account = Account._init_from_db(**{k: v for k, v in row.items() if k in columns})
        accounts[account.id] = (account, open_before)
    return accounts, allowed


async def _log(
    tx: BaseDBAsyncClient,
    reports: list[Report],
    ids: list[int | None],
    accounts: dict[int, tuple[Account, int]],
    allowed: set[int],
    coalesce: timedelta,
) -> tuple[dict[int, _Group], dict[_Group, dict[str, Any]]]:
    """The group of each report (by index) and each group's event as it was before the batch.

    A group is the batch's repeats of one login within one window: sorted by time, a report
    starts a new group once it is `coalesce` or more after its group's first. Only a login's
    first group may be counted on an event from before the batch."""
    by_login: dict[_Group, list[tuple[int, Report]]] = defaultdict(list)
    for index, (report, account_id) in enumerate(zip(reports, ids, strict=True)):
        if account_id is None:
            continue
        account = accounts[account_id][0]
        login = _Group(
            account.domain_id,
            account_id,
            account.username,
            report.protocol.value,
            report.client_address,
            report.client_name,
            account_id in allowed,
        )
        by_login[login].append((index, report))
    members: dict[_Group, list[Report]] = {}
    group_of: dict[int, _Group] = {}
    for login, sent in by_login.items():
        first: datetime | None = None
        group, chunks = login, 0
        for index, report in sorted(sent, key=lambda item: (item[1].occurred_at, item[0])):
            if first is None or report.occurred_at - first >= coalesce:
                first, group, chunks = report.occurred_at, replace(login, chunk=chunks), chunks + 1
                members[group] = []
            members[group].append(report)
            group_of[index] = group
    keyed = list(members)
    if not keyed:  # no report named an account
        return group_of, {}
    firsts = [min(r.occurred_at for r in members[g]) for g in keyed]
    rows = await tx.execute_query_dict(
        _LOGGED,
        [
            list(range(len(keyed))),
            [g.domain_id for g in keyed],
            [g.account_id for g in keyed],
            [g.username for g in keyed],
            [g.protocol for g in keyed],
            [g.client_address for g in keyed],
            [g.client_name for g in keyed],
            [g.allowed for g in keyed],
            firsts,
            [max(r.occurred_at for r in members[g]) for g in keyed],
            [len(members[g]) for g in keyed],
            coalesce,
            [g.chunk == 0 for g in keyed],
            min(firsts) - coalesce,
            max(firsts),
        ],
    )
    return group_of, {keyed[int(row["k"])]: row for row in rows}


async def _open_sessions(
    tx: BaseDBAsyncClient,
    reports: list[Report],
    ids: list[int | None],
    accounts: dict[int, tuple[Account, int]],
    allowed: set[int],
    gateway: Gateway | None,
    now: datetime,
    ttl: timedelta,
) -> dict[str, tuple[ProtocolSession, ProtocolSession | None]]:
    """Each session id's row after the batch and before it."""
    if gateway is None:
        return {}
    newest: dict[str, tuple[Report, int]] = {}
    started: dict[tuple[str, int], datetime] = {}  # each id's first report for an account
    for report, account_id in zip(reports, ids, strict=True):
        if report.session_id is not None and account_id is not None and account_id in allowed:
            held = newest.get(report.session_id)
            if held is None or held[0].occurred_at <= report.occurred_at:
                newest[report.session_id] = (report, account_id)
            key = (report.session_id, account_id)
            started[key] = min(started.get(key, report.occurred_at), report.occurred_at)
    if not newest:
        return {}
    chosen = list(newest.items())
    rows = await tx.execute_query_dict(
        _SESSIONS,
        [
            gateway.id,
            [s for s, _ in chosen],
            [accounts[a][0].domain_id for _, (_, a) in chosen],
            [a for _, (_, a) in chosen],
            [r.username for _, (r, _) in chosen],
            [r.protocol.value for _, (r, _) in chosen],
            [r.client_address for _, (r, _) in chosen],
            [r.client_name for _, (r, _) in chosen],
            [started[(s, a)] for s, (_, a) in chosen],
            now,
            now + ttl,
        ],
    )
    opened = {}
    for row in rows:
        before = {column: row.pop(f"previous_{column}") for column in SESSION_COLUMNS}
        session = ProtocolSession._init_from_db(**row)
        previous = ProtocolSession._init_from_db(**before) if before["id"] is not None else None
        opened[session.session_id] = (session, previous)
    return opened


def _answers(
    reports: list[Report],
    ids: list[int | None],
    accounts: dict[int, tuple[Account, int]],
    allowed: set[int],
    group_of: dict[int, _Group],
    events: dict[_Group, dict[str, Any]],
    sessions: dict[str, tuple[ProtocolSession, ProtocolSession | None]],
) -> list[Recorded | None]:
    """Each report as a single report would have recorded it, counting through its group."""
    seen: dict[_Group, tuple[int, datetime | None]] = {}
    told: set[str] = set()
    answers: list[Recorded | None] = []
    for index, (report, account_id) in enumerate(zip(reports, ids, strict=True)):
        if account_id is None:
            answers.append(None)
            continue
        group = group_of[index]
        row = events[group]
        count, last = seen.get(group, (int(row["count_before"]), row["last_before"]))
        count, last = count + 1, max(filter(None, (last, report.occurred_at)))
        seen[group] = (count, last)
        account, open_before = accounts[account_id]
        session = previous = None
        if report.session_id in sessions and report.session_id not in told:
            held = sessions[report.session_id]
            if held[0].account_id == account_id:
                session, previous = held
                told.add(report.session_id)
        answers.append(
            Recorded(
                account=account,
                event=Logged(int(row["id"]), count, row["occurred_at"], last),
                allowed=account_id in allowed,
                open_before=open_before,
                session=session,
                previous=previous,
            )
        )
    return answers
