"""A gateway's batch of reports (recordProtocolLogins): one statement on PostgreSQL, whatever
its size, as a single report is (api/services/login_statements.py has the rules).

The statement locks the named accounts in id order (FOR NO KEY UPDATE, as a single report's
UPDATE locks its one row, so batches naming the same accounts wait for each other and never
deadlock), moves each allowed account's last-login columns forward to its newest reports,
counts the batch's repeats of one login on the event they repeat or inserts one event for them,
and opens or refreshes the allowed reports' sessions. Being one statement, it holds those locks
only while it runs: a batch that waits for another waits for that statement, not for a
transaction's round trips. Its answer is a row per account, event group and session, as JSON.

A report is refused exactly when its account has MAPI/EWS off as the statement locks it. SQLite
writes the reports one after another, each as a single report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from api.db import gateway_connection, is_sqlite
from api.internals.tortoise_private import from_row, time_columns
from api.models import MailProtocol, ProtocolSession
from api.services.connected import open_sql
from api.services.login_statements import (
    SESSION_COLUMNS,
    Gateway,
    Logged,
    Recorded,
    Report,
    write_report,
)

MAX_REPORTS = 500

# $1: the reports, as JSON (one text to send, where two dozen arrays cost the driver a check of
# every element): each one's domain, username, time, protocol.
_ACCOUNTS = (
    "r AS (SELECT * FROM json_to_recordset($1::json) "
    "AS r(d varchar, u varchar, t timestamptz, p varchar)), "
    "named AS (SELECT a.id, a.username, dm.name AS d FROM account a "
    "JOIN domain dm ON dm.id = a.domain_id "
    "JOIN (SELECT DISTINCT d, u FROM r) x ON dm.name = x.d AND a.username = x.u "
    "ORDER BY a.id FOR NO KEY UPDATE OF a), "
    # Per account: its newest report, and its newest of each protocol; forward only.
    "newest AS (SELECT named.id AS a, named.d, max(r.t) AS t, "
    "(array_agg(r.p ORDER BY r.t DESC))[1] AS p, "
    "max(r.t) FILTER (WHERE r.p = 'MAPI') AS tm, max(r.t) FILTER (WHERE r.p = 'EWS') AS te "
    "FROM r JOIN named ON named.d = r.d AND named.username = r.u GROUP BY named.id, named.d), "
    "changed AS (UPDATE account SET "
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
    "RETURNING account.*, newest.d), "
    # Every named account as the batch leaves it, and whether its reports are allowed.
    "accounts AS (SELECT changed.*, true AS allowed FROM changed UNION ALL "
    # Only the accounts left unchanged are read again: the filter runs on `named`, before the
    # lookups, not on each named account's row after it.
    "SELECT a.*, left_alone.d, false FROM account a JOIN (SELECT * FROM named "
    "WHERE id NOT IN (SELECT id FROM changed)) left_alone ON left_alone.id = a.id), "
)
# $2: the groups, as JSON (the batch's repeats of one login within one window, Python's work),
# $3: the window; $4, $5: the batch's whole window. `recent` is the event a login's first
# group repeats, as for one report; the bounds on the table itself keep the lookup and the
# UPDATE to the window's partitions.
_KEY = (
    "e.account_id = g.account_id AND e.protocol = g.p "
    "AND e.client_address IS NOT DISTINCT FROM g.c AND e.client_name IS NOT DISTINCT FROM g.n "
    "AND e.allowed = g.allowed"
)
_EVENTS = (
    "g AS (SELECT g.*, accounts.id AS account_id, accounts.domain_id, accounts.allowed "  # noqa: S608
    "FROM json_to_recordset($2::json) AS g(k int, d varchar, u varchar, p varchar, "
    "c varchar, n varchar, first timestamptz, last timestamptz, reports int, repeats bool) "
    "JOIN accounts ON accounts.d = g.d AND accounts.username = g.u), "
    "recent AS (SELECT DISTINCT ON (g.k) g.k, g.reports, g.last, e.id, e.occurred_at, "
    "e.count AS count_before, COALESCE(e.last_occurred_at, e.occurred_at) AS last_before "
    "FROM g JOIN login_event e ON " + _KEY + " AND g.repeats "
    "AND e.occurred_at > g.first - $3::interval AND e.occurred_at <= g.first "
    "AND e.occurred_at > $4 AND e.occurred_at <= $5 "
    "ORDER BY g.k, e.occurred_at DESC), "
    "bumped AS (UPDATE login_event e SET count = e.count + recent.reports, "
    "last_occurred_at = GREATEST(recent.last_before, recent.last) FROM recent "
    "WHERE e.id = recent.id AND e.occurred_at = recent.occurred_at "
    "AND e.occurred_at > $4 AND e.occurred_at <= $5 "
    "RETURNING recent.k, e.id, e.occurred_at, recent.count_before, recent.last_before), "
    "inserted AS (INSERT INTO login_event (domain_id, account_id, username, protocol, "
    "occurred_at, client_address, client_name, allowed, count, last_occurred_at) "
    "SELECT domain_id, account_id, u, p, first, c, n, allowed, reports, last FROM g "
    "WHERE g.k NOT IN (SELECT k FROM bumped) ORDER BY g.k "
    "RETURNING id, account_id, protocol, client_address, client_name, allowed, occurred_at), "
    "logged AS (SELECT k, id, occurred_at, count_before, last_before FROM bumped UNION ALL "
    "SELECT g.k, i.id, i.occurred_at, 0, NULL FROM inserted i JOIN g "
    "ON i.account_id = g.account_id AND i.protocol = g.p "
    "AND i.client_address IS NOT DISTINCT FROM g.c AND i.client_name IS NOT DISTINCT FROM g.n "
    "AND i.allowed = g.allowed AND i.occurred_at = g.first), "
)
# $6: the gateway; $7: the sessions the reports name, each id once, as JSON; $8: now; $9: when
# they expire. Only the allowed ones open (or refresh) a session; `previous` is each id's row as
# it was, so a new session is told from a refreshed one.
_SESSIONS = (
    "s AS (SELECT s.*, accounts.id AS account_id, accounts.domain_id FROM "  # noqa: S608
    "json_to_recordset($7::json) AS s(session_id varchar, d varchar, u varchar, p varchar, "
    "c varchar, n varchar, t timestamptz) "
    "JOIN accounts ON accounts.d = s.d AND accounts.username = s.u AND accounts.allowed "
    "WHERE $6::int IS NOT NULL), "
    "previous AS (SELECT o.* FROM protocol_session o JOIN s ON o.session_id = s.session_id "
    "WHERE o.gateway_id = $6), "
    "opened AS (INSERT INTO protocol_session (gateway_id, session_id, domain_id, account_id, "
    "username, protocol, client_address, client_name, started_at, last_seen_at, expires_at) "
    "SELECT $6, session_id, domain_id, account_id, u, p, c, n, t, $8, $9 FROM s "
    "ORDER BY session_id "
    "ON CONFLICT (gateway_id, session_id) DO UPDATE SET "
    "started_at = CASE WHEN protocol_session.account_id = EXCLUDED.account_id "
    "AND " + open_sql("$8", "protocol_session") + " "
    "THEN protocol_session.started_at ELSE EXCLUDED.started_at END, "
    "domain_id = EXCLUDED.domain_id, account_id = EXCLUDED.account_id, "
    "username = EXCLUDED.username, protocol = EXCLUDED.protocol, "
    "client_address = EXCLUDED.client_address, client_name = EXCLUDED.client_name, "
    "last_seen_at = EXCLUDED.last_seen_at, expires_at = EXCLUDED.expires_at, "
    "end_reason = NULL, ended_at = NULL RETURNING *) "
)


class _Named(NamedTuple):
    """A named account as the batch left it: the columns its events read. Not a Tortoise
    model, whose construction (each time column through its converter) cost a batch a fifth
    of its Python; a tuple, built in C."""

    id: int
    domain_id: int
    username: str
    name: str | None
    is_domain_admin: bool
    mapi_ews_enabled: bool
    mapi_ews_enabled_at: datetime | None
    last_login: datetime | None
    last_login_protocol: MailProtocol | None
    last_mapi_login: datetime | None
    last_ews_login: datetime | None

    @classmethod
    def read(cls, data: dict[str, Any]) -> _Named:
        protocol = data["last_login_protocol"]
        return cls(
            id=data["id"],
            domain_id=data["domain_id"],
            username=data["username"],
            name=data["name"],
            is_domain_admin=data["is_domain_admin"],
            mapi_ews_enabled=data["mapi_ews_enabled"],
            mapi_ews_enabled_at=_time(data["mapi_ews_enabled_at"]),
            last_login=_time(data["last_login"]),
            last_login_protocol=MailProtocol(protocol) if protocol is not None else None,
            last_mapi_login=_time(data["last_mapi_login"]),
            last_ews_login=_time(data["last_ews_login"]),
        )


def _time(value: str | None) -> datetime | None:
    """A time as JSON carries it (ISO text with its offset), parsed in C, in UTC as Tortoise
    gives it."""
    return datetime.fromisoformat(value).astimezone(UTC) if value is not None else None


# What an answer's account carries: what its events' snapshots read, not the rest.
_ACCOUNT_COLUMNS = _Named._fields
_ANSWER = (
    "SELECT 'account' AS kind, to_jsonb(x) AS data FROM (SELECT "  # noqa: S608
    + ", ".join(f"accounts.{column}" for column in _ACCOUNT_COLUMNS)
    + ", accounts.d, accounts.allowed, "
    "(SELECT count(*) FROM protocol_session o WHERE o.account_id = accounts.id "
    "AND " + open_sql("$8", "o") + ") AS open_before FROM accounts) x "
    "UNION ALL SELECT 'event', to_jsonb(logged) FROM logged "
    "UNION ALL SELECT 'session', to_jsonb(y) FROM (SELECT opened.*, "
    + ", ".join(f"previous.{column} AS previous_{column}" for column in SESSION_COLUMNS)
    + " FROM opened LEFT JOIN previous ON previous.session_id = opened.session_id) y"
)
# Built from the constants above only; every value is a bound parameter.
_BATCH = "WITH " + _ACCOUNTS + _EVENTS + _SESSIONS + _ANSWER


class _Group(NamedTuple):
    """One login (what a repeat must match) and which of its windows in the batch. A tuple:
    a batch hashes its groups some twenty times a report, and a tuple's hash is C's."""

    domain: str
    username: str
    protocol: str
    client_address: str | None
    client_name: str | None
    chunk: int = 0


async def write_reports(
    reports: list[Report], gateway: Gateway | None, ttl: timedelta, coalesce: timedelta
) -> list[Recorded | None]:
    """What each report did, in order (None: no such account)."""
    if not reports:
        return []
    conn = gateway_connection()
    if is_sqlite(conn):
        return [await write_report(report, gateway, ttl, coalesce) for report in reports]
    now = datetime.now(UTC)
    group_of, members = _groups(reports, coalesce)
    keyed = list(members)
    firsts = [min(r.occurred_at for r in members[g]) for g in keyed]
    sessions = _sessions(reports) if gateway is not None else []
    rows = await conn.execute_query(
        _BATCH,
        [
            orjson.dumps(
                [
                    {"d": r.domain, "u": r.username, "t": r.occurred_at, "p": r.protocol.value}
                    for r in reports
                ]
            ).decode(),
            orjson.dumps(
                [
                    {
                        "k": k,
                        "d": g.domain,
                        "u": g.username,
                        "p": g.protocol,
                        "c": g.client_address,
                        "n": g.client_name,
                        "first": first,
                        "last": max(r.occurred_at for r in members[g]),
                        "reports": len(members[g]),
                        "repeats": g.chunk == 0,
                    }
                    for k, (g, first) in enumerate(zip(keyed, firsts, strict=True))
                ]
            ).decode(),
            coalesce,
            min(firsts) - coalesce,
            max(firsts),
            gateway.id if gateway is not None else None,
            orjson.dumps(
                [
                    {
                        "session_id": s.session_id,
                        "d": s.domain,
                        "u": s.username,
                        "p": s.protocol.value,
                        "c": s.client_address,
                        "n": s.client_name,
                        "t": started,
                    }
                    for s, started in sessions
                ]
            ).decode(),
            now,
            now + ttl,
        ],
    )
    accounts, events, opened = _read(rows[1], keyed)
    return _answers(reports, accounts, group_of, events, opened)


def _groups(
    reports: list[Report], coalesce: timedelta
) -> tuple[dict[int, _Group], dict[_Group, list[Report]]]:
    """The group of each report (by index), and each group's reports. A login's reports are
    sorted by time; one starts a new group once it is `coalesce` or more after its group's
    first. Only a login's first group may be counted on an event from before the batch."""
    by_login: dict[_Group, list[tuple[int, Report]]] = defaultdict(list)
    for index, report in enumerate(reports):
        login = _Group(
            report.domain,
            report.username,
            report.protocol.value,
            report.client_address,
            report.client_name,
        )
        by_login[login].append((index, report))
    members: dict[_Group, list[Report]] = {}
    group_of: dict[int, _Group] = {}
    for login, sent in by_login.items():
        first: datetime | None = None
        group, chunks = login, 0
        for index, report in sorted(sent, key=lambda item: (item[1].occurred_at, item[0])):
            if first is None or report.occurred_at - first >= coalesce:
                # Most logins are one group: the login itself (chunk 0), not a copy of it.
                group = login._replace(chunk=chunks) if chunks else login
                first, chunks = report.occurred_at, chunks + 1
                members[group] = []
            members[group].append(report)
            group_of[index] = group
    return group_of, members


