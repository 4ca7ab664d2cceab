"""The clients of a domain's logins, rolled up as they become final, so that mapiEwsClients
stays quick at hosting scale (millions of events in its window) and exact. PostgreSQL only:
SQLite answers from login_event itself (api/services/client_access.py).

Nothing is added to a report's statement. Every sweep, one process (an advisory lock) rolls up
the events that can no longer change, those older than the coalescing window and a margin
(ROLL_MARGIN), for every domain, into:

- login_rollup_day: for each day, the time up to which its events are rolled up;
- login_client_day: a day's logins, refusals and last report, by domain, protocol and client;
- login_client_account: each (domain, protocol, client, username)'s last rolled-up day;
- login_client_reach: how many usernames have each last day, by domain, protocol and client.

The distinct accounts of a client since day F are then the sum of its reach rows from F on, and
what is not rolled up yet (the last minutes, a stale day) is read from login_event, each of its
usernames counted only where no rolled-up day of the window has it already.

A gateway may report an old login. A report older than LATE first marks its domain's days (its
own, and that of the event it may repeat) stale: from then on such a day is read from
login_event, and once no late report came for ROLL_MARGIN it is rolled up again, whole. A report
newer than that touches only events the roll-up has not reached: it is given ROLL_MARGIN - LATE
to commit. Retention forgets the roll-ups of the days it prunes (forget_through).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from api.db import connection
from api.services.login_partitions import partitioned

# Events are rolled up once older than the coalescing window and ROLL_MARGIN; a report older
# than LATE marks its days stale (so a report that is not has ROLL_MARGIN - LATE to commit).
ROLL_MARGIN = timedelta(minutes=10)
LATE = timedelta(minutes=5)
# The widest window mapiEwsClients reads, in days.
MAX_DAYS = 90
# pg_advisory_xact_lock's key for rolling up: one process at a time.
_LOCK = 0x6D61_7069_726F_6C6C


def _start(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def stale_days(
    reports: Iterable[tuple[str, datetime]], coalesce: timedelta, now: datetime
) -> set[tuple[str, date]]:
    """The (domain name, day)s that these reports (domain name, time) may change although the
    roll-up may have reached them: a late report's day and that of the event it may repeat."""
    edge = now - LATE
    stale: set[tuple[str, date]] = set()
    for domain, at in reports:
        if at < edge:
            stale.add((domain, at.date()))
            stale.add((domain, (at - coalesce).date()))
    return stale


_MARK = (
    "INSERT INTO login_rollup_stale (domain_id, day, marked_at) "
    "SELECT d.id, x.day, $3 FROM unnest($1::text[], $2::date[]) AS x (name, day) "
    "JOIN domain d ON d.name = x.name "
    "ON CONFLICT (domain_id, day) DO UPDATE SET marked_at = EXCLUDED.marked_at"
)


async def mark_stale(stale: set[tuple[str, date]], now: datetime) -> None:
    """Read these domains' days from login_event until they are rolled up again. Called before
    the reports are written, so a report that fails leaves at most a needless re-roll."""
    if stale and partitioned():
        ordered = sorted(stale)
        await connection().execute_query(
            _MARK, [[name for name, _ in ordered], [day for _, day in ordered], now]
        )


@dataclass(frozen=True, slots=True)
class RolledUp:
    days: list[date]
    stale: list[tuple[int, date]]


async def roll_up(coalesce: timedelta, now: datetime | None = None) -> RolledUp:
    """Roll up what is final of the last MAX_DAYS days (events older than `coalesce` and
    ROLL_MARGIN), one transaction per day, then the stale days no late report touched for
    ROLL_MARGIN. Another process rolling up now makes this one return at once. Safe to call
    often: when nothing is new it costs one read."""
    if not partitioned():
        return RolledUp([], [])
    moment = now or datetime.now(UTC)
    horizon = moment - coalesce - ROLL_MARGIN
    first = moment.date() - timedelta(days=MAX_DAYS)
    rows = await connection().execute_query_dict(
        "SELECT day, rolled_through FROM login_rollup_day WHERE day >= $1", [first]
    )
    through = {row["day"]: row["rolled_through"] for row in rows}
    rolled: list[date] = []
    for day in (first + timedelta(days=n) for n in range((horizon.date() - first).days + 1)):
        end = min(_start(day + timedelta(days=1)), horizon)
        if through.get(day, _start(day)) >= end:
            continue
        async with in_transaction("default") as conn:
            if not await _locked(conn):
                return RolledUp(rolled, [])
            low = await _rolled_through(conn, day) or _start(day)
            if low >= end:
                continue
            await _roll(conn, day, None, low, end)
            await conn.execute_query(
                "INSERT INTO login_rollup_day (day, rolled_through) VALUES ($1, $2) "
                "ON CONFLICT (day) DO UPDATE SET rolled_through = EXCLUDED.rolled_through",
                [day, end],
            )
        rolled.append(day)
    again: list[tuple[int, date]] = []
    async with in_transaction("default") as conn:
        if await _locked(conn):
            await conn.execute_query("DELETE FROM login_rollup_stale WHERE day < $1", [first])
            claimed = await conn.execute_query_dict(
                "DELETE FROM login_rollup_stale WHERE marked_at <= $1 RETURNING domain_id, day",
                [moment - ROLL_MARGIN],
            )
            for row in sorted(claimed, key=lambda row: (row["day"], row["domain_id"])):
                # A day the roll-up has not reached will be rolled up as it comes.
                if (rolled_to := await _rolled_through(conn, row["day"])) is not None:
                    day, domain_id = row["day"], row["domain_id"]
                    await conn.execute_query(
                        "DELETE FROM login_client_day WHERE day = $1 AND domain_id = $2",
                        [day, domain_id],
                    )
                    await _roll(conn, day, domain_id, _start(day), rolled_to)
                    again.append((domain_id, day))
    return RolledUp(rolled, again)


