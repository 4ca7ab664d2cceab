"""`python -m bench clients`: mapiEwsClients(days: 30) over a domain with 2,000,000 login events
in its window, on PostgreSQL (target: under 300 ms), in a database of its own.

The events spread over 30 days: 60,000 usernames, 1,050 client names (builds of a few clients),
a sixth of them refused; about 640,000 distinct (client, username) pairs, far more than a real
domain has, so the distinct-account count is the hard case. Measured in one run:

- the same answer straight from login_event (the GROUP BY SQLite still runs): the baseline;
- the roll-up of the 30 days as a new deployment's first sweep does it (once; a running one
  rolls up a few minutes of events at a time);
- mapiEwsClients(days: 30) through the server, median of 25, against mapiEwsUsage (a request
  of one indexed row) in the same run.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, date, datetime, timedelta

import httpx

from api import db
from api.auth.principal import Principal, Role
from api.auth.tokens import issue_access_token
from api.models import Account, Domain
from api.services import client_rollup, login_partitions
from api.services.client_access import CLIENTS_FROM_EVENTS, MAX_CLIENTS
from api.services.logins import DEFAULT_COALESCE
from api.settings import Settings
from bench.common import DOMAIN, SECRET, fresh_database, save, server, server_env

EVENTS = 2_000_000
USERNAMES = 60_000
DAYS = 30
REPEAT = 25
WARMUP = 3
TARGET_MS = 300.0
CLIENTS = "{ mapiEwsClients(days: 30) { clientName protocol accounts logins refusedLogins } }"
USAGE = "{ mapiEwsUsage { enabled limit available } }"


async def _seed(settings: Settings) -> str:
    await db.migrate_database(settings)
    await db.open_database(settings)
    try:
        domain = await Domain.create(name=DOMAIN)
        admin = await Account.create(
            domain=domain,
            username="admin",
            name="Admin",
            password_hash="!",  # noqa: S106 (no password: the bench signs its token)
            is_domain_admin=True,
        )
        today = datetime.now(UTC).date()
        await login_partitions.create_partitions(
            [today - timedelta(days=n) for n in range(-2, DAYS + 1)]
        )
        # Events spread evenly over the window, none in the future; client names per username
        # (a few clients) and per event (their builds).
        await db.connection().execute_query(
            "INSERT INTO login_event (domain_id, username, protocol, occurred_at, "
            "client_address, allowed, refusal, client_name, count, last_occurred_at) "
            "SELECT $1, 'user' || (g % $3), CASE WHEN g % 3 = 0 THEN 'EWS' ELSE 'MAPI' END, t, "
            "'10.0.' || (g % 250) || '.' || (g % 200), g % 6 <> 0, "
            "CASE WHEN g % 6 = 0 THEN 'CLIENT_NOT_ALLOWED' END, "
            "'Client/' || ((g % $3) % 7 + (g % 29) * (g % 7 = 0)::int) || '.0 build ' "
            "|| ((g / 7) % 30), 1 + g % 5, t "
            "FROM generate_series(1, $2) g "
            "CROSS JOIN LATERAL (SELECT now() - ((g::float / $2) * $4) * interval '1 day' AS t) m",
            [domain.id, EVENTS, USERNAMES, float(DAYS) - 0.01],
        )
        await db.connection().execute_script("VACUUM ANALYZE")
        principal = Principal(
            Role.DOMAIN_ADMIN, admin.id, f"admin@{DOMAIN}", domain.id, domain.name
        )
        token, _ = issue_access_token(principal, key=SECRET, lifetime=timedelta(hours=2))
        return token
    finally:
        await db.close_database()


async def _from_events_and_roll_up(settings: Settings) -> tuple[float, float, int]:
    """The baseline (median of 3, ms), then the first roll-up (s) and the days it rolled."""
    await db.open_database(settings)
    try:
        conn = db.connection()
        first: date = datetime.now(UTC).date() - timedelta(days=DAYS)
        since = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
        times = []
        for _ in range(3):
            started = time.perf_counter()
            await conn.execute_query_dict(
                CLIENTS_FROM_EVENTS.format(p="$"), [1, since, MAX_CLIENTS]
            )
            times.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        rolled = await client_rollup.roll_up(DEFAULT_COALESCE)
        roll_seconds = time.perf_counter() - started
        await conn.execute_script("ANALYZE")  # as autovacuum would, on tables this new
        return statistics.median(times), roll_seconds, len(rolled.days)
    finally:
        await db.close_database()


def _median_ms(base: str, token: str, query: str) -> float:
    times = []
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
        for n in range(WARMUP + REPEAT):
            started = time.perf_counter()
            body = http.post("/graphql", json={"query": query}, timeout=60).json()
            elapsed = (time.perf_counter() - started) * 1000
            assert "errors" not in body, body
            if n >= WARMUP:
                times.append(elapsed)
    return statistics.median(times)


def run(redis: bool) -> dict[str, object]:
    with fresh_database() as url:
        settings = Settings(database_url=url, secret_key=SECRET)
        print(f"\nclients: seeding {EVENTS:,} login events over {DAYS} days ...", flush=True)
        token = asyncio.run(_seed(settings))
        from_events, roll_seconds, days = asyncio.run(_from_events_and_roll_up(settings))
        with server(server_env(url, redis=redis)) as running:
            clients = _median_ms(running.url, token, CLIENTS)
            usage = _median_ms(running.url, token, USAGE)
    met = clients < TARGET_MS
    print(
        f"\nmapiEwsClients(days: 30), {EVENTS:,} events in the window; PostgreSQL; 1 worker; "
        f"median of {REPEAT}\n"
        f"  from login_event (SQL only, the baseline)  {from_events:8.1f} ms\n"
        f"  first roll-up of {days} days                  {roll_seconds:8.1f} s (once)\n"
        f"  mapiEwsClients, rolled up                   {clients:8.1f} ms "
        f"(under {TARGET_MS:.0f} ms: {'met' if met else 'NOT met'}); "
        f"{from_events / clients:.0f}x faster than from login_event\n"
        f"  mapiEwsUsage, same run                      {usage:8.1f} ms "
        f"(mapiEwsClients is {clients / usage:.1f}x it)"
    )
    data = {
        "from_events_ms": from_events,
        "first_roll_up_s": roll_seconds,
        "clients_ms": clients,
        "usage_ms": usage,
        "target_met": met,
    }
    save("clients", data)
    return data
