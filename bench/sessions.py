"""Gateways confirming sessions: touchProtocolSessions of 1,000 ids while 100,000 sessions are
open (seeded with SQL, twenty per enabled account), median latency of 25 calls through the
server, against a `{ __typename }` request over the same connection in the same run."""

from __future__ import annotations

import asyncio
import random
import statistics
import time

import asyncpg
import httpx

from bench.common import Seeded, _dsn, save

OPEN = 100_000
BATCH = 1000
CALLS = 25
TOUCH = (
    "mutation($ids: [String!]!) "
    "{ touchProtocolSessions(input: {sessionIds: $ids}) { touched endNow } }"
)
_SEED = """
INSERT INTO protocol_session (gateway_id, session_id, domain_id, account_id, username, protocol,
    client_address, client_name, started_at, last_seen_at, expires_at)
SELECT g.id, 'open-' || n, a.domain_id, a.id, a.username, 'MAPI', '198.51.100.7',
    $2, now(), now(), now() + interval '1 hour'
FROM generate_series(0, $1 - 1) AS n
JOIN account a ON a.username = 'user' || lpad(((n % 5000) * 2)::text, 5, '0')
CROSS JOIN (SELECT id FROM gateway_token WHERE name = 'bench-gateway') AS g
"""


async def _seed(url: str, count: int, client_name: str) -> None:
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute("DELETE FROM protocol_session")
        await conn.execute(_SEED, count, client_name)
        await conn.execute("VACUUM ANALYZE protocol_session")
    finally:
        await conn.close()


def seed_sessions(url: str, count: int, client_name: str = "Microsoft Outlook 16.0") -> None:
    """`count` open sessions of the bench gateway, spread over the enabled accounts."""
    asyncio.run(_seed(url, count, client_name))


def _median_ms(http: httpx.Client, body: dict[str, object], check: str) -> float:
    timings = []
    for _ in range(CALLS + 3):  # the first three warm the connection and the caches
        started = time.perf_counter()
        answer = http.post("/graphql", json=body).json()
        timings.append((time.perf_counter() - started) * 1000)
        assert check in answer.get("data", {}), answer
    return statistics.median(timings[3:])


def run(base: str, seeded: Seeded, database_url: str) -> dict[str, object]:
    seed_sessions(database_url, OPEN)
    rng = random.Random(3)
    headers = {"Authorization": f"Bearer {seeded.gateway_token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        ids = [f"open-{n}" for n in rng.sample(range(OPEN), BATCH)]
        first = http.post("/graphql", json={"query": TOUCH, "variables": {"ids": ids}}).json()
        assert first["data"]["touchProtocolSessions"]["touched"] == BATCH, first
        touch = _median_ms(
            http, {"query": TOUCH, "variables": {"ids": ids}}, "touchProtocolSessions"
        )
        floor = _median_ms(http, {"query": "{ __typename }"}, "__typename")
    print(
        f"\ntouchProtocolSessions of {BATCH:,} ids with {OPEN:,} sessions open; PostgreSQL; "
        f"1 worker; median of {CALLS} calls"
    )
    print(
        f"touch: {touch:.1f} ms (target under 50 ms); {{ __typename }} on the same connection: "
        f"{floor:.1f} ms"
    )
    data = {"touch_ms": touch, "typename_ms": floor, "open": OPEN, "batch": BATCH}
    save("sessions", data)
    return data