async def _locked(conn: BaseDBAsyncClient) -> bool:
    rows = await conn.execute_query_dict("SELECT pg_try_advisory_xact_lock($1) AS ok", [_LOCK])
    return bool(rows[0]["ok"])


async def _rolled_through(conn: BaseDBAsyncClient, day: date) -> datetime | None:
    rows = await conn.execute_query_dict(
        "SELECT rolled_through FROM login_rollup_day WHERE day = $1", [day]
    )
    return rows[0]["rolled_through"] if rows else None


# $1 the day, $2 one domain or NULL for all, $3 and $4 the time rolled up (which also prune
# login_event's partitions to the day's).
_EVENTS = (
    "FROM login_event WHERE occurred_at >= $3 AND occurred_at < $4 "
    "AND ($2::int IS NULL OR domain_id = $2)"
)
_DAY_TOTALS = (
    "INSERT INTO login_client_day AS t (domain_id, day, protocol, client_name, logins, refused, "
    "last_seen) SELECT domain_id, $1, protocol, COALESCE(client_name, ''), sum(count), "
    "sum(CASE WHEN allowed THEN 0 ELSE count END), max(COALESCE(last_occurred_at, occurred_at)) "
    + _EVENTS
    + " GROUP BY domain_id, protocol, COALESCE(client_name, '') "
    "ON CONFLICT (domain_id, day, protocol, client_name) DO UPDATE SET "
    "logins = t.logins + EXCLUDED.logins, refused = t.refused + EXCLUDED.refused, "
    "last_seen = GREATEST(t.last_seen, EXCLUDED.last_seen)"
)
# Each username seen moves its last day forward to the day, and its client's reach with it: one
# more at the day, one fewer at the day it had (the reach rows are distinct: one upsert).
_REACH = (
    "WITH seen AS (SELECT DISTINCT domain_id, protocol, "  # noqa: S608 (constants only)
    "COALESCE(client_name, '') AS client_name, username "
    + _EVENTS
    + "), moved AS (SELECT s.domain_id, s.protocol, s.client_name, s.username, a.last_day AS was "
    "FROM seen s LEFT JOIN login_client_account a ON a.domain_id = s.domain_id "
    "AND a.protocol = s.protocol AND a.client_name = s.client_name AND a.username = s.username "
    "WHERE a.last_day IS NULL OR a.last_day < $1), "
    "kept AS (INSERT INTO login_client_account (domain_id, protocol, client_name, username, "
    "last_day) SELECT domain_id, protocol, client_name, username, $1 FROM moved "
    "ON CONFLICT (domain_id, protocol, client_name, username) DO UPDATE SET last_day = $1) "
    "INSERT INTO login_client_reach AS r (domain_id, protocol, client_name, last_day, accounts) "
    "SELECT domain_id, protocol, client_name, $1::date, count(*) FROM moved GROUP BY 1, 2, 3 "
    "UNION ALL SELECT domain_id, protocol, client_name, was, -count(*) FROM moved "
    "WHERE was IS NOT NULL GROUP BY 1, 2, 3, 4 "
    "ON CONFLICT (domain_id, protocol, client_name, last_day) "
    "DO UPDATE SET accounts = r.accounts + EXCLUDED.accounts"
)
_EMPTY_REACH = (
    "DELETE FROM login_client_reach WHERE accounts = 0 AND ($1::int IS NULL OR domain_id = $1)"
)


async def _roll(
    conn: BaseDBAsyncClient, day: date, domain_id: int | None, low: datetime, high: datetime
) -> None:
    """Add the events of [low, high), all of `day`, to the roll-up (one domain's or all)."""
    bounds = [day, domain_id, low, high]
    await conn.execute_query(_DAY_TOTALS, bounds)
    await conn.execute_query(_REACH, bounds)
    await conn.execute_query(_EMPTY_REACH, [domain_id])