def _sessions(reports: list[Report]) -> list[tuple[Report, datetime]]:
    """Each session id once: its newest report, and when the same account's reports of it
    began (a session's start)."""
    newest: dict[str, Report] = {}
    began: dict[tuple[str, str, str], datetime] = {}
    for report in reports:
        if report.session_id is None:
            continue
        held = newest.get(report.session_id)
        if held is None or held.occurred_at <= report.occurred_at:
            newest[report.session_id] = report
        key = (report.session_id, report.domain, report.username)
        began[key] = min(began.get(key, report.occurred_at), report.occurred_at)
    return [
        (report, began[(session_id, report.domain, report.username)])
        for session_id, report in newest.items()
    ]


def _read(
    rows: Sequence[dict[str, Any]], keyed: list[_Group]
) -> tuple[
    dict[tuple[str, str], tuple[_Named, int, bool]],
    dict[_Group, dict[str, Any]],
    dict[str, tuple[ProtocolSession, ProtocolSession | None]],
]:
    """The statement's rows: each account (by domain and username) with its open sessions
    before the batch and whether its reports were allowed; each group's event as it was; each
    session after and before."""
    # JSON carries times as ISO text: parsed in C (datetime.fromisoformat), not by Tortoise's
    # generic parser, which cost a batch a third.
    session_times = time_columns(ProtocolSession)
    accounts: dict[tuple[str, str], tuple[_Named, int, bool]] = {}
    events: dict[_Group, dict[str, Any]] = {}
    opened: dict[str, tuple[ProtocolSession, ProtocolSession | None]] = {}
    for row in rows:
        data = orjson.loads(row["data"])
        if row["kind"] == "account":
            account = _Named.read(data)
            accounts[(data["d"], account.username)] = (
                account,
                int(data["open_before"]),
                bool(data["allowed"]),
            )
        elif row["kind"] == "event":
            data["occurred_at"] = datetime.fromisoformat(data["occurred_at"])
            if data["last_before"] is not None:
                data["last_before"] = datetime.fromisoformat(data["last_before"])
            events[keyed[int(data["k"])]] = data
        else:
            before = {column: data.pop(f"previous_{column}") for column in SESSION_COLUMNS}
            _parse_times(data, session_times)
            _parse_times(before, session_times)
            session = from_row(ProtocolSession, data)
            previous = from_row(ProtocolSession, before) if before["id"] is not None else None
            opened[session.session_id] = (session, previous)
    return accounts, events, opened


