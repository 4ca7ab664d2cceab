"""A gateway's batch of reports (recordProtocolLogins): one statement on PostgreSQL, whatever
its size, built from the same parts as a single report's (api/services/login_sql.py).

The statement locks the named accounts in id order, moves each allowed account's last-login
columns forward to its newest reports, counts the batch's repeats of one login on the event they
repeat or inserts one event for them, and opens or refreshes the allowed reports' sessions.
Being one statement, it holds those locks only while it runs: a batch that waits for another
waits for that statement, not for a transaction's round trips. Python's part is here: the
batch's groups of repeats go in, and its answer (a row per account, event group and session, as
JSON) comes back as each report's Recorded.

A report is refused exactly when, as the statement locks its account, MAPI/EWS is off, the
account may not use the report's protocol, or the domain's policy does not let its client in
(each report's `client_ok`, the process's decision). The decision is a function of the login
(account, protocol, client name), so a group of repeats shares it. SQLite writes the reports one
after another, each as a single report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import orjson

from api.db import gateway_connection, is_sqlite
from api.internals.tortoise_private import from_row, time_columns
from api.models import LoginRefusal, ProtocolSession
from api.services.event_payloads import AccountRow
from api.services.login_sql import PG_BATCH, SESSION_COLUMNS
from api.services.login_store import Gateway, Logged, Recorded, Report, write_report

MAX_REPORTS = 500


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
        PG_BATCH,
        [
            orjson.dumps(
                [
                    {
                        "d": r.domain,
                        "u": r.username,
                        "t": r.occurred_at,
                        "p": r.protocol.value,
                        "ok": r.client_ok,
                    }
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
                        "ok": members[g][0].client_ok,
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
                        "ok": s.client_ok,
                        "t": started,
                    }
                    for s, started in sessions
                ]
            ).decode(),
            now,
            now + ttl,
        ],
    )
    accounts, events, opened = _read(rows[1], keyed, firsts)
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
    rows: Sequence[dict[str, Any]], keyed: list[_Group], firsts: list[datetime]
) -> tuple[
    dict[tuple[str, str], tuple[AccountRow, int]],
    dict[_Group, dict[str, Any]],
    dict[str, tuple[ProtocolSession, ProtocolSession | None]],
]:
    """The statement's rows: each account (by domain and username) with its open sessions
    before the batch; each group's event as it was, and why its reports were refused (a new
    event by its login and first time, `firsts` in the order of `keyed`); each session after
    and before."""
    # JSON carries times as ISO text: parsed in C (datetime.fromisoformat), not by Tortoise's
    # generic parser, which cost a batch a third.
    session_times = time_columns(ProtocolSession)
    accounts: dict[tuple[str, str], tuple[AccountRow, int]] = {}
    events: dict[_Group, dict[str, Any]] = {}
    opened: dict[str, tuple[ProtocolSession, ProtocolSession | None]] = {}
    new_events: list[dict[str, Any]] = []
    for row in rows:
        data = orjson.loads(row["data"])
        if row["kind"] == "account":
            account = AccountRow.read(data)
            accounts[(data["d"], account.username)] = (account, int(data["open_before"]))
        elif row["kind"] == "event":
            data["occurred_at"] = datetime.fromisoformat(data["occurred_at"])
            if data["last_before"] is not None:
                data["last_before"] = datetime.fromisoformat(data["last_before"])
            if data["k"] is None:
                new_events.append(data)
            else:
                events[keyed[int(data["k"])]] = data
        else:
            before = {column: data.pop(f"previous_{column}") for column in SESSION_COLUMNS}
            _parse_times(data, session_times)
            _parse_times(before, session_times)
            session = from_row(ProtocolSession, data)
            previous = from_row(ProtocolSession, before) if before["id"] is not None else None
            opened[session.session_id] = (session, previous)
    if new_events:
        # A login's groups have different first times: the login and its first name one.
        group_by_login: dict[tuple[Any, ...], _Group] = {}
        for group, first in zip(keyed, firsts, strict=True):
            named = accounts.get((group.domain, group.username))
            if named is not None:
                login = (named[0].id, group.protocol, group.client_address, group.client_name)
                group_by_login[(*login, first)] = group
        for data in new_events:
            key = (data["account_id"], data["p"], data["c"], data["n"], data["occurred_at"])
            events[group_by_login[key]] = data
    return accounts, events, opened


def _parse_times(data: dict[str, Any], names: list[str]) -> None:
    for name in names:
        value = data.get(name)
        if isinstance(value, str):
            data[name] = datetime.fromisoformat(value)


def _answers(
    reports: list[Report],
    accounts: dict[tuple[str, str], tuple[AccountRow, int]],
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
        account, open_before = named
        group = group_of[index]
        row = events[group]
        refusal = row["refusal"]
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
                allowed=refusal is None,
                open_before=open_before,
                session=session,
                previous=previous,
                refusal=LoginRefusal(refusal) if refusal is not None else None,
            )
        )
    return answers
