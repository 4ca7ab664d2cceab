"""`python -m bench history`: login history at hosting volume, on PostgreSQL, in databases of
its own (the scale targets; CONTRACT.md, "Login history at hosting scale").

1. A million reports from 10,000 accounts, each client re-authenticating every 36 s for an hour,
   sent as four gateways would send them (recordProtocolLogins, 500 reports a request, each
   gateway reporting its own quarter of the accounts in time order) to one worker with Redis and
   the default coalescing window (300 s). The figure: what they leave in `login_event`, every
   partition with its indexes. Target: under 50 MB. The events' counts must add up to the
   million. Run twice: with no vacuum at all, and with what autovacuum's defaults would do over
   that hour (`_Autovacuum`): PostgreSQL runs autovacuum unless told not to, as this machine's
   and CI's are (their conf.d), and a repeat's update leaves a dead row version behind.
2. A day of 10,000,000 events in its own partition, written with SQL, then removed by
   prune-login-events' own code (api/services/login_history.py). The figure: how long that
   call took. Target: under a second.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime, timedelta
from datetime import time as clock

import asyncpg
import httpx
import orjson

from api import db
from api.models import Account, Domain
from api.services.domains import repair_enabled_counts
from api.services.gateways import create_gateway_token
from api.services.login_history import prune_login_events
from api.services.login_partitions import create_partitions, partition_name
from api.settings import Settings
from bench.common import SECRET, _dsn, fresh_database, save, server, server_env

DOMAIN = "history.example"
ACCOUNTS = 10_000
EVERY = timedelta(seconds=36)
TIMES = 100  # an hour of re-authentications, every 36 s
GATEWAYS = 4
BATCH = 500  # recordProtocolLogins' most
SIZE_TARGET_MB = 50.0
DAY_EVENTS = int(os.environ.get("BENCH_DAY_EVENTS", "10000000"))
DROP_TARGET_MS = 1000.0
REPORTS = (
    "mutation($r: [RecordProtocolLoginInput!]!) "
    "{ recordProtocolLogins(input: {reports: $r}) { results { allowed } userErrors { message } } }"
)


async def _seed(settings: Settings) -> str:
    """The domain's 10,000 accounts, all with MAPI/EWS; a gateway token."""
    await db.migrate_database(settings)
    await db.open_database(settings)
    try:
        domain = await Domain.create(name=DOMAIN)
        now = datetime.now(UTC)
        await Account.bulk_create(
            [
                Account(
                    domain=domain,
                    username=f"user{i:05d}",
                    name=f"User {i}",
                    password_hash="!",  # noqa: S106 - no password: these accounts never sign in
                    mapi_ews_enabled=True,
                    mapi_ews_enabled_at=now,
                )
                for i in range(ACCOUNTS)
            ],
            batch_size=1000,
        )
        await repair_enabled_counts()
        return await create_gateway_token(actor="bench", name="history-gateway")
    finally:
        await db.close_database()


def _report(i: int, at: datetime) -> dict[str, str]:
    """Account i's client: always the same address, name and protocol, as one device is."""
    return {
        "emailAddress": f"user{i:05d}@{DOMAIN}",
        "protocol": "MAPI" if i % 2 == 0 else "EWS",
        "clientAddress": f"198.51.100.{i % 250}",
        "clientName": "Microsoft Outlook 16.0.17928.20114",
        "occurredAt": at.isoformat(),
    }


class _Autovacuum:
    """What autovacuum's defaults would do over the simulated hour: once a simulated minute
    (autovacuum_naptime), VACUUM each partition of login_event whose dead row versions number
    more than 50 + 20% of its rows (autovacuum_vacuum_threshold and _scale_factor), while the
    reports go on. A simulated minute is a sixtieth of the reports."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent = 0
        self.vacuums = 0
        self.done = asyncio.Event()

    async def run(self) -> None:
        conn = await asyncpg.connect(_dsn(self.url))
        minute = ACCOUNTS * TIMES // 60
        try:
            checked = 0
            while not self.done.is_set():
                if self.sent - checked < minute:
                    await asyncio.sleep(0.01)
                    continue
                checked += minute
                due = await conn.fetch(
                    "SELECT s.relname FROM pg_stat_user_tables s "
                    "JOIN pg_inherits i ON i.inhrelid = s.relid "
                    "JOIN pg_class c ON c.oid = s.relid "
                    "WHERE i.inhparent = 'login_event'::regclass "
                    "AND s.n_dead_tup > 50 + 0.2 * greatest(c.reltuples, 0)"
                )
                for (name,) in due:
                    await conn.execute(f"VACUUM {name}")
                    self.vacuums += 1
        finally:
            await conn.close()


async def _gateway(
    http: httpx.AsyncClient, gateway: int, start: datetime, progress: _Autovacuum | None
) -> None:
    """One gateway's quarter of the accounts, in time order, BATCH reports a request."""
    mine = range(gateway, ACCOUNTS, GATEWAYS)
    reports = [
        _report(i, start + n * EVERY + EVERY * i / ACCOUNTS) for n in range(TIMES) for i in mine
    ]
    for first in range(0, len(reports), BATCH):
        body = {"query": REPORTS, "variables": {"r": reports[first : first + BATCH]}}
        answer = (await http.post("/graphql", content=orjson.dumps(body))).json()
        payload = answer["data"]["recordProtocolLogins"]
        assert not answer.get("errors") and not payload["userErrors"], answer
        assert all(result["allowed"] for result in payload["results"]), answer
        if progress is not None:
            progress.sent += len(payload["results"])