def _parse_times(data: dict[str, Any], names: list[str]) -> None:
    for name in names:
        value = data.get(name)
        if isinstance(value, str):
            data[name] = datetime.fromisoformat(value)


def _answers(
    reports: list[Report],
    accounts: dict[tuple[str, str], tuple[_Named, int, bool]],
    group_of: dict[int, _Group],
    events: dict[_Group, dict[str, Any]],
    sessions: dict[str, tuple[ProtocolSession, ProtocolSession | None]],
) -> list[Recorded | None]:
    """Each report as a single report would have recorded it, counting through its group."""
    seen: dict[_Group, tuple[int, datetime | None]] = {}
    told: set[str] = set()
    answers: list[Recorded | None] = []
    for index, report in enumerate(reports):
        named = accounts.get((report.domain, report.username))
        if named is None:
            answers.append(None)
            continue
        account, open_before, allowed = named
        group = group_of[index]
        row = events[group]
        count, last = seen.get(group, (int(row["count_before"]), row["last_before"]))
        count, last = count + 1, max(filter(None, (last, report.occurred_at)))
        seen[group] = (count, last)
        session = previous = None
        if report.session_id in sessions and report.session_id not in told:
            held = sessions[report.session_id]
            if held[0].account_id == account.id:
                session, previous = held
                told.add(report.session_id)
        answers.append(
            Recorded(
                account=account,
                event=Logged(int(row["id"]), count, row["occurred_at"], last),
                allowed=allowed,
                open_before=open_before,
                session=session,
                previous=previous,
            )
        )
    return answers
