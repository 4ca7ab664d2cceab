"""Login history at hosting volume: on PostgreSQL login_event is partitioned by day, retention
drops whole days, and the migration that partitions it keeps every row. SQLite keeps one table:
the same behaviour is checked there without the partitions."""

import asyncio
import re
import sqlite3
import sys
from datetime import UTC, datetime, time, timedelta

import asyncpg
import pytest
from tortoise.transactions import in_transaction

from api.db import connection
from api.models import Domain, LoginEvent
from api.services import login_history, login_partitions
from api.services.login_sql import PG_REPORT
from tests.conftest import Factory, GraphQLClient, fresh_postgres_database
from tests.servers import run_cli

REPORT = """
mutation($e: String!, $at: DateTime) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: EWS, occurredAt: $at}) { allowed }
}
"""
TODAY = datetime.now(UTC).date()


def midday(days_ago: float) -> datetime:
    return datetime.combine(TODAY, time(12), tzinfo=UTC) - timedelta(days=days_ago)


async def where(event_id: int) -> str:
    """The partition holding the event (PostgreSQL)."""
    rows = await connection().execute_query_dict(
        "SELECT tableoid::regclass::text AS part FROM login_event WHERE id = $1", [event_id]
    )
    return str(rows[0]["part"])


async def report(gql: GraphQLClient, make: Factory, moments: list[datetime]) -> Domain:
    domain = await make.domain()
    await make.account(domain, "alice", enabled=True)
    gateway = await make.gateway()
    for moment in moments:
        await gql.data(REPORT, {"e": "alice@example.com", "at": moment.isoformat()}, token=gateway)
    return domain


async def test_an_old_report_is_kept_and_moves_into_its_day_when_that_is_created(
    gql: GraphQLClient, make: Factory
) -> None:
    await report(gql, make, [midday(250)])
    event = await LoginEvent.get()

    if login_partitions.partitioned():
        assert await where(event.id) == "login_event_default"  # no partition for that day yet
        created = await login_partitions.create_partitions([midday(250).date()])
        assert created == [midday(250).date()]
        assert await where(event.id) == login_partitions.partition_name(midday(250).date())
        assert await login_partitions.create_partitions([midday(250).date()]) == []

    kept = await LoginEvent.get()
    assert (kept.id, kept.occurred_at, kept.count) == (event.id, midday(250), 1)


async def test_retention_drops_whole_days_and_deletes_the_rest(
    gql: GraphQLClient, make: Factory
) -> None:
    # Days before today's midday; the cutoff is 90 days back, at midday.
    ages = [120, 100, 100.2, 90.1, 89.75, 1]
    partitioned = login_partitions.partitioned()
    if partitioned:
        # 90.1 days back has no partition: it is in the default one, deleted by age.
        await login_partitions.create_partitions([midday(120).date(), midday(100).date()])
    await report(gql, make, [midday(age) for age in ages])
    now = midday(0)

    pruned = await login_history.prune_login_events(older_than=timedelta(days=90), now=now)

    remaining = await LoginEvent.all().values_list("occurred_at", flat=True)
    assert sorted(remaining) == [midday(89.75), midday(1)]
    if partitioned:
        # Two whole days dropped; the report of the cutoff's own day before it, deleted.
        dropped = [d.day for d in pruned.dropped]  # with any old day other tests made
        assert {midday(120).date(), midday(100).date()} <= set(dropped)
        assert all(day < midday(90).date() for day in dropped)
        assert pruned.deleted == 1
        days = await login_partitions.partition_days()
        assert midday(120).date() not in days and midday(100).date() not in days
        ahead = {now.date() + timedelta(days=n) for n in range(login_partitions.AHEAD_DAYS + 1)}
        assert ahead <= set(days)
    else:
        assert (pruned.dropped, pruned.deleted) == ([], 4)


async def test_a_day_with_its_partition_goes_whole_once_all_of_it_is_past_the_retention(
    gql: GraphQLClient, make: Factory
) -> None:
    partitioned = login_partitions.partitioned()
    day = midday(90).date()  # the cutoff's own day
    if partitioned:
        await login_partitions.create_partitions([day])
    await report(gql, make, [midday(90.1), midday(89.9)])  # just before and after the cutoff

    pruned = await login_history.prune_login_events(older_than=timedelta(days=90), now=midday(0))
    later = await login_history.prune_login_events(older_than=timedelta(days=90), now=midday(-1))

    if partitioned:
        # The day is kept whole at first (its later half is within the retention), then dropped.
        assert day not in [d.day for d in pruned.dropped] and pruned.deleted == 0
        assert day in [d.day for d in later.dropped]
    else:
        assert (pruned.deleted, later.deleted) == (1, 1)
    assert await LoginEvent.all().count() == 0


async def test_dropping_a_day_of_a_hundred_thousand_events_is_one_statement(
    make: Factory,
) -> None:
    """What makes retention cheap at volume: a day goes in one DROP, not 20 batches."""
    if not login_partitions.partitioned():
        # SQLite deletes in batches of 5,000: README, Performance.
        assert login_history._PRUNE_BATCH == 5_000
        return
    domain = await make.domain()
    day = midday(200).date()
    await login_partitions.create_partitions([day])
    start = datetime.combine(day, time(), tzinfo=UTC)
    await connection().execute_query(
        "INSERT INTO login_event (domain_id, username, protocol, occurred_at, allowed) "
        "SELECT $1, 'u' || (i % 1000), 'EWS', $2::timestamptz + i * interval '800 ms', true "
        "FROM generate_series(1, 100000) i",
        [domain.id, start],
    )
    await connection().execute_script(f"ANALYZE {login_partitions.partition_name(day)}")

    pruned = await login_history.prune_login_events(older_than=timedelta(days=90))

    ours = [d for d in pruned.dropped if d.day == day]
    assert len(ours) == 1 and 90_000 <= ours[0].estimated_rows <= 110_000
    assert pruned.deleted == 0
    assert await LoginEvent.all().count() == 0


