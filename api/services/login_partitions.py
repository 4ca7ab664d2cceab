"""PostgreSQL's login_event is partitioned by day of occurred_at (migration 0009).

One partition per UTC day, named login_event_pYYYYMMDD, and a default partition for any report
outside them (a gateway may report an old login), so nothing is ever refused for want of a
partition. The daily maintenance command (`prune-login-events`) creates the coming days ahead,
moving any rows the default partition holds for them, and retention drops whole days: dropping
a partition is one catalogue change, however many rows it holds. Statements that read or
update events name the time they concern, so that only those days' partitions are planned and
locked, however many days the retention keeps (tests/test_login_partitions.py counts them).
SQLite keeps one table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from api.db import connection, is_sqlite

TABLE = "login_event"
DEFAULT_PARTITION = "login_event_default"
AHEAD_DAYS = 7
_NAME = re.compile(r"^login_event_p(\d{8})$")


def partition_name(day: date) -> str:
    return f"{TABLE}_p{day:%Y%m%d}"


def _bound(day: date) -> str:
    """A partition bound literal: midnight UTC of `day` (a date, so nothing else reaches SQL)."""
    return f"'{datetime.combine(day, time(), tzinfo=UTC).isoformat()}'"


def partitioned(conn: BaseDBAsyncClient | None = None) -> bool:
    return not is_sqlite(conn or connection())


async def partition_days(conn: BaseDBAsyncClient | None = None) -> list[date]:
    """The days that have a partition, oldest first."""
    rows = await (conn or connection()).execute_query_dict(
        "SELECT c.relname AS name FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent "
        "WHERE p.relname = $1",
        [TABLE],
    )
    days = []
    for row in rows:
        if match := _NAME.match(str(row["name"])):
            days.append(datetime.strptime(match.group(1), "%Y%m%d").date())
    return sorted(days)


async def create_partitions(days: list[date]) -> list[date]:
    """A partition for each of `days` that has none, each in its own short transaction; rows the
    default partition holds for a day move into it (the default must hold none of a partition's
    range). Returns the days created."""
    have = set(await partition_days())
    created = []
    for day in sorted(set(days) - have):
        name = partition_name(day)
        low, high = _bound(day), _bound(day + timedelta(days=1))
        async with in_transaction("default") as tx:
            # Built from dates and constants only.
            await tx.execute_script(
                f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS); "  # noqa: S608
                f"WITH moved AS (DELETE FROM {DEFAULT_PARTITION} "
                f"WHERE occurred_at >= {low} AND occurred_at < {high} RETURNING *) "
                f"INSERT INTO {name} SELECT * FROM moved; "
                f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})"
            )
        created.append(day)
    return created


async def create_ahead(today: date | None = None, days: int = AHEAD_DAYS) -> list[date]:
    """Today's partition and the next `days` days'."""
    start = today or datetime.now(UTC).date()
    return await create_partitions([start + timedelta(days=n) for n in range(days + 1)])


@dataclass(frozen=True, slots=True)
class Dropped:
    day: date
    # pg_class's estimate: counting a day of rows exactly would cost what dropping it saves.
    estimated_rows: int


async def drop_before(cutoff: datetime) -> list[Dropped]:
    """Drop every partition whose whole day is older than `cutoff`."""
    conn = connection()
    dropped = []
    for day in await partition_days(conn):
        end = datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
        if end > cutoff:
            break
        name = partition_name(day)
        rows = await conn.execute_query_dict(
            "SELECT reltuples::bigint AS n FROM pg_class WHERE relname = $1", [name]
        )
        await conn.execute_script(f"DROP TABLE {name}")
        dropped.append(Dropped(day, max(int(rows[0]["n"]), 0) if rows else 0))
    return dropped


async def delete_default_before(cutoff: datetime, batch: int) -> int:
    """Delete the default partition's rows older than `cutoff`, `batch` at a time (it holds only
    reports outside every day's partition, so it stays small)."""
    conn = connection()
    deleted = 0
    while True:
        rows = await conn.execute_query_dict(
            f"WITH gone AS (DELETE FROM {DEFAULT_PARTITION} WHERE ctid IN "  # noqa: S608
            f"(SELECT ctid FROM {DEFAULT_PARTITION} WHERE occurred_at < $1 LIMIT $2) "
            "RETURNING 1) SELECT count(*) AS n FROM gone",
            [cutoff, batch],
        )
        count = int(rows[0]["n"])
        deleted += count
        if count < batch:
            return deleted