async def _send(base: str, token: str, autovacuum: _Autovacuum | None) -> float:
    """Every report, the four gateways at once; the seconds it took."""
    start = datetime.now(UTC) - TIMES * EVERY - timedelta(minutes=1)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=120) as http:
        began = time.perf_counter()
        vacuuming = asyncio.create_task(autovacuum.run()) if autovacuum else None
        try:
            await asyncio.gather(*(_gateway(http, g, start, autovacuum) for g in range(GATEWAYS)))
        finally:
            if autovacuum is not None and vacuuming is not None:
                autovacuum.done.set()
                await vacuuming
        return time.perf_counter() - began


_SIZE = (
    "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::bigint AS bytes FROM pg_inherits "
    "WHERE inhparent = 'login_event'::regclass"
)


async def _history_size(url: str) -> tuple[int, float]:
    """The events, and what they take (MB) with their indexes."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        events, counted = await conn.fetchrow(
            "SELECT count(*), sum(count)::bigint FROM login_event"
        )
        size = await conn.fetchval(_SIZE)
    finally:
        await conn.close()
    assert counted == ACCOUNTS * TIMES, f"{counted} reports counted on the events"
    return events, size / 2**20


async def _fill_day(url: str, day: datetime) -> None:
    """DAY_EVENTS events spread over `day`, in its partition, as a busy day leaves them."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(
            "INSERT INTO login_event (domain_id, account_id, username, protocol, occurred_at, "
            "client_address, client_name, allowed, count, last_occurred_at) "
            "SELECT a.domain_id, a.id, a.username, "
            "CASE WHEN i % 2 = 0 THEN 'MAPI' ELSE 'EWS' END, t, '198.51.100.' || (i % 250), "
            "'Microsoft Outlook 16.0.17928.20114', true, 1 + i % 9, t "
            "FROM generate_series(0, $1 - 1) i "
            "CROSS JOIN LATERAL (SELECT $2::timestamptz + (i * 86400.0 / $1) * interval '1 s' "
            "AS t) moment "
            "JOIN account a ON a.username = 'user' || lpad((i % $3)::text, 5, '0')",
            DAY_EVENTS,
            day,
            ACCOUNTS,
        )
        await conn.execute(f"ANALYZE {partition_name(day.date())}")
    finally:
        await conn.close()


async def _drop_day(settings: Settings, url: str) -> dict[str, float]:
    """A day two months back filled, then pruned with a 30-day retention: the time of the call."""
    day = datetime.combine(datetime.now(UTC).date() - timedelta(days=60), clock(), tzinfo=UTC)
    await db.open_database(settings)
    try:
        await create_partitions([day.date()])
        await _fill_day(url, day)
        began = time.perf_counter()
        pruned = await prune_login_events(older_than=timedelta(days=30))
        elapsed = time.perf_counter() - began
    finally:
        await db.close_database()
    assert [gone.day for gone in pruned.dropped] == [day.date()], pruned
    return {"drop_ms": elapsed * 1000, "estimated_rows": pruned.dropped[0].estimated_rows}


def _reports(url: str, redis: bool, autovacuum: bool) -> dict[str, float]:
    """The million reports into the fresh database at `url`: their time, events and size."""
    token = asyncio.run(_seed(Settings(database_url=url, secret_key=SECRET)))
    vacuum = _Autovacuum(url) if autovacuum else None
    with server(server_env(url, redis=redis)) as running:
        seconds = asyncio.run(_send(running.url, token, vacuum))
    events, size = asyncio.run(_history_size(url))
    vacuums = vacuum.vacuums if vacuum else 0
    return {"seconds": seconds, "events": events, "mb": size, "vacuums": vacuums}


def run(redis: bool) -> dict[str, object]:
    reports = ACCOUNTS * TIMES
    print(f"history: {reports:,} reports from {ACCOUNTS:,} clients, no vacuum ...", flush=True)
    with fresh_database() as url:
        bare = _reports(url, redis, autovacuum=False)
    print("history: the same, with autovacuum's defaults ...", flush=True)
    with fresh_database() as url:
        kept = _reports(url, redis, autovacuum=True)
        print(f"history: a day of {DAY_EVENTS:,} events ...", flush=True)
        dropped = asyncio.run(_drop_day(Settings(database_url=url, secret_key=SECRET), url))
    print(
        f"\nLogin history: {reports:,} reports from {ACCOUNTS:,} clients re-authenticating every "
        f"{EVERY.seconds} s for an hour ({GATEWAYS} gateways, {BATCH} reports a request); "
        "PostgreSQL; 1 worker; coalescing window 300 s"
    )
    print(f"{'':<24} {'reports/s':>10} {'events':>8} {'MB':>7} {'bytes/event':>12} {'vacuums':>8}")
    for label, figures in (("no vacuum", bare), ("autovacuum's defaults", kept)):
        print(
            f"{label:<24} {reports / figures['seconds']:>10,.0f} {figures['events']:>8,.0f} "
            f"{figures['mb']:>7.1f} {figures['mb'] * 2**20 / figures['events']:>12,.0f} "
            f"{figures['vacuums']:>8.0f}"
        )
    met = "met" if kept["mb"] < SIZE_TARGET_MB else "not met"
    print(
        f"login_event with its indexes: {kept['mb']:.1f} MB with autovacuum's defaults, "
        f"{bare['mb']:.1f} MB with none (target under {SIZE_TARGET_MB:.0f} MB: {met})"
    )
    fast = "met" if dropped["drop_ms"] < DROP_TARGET_MS else "not met"
    print(
        f"prune-login-events dropping a day of {DAY_EVENTS:,} events "
        f"(estimated {dropped['estimated_rows']:,.0f}): {dropped['drop_ms']:.0f} ms "
        f"(target under {DROP_TARGET_MS:.0f} ms: {fast})"
    )
    data: dict[str, object] = {"no_vacuum": bare, "autovacuum": kept, **dropped}
    save("history", data)
    return data