MIGRATE_TO_0008 = (
    "import asyncio, sys\n"
    "from tortoise import Tortoise\n"
    "from tortoise.migrations.api import migrate\n"
    "from api.db import tortoise_config\n"
    "from api.settings import Settings\n"
    "async def main():\n"
    "    config = tortoise_config(Settings(database_url=sys.argv[1]))\n"
    "    try:\n"
    "        await migrate(config=config, target='api.0008_login_coalescing')\n"
    "    finally:\n"
    "        await Tortoise.close_connections()\n"
    "asyncio.run(main())\n"
)
OLD_ROWS = [
    (datetime(2026, 9, 1, 8, tzinfo=UTC), "a"),
    (datetime(2026, 11, 30, 8, tzinfo=UTC), "b"),
]


async def _migrated_to_0008(url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MIGRATE_TO_0008, url, stderr=asyncio.subprocess.PIPE
    )
    _, errors = await process.communicate()
    assert process.returncode == 0, errors.decode()


@pytest.mark.postgres
async def test_the_migration_to_partitions_keeps_every_event_on_postgresql() -> None:
    async with fresh_postgres_database() as url:
        await _migrated_to_0008(url)
        db = await asyncpg.connect(url.replace("postgres://", "postgresql://"))
        try:
            domain = await db.fetchval(
                "INSERT INTO domain (name, mapi_ews_account_management, "
                "mapi_ews_enabled_count, created_at) VALUES ('x.example', "
                "true, 0, now()) RETURNING id"
            )
            for moment, username in OLD_ROWS:
                await db.execute(
                    "INSERT INTO login_event (domain_id, username, protocol, occurred_at, "
                    "allowed, count) VALUES ($1, $2, 'MAPI', $3, true, 3)",
                    domain,
                    username,
                    moment,
                )
            before = await db.fetch("SELECT id, username FROM login_event ORDER BY id")

            await run_cli("migrate", env={"MAPI_EWS_DATABASE_URL": url})

            after = await db.fetch(
                "SELECT id, username, count, tableoid::regclass::text AS part FROM login_event "
                "ORDER BY id"
            )
            new_id = await db.fetchval(
                "INSERT INTO login_event (domain_id, username, protocol, occurred_at, allowed) "
                "VALUES ($1, 'c', 'EWS', now(), true) RETURNING id",
                domain,
            )
        finally:
            await db.close()
    assert [(r["id"], r["username"], r["count"]) for r in after] == [
        (r["id"], r["username"], 3) for r in before
    ]
    assert [r["part"] for r in after] == ["login_event_p20260901", "login_event_p20261130"]
    assert new_id > max(r["id"] for r in before)  # the same sequence goes on


async def test_the_migration_leaves_sqlite_one_table_with_every_event(tmp_path) -> None:
    url = f"sqlite://{tmp_path / 'old.sqlite3'}"
    await _migrated_to_0008(url)
    with sqlite3.connect(tmp_path / "old.sqlite3") as db:
        db.execute(
            "INSERT INTO domain (name, mapi_ews_account_management, mapi_ews_enabled_count,"
            " created_at) VALUES ('x.example', 1, 0, '2026-01-01')"
        )
        for moment, username in OLD_ROWS:
            db.execute(
                "INSERT INTO login_event (domain_id, username, protocol, occurred_at, allowed, "
                "count) VALUES (1, ?, 'MAPI', ?, 1, 3)",
                (username, moment.isoformat()),
            )

    await run_cli("migrate", env={"MAPI_EWS_DATABASE_URL": url})

    with sqlite3.connect(tmp_path / "old.sqlite3") as db:
        rows = db.execute("SELECT username, count FROM login_event ORDER BY id").fetchall()
    assert rows == [("a", 3), ("b", 3)]


async def test_a_report_reads_and_updates_only_its_windows_partitions(make: Factory) -> None:
    """However many days the retention keeps, a report's statement plans and locks the one or
    two partitions its coalescing window covers (each partition more would cost it)."""
    if not login_partitions.partitioned():
        assert login_partitions.partition_name(TODAY).startswith("login_event_p")
        return
    await login_partitions.create_partitions([TODAY - timedelta(days=n) for n in range(1, 40)])
    domain = await make.domain()
    await make.account(domain, "alice", enabled=True)
    now = datetime.now(UTC)
    values = [
        "example.com",
        "alice",
        now,
        "MAPI",
        None,
        None,
        now,
        now - timedelta(minutes=5),
        True,
    ]
    async with in_transaction("default") as tx:
        plan = await tx.execute_query_dict("EXPLAIN " + PG_REPORT, values)
    text = "\n".join(row["QUERY PLAN"] for row in plan)
    touched = set(re.findall(r"login_event_p\d{8}", text))

    assert touched <= {
        login_partitions.partition_name(d) for d in (TODAY, TODAY - timedelta(days=1))
    }
    assert len(await login_partitions.partition_days()) >= 40