async def forget_through(day: date) -> None:
    """Forget the roll-ups of `day` and every day before it (retention pruned their events, the
    last of them perhaps in part): they are read from login_event again until rolled up anew."""
    if not partitioned():
        return
    async with in_transaction("default") as conn:
        await conn.execute_query_dict("SELECT pg_advisory_xact_lock($1)", [_LOCK])
        for statement in (
            "DELETE FROM login_rollup_day WHERE day <= $1",
            "DELETE FROM login_client_day WHERE day <= $1",
            "DELETE FROM login_client_account WHERE last_day <= $1",
            "DELETE FROM login_client_reach WHERE last_day <= $1",
        ):
            await conn.execute_query(statement, [day])


@dataclass(frozen=True, slots=True)
class Plan:
    """Where a window's answer comes from: the days rolled up (and not stale), and the time
    ranges read from login_event (the rest of the window: what the roll-up has not reached)."""

    rolled: list[date]
    lows: list[datetime]
    highs: list[datetime]


async def plan(conn: BaseDBAsyncClient, domain_id: int, first_day: date) -> Plan:
    rows = await conn.execute_query_dict(
        "SELECT day, rolled_through FROM login_rollup_day r WHERE day >= $2 AND NOT EXISTS "
        "(SELECT 1 FROM login_rollup_stale s WHERE s.domain_id = $1 AND s.day = r.day) "
        "ORDER BY day",
        [domain_id, first_day],
    )
    rolled: list[date] = []
    lows: list[datetime] = []
    highs: list[datetime] = []
    low = _start(first_day)
    for row in rows:
        day, through = row["day"], row["rolled_through"]
        if _start(day) > low:
            lows.append(low)
            highs.append(_start(day))
        rolled.append(day)
        low = through
        if through < _start(day + timedelta(days=1)):
            break  # the roll-up's edge: all that follows is read from login_event
    # Up to and past now: a gateway's clock may run a little ahead.
    lows.append(low)
    highs.append(datetime.max.replace(tzinfo=UTC))
    return Plan(rolled, lows, highs)


# $1 domain, $2 and $3 the ranges read from login_event, $4 the window's first day, $5 the days
# rolled up, $6 the limit. A username of the ranges counts unless a rolled-up day of the window
# has it with the same protocol and client (the reach counts it then): one index lookup each.
CLIENTS = (
    "WITH raw AS (SELECT e.protocol, COALESCE(e.client_name, '') AS client_name, e.username, "
    "e.count, e.allowed, COALESCE(e.last_occurred_at, e.occurred_at) AS seen "
    "FROM unnest($2::timestamptz[], $3::timestamptz[]) AS r (low, high) "
    "JOIN LATERAL (SELECT * FROM login_event WHERE domain_id = $1 AND occurred_at >= r.low "
    "AND occurred_at < r.high) e ON true), "
    "newcomers AS (SELECT p.protocol, p.client_name, count(*) AS accounts "
    "FROM (SELECT DISTINCT protocol, client_name, username FROM raw) p "
    "LEFT JOIN LATERAL (SELECT a.last_day FROM login_client_account a WHERE a.domain_id = $1 "
    "AND a.protocol = p.protocol AND a.client_name = p.client_name AND a.username = p.username "
    "LIMIT 1) a ON true WHERE a.last_day IS NULL OR a.last_day < $4 GROUP BY 1, 2), "
    "parts AS ("
    "SELECT protocol, client_name, 0::bigint AS accounts, sum(count)::bigint AS logins, "
    "sum(CASE WHEN allowed THEN 0 ELSE count END)::bigint AS refused, max(seen) AS last_seen "
    "FROM raw GROUP BY 1, 2 "
    "UNION ALL SELECT protocol, client_name, accounts, 0, 0, NULL FROM newcomers "
    "UNION ALL SELECT protocol, client_name, 0, logins, refused, last_seen FROM login_client_day "
    "WHERE domain_id = $1 AND day = ANY($5::date[]) "
    "UNION ALL SELECT protocol, client_name, sum(accounts), 0, 0, NULL FROM login_client_reach "
    "WHERE domain_id = $1 AND last_day >= $4 GROUP BY 1, 2) "
    "SELECT NULLIF(client_name, '') AS client_name, protocol, sum(accounts) AS accounts, "
    "sum(logins) AS logins, sum(refused) AS refused, max(last_seen) AS last_seen "
    "FROM parts GROUP BY protocol, client_name HAVING sum(logins) > 0 "
    "ORDER BY 3 DESC, 4 DESC, 1 LIMIT $6"
)


async def clients(domain_id: int, first_day: date, limit: int) -> list[dict[str, object]]:
    """The rows of mapiEwsClients from midnight UTC of `first_day` on, from the roll-up and
    login_event, as one snapshot. Without JIT: the planner cannot know how little of
    login_event the ranges hold, and compiling would cost more than the query."""
    async with in_transaction("default") as conn:
        await conn.execute_script("SET LOCAL jit = off")
        found = await plan(conn, domain_id, first_day)
        return await conn.execute_query_dict(
            CLIENTS, [domain_id, found.lows, found.highs, first_day, found.rolled, limit]
        )
