"""`make bench`: every figure against a baseline measured in the same run, on PostgreSQL.

    python -m bench [list] [ingest] [policy] [sessions] [fanout] [growth] [history] [sync]
                    [clients] [accesslog] [ceiling] [cluster]
    (all: none)

A fresh PostgreSQL database with 10,000 accounts (5,000 with MAPI/EWS), grown to 1,000,000 by
`growth`; one uvicorn worker
(bench/server.py: the app plus its baselines) with Redis for events, as deployed; wrk (Debian's
package) as the HTTP load generator in its own process. `history` (bench/history.py) has a
database of its own: a million coalesced reports, and a day of 10,000,000 events dropped;
`clients` (bench/clients.py) too: 2,000,000 events in mapiEwsClients' 30 days; `cluster`
(bench/cluster.py) needs no database: a local Redis Cluster, 100 processes, 10,000 domains.
Results also go to bench/results/.

Environment: MAPI_EWS_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
MAPI_EWS_BENCH_REDIS_URL (default redis://127.0.0.1:6379/0), BENCH_SECONDS (8) per round,
BENCH_ROUNDS (3), BENCH_CONNECTIONS (8), BENCH_SUBSCRIBERS (10000),
BENCH_FANOUT_PROCESSES (2), BENCH_REPORTS (20),
BENCH_DAY_EVENTS (10000000).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

from api.settings import Settings
from bench import (
    access_log,
    ceiling,
    clients,
    cluster,
    fanout,
    growth,
    history,
    ingest,
    list_query,
    policy,
    sessions,
    sync,
)
from bench.common import REDIS_URL, SECRET, fresh_database, redis_answers, seed, server, server_env

PARTS = (
    "list",
    "ingest",
    "policy",
    "sessions",
    "fanout",
    "growth",
    "history",
    "sync",
    "clients",
    "accesslog",
    "ceiling",
    "cluster",
)


def main(argv: list[str]) -> None:
    parts = argv or list(PARTS)
    unknown = set(parts) - set(PARTS)
    if unknown:
        sys.exit(f"bench: unknown part(s) {', '.join(sorted(unknown))}; choose from {PARTS}")
    with_wrk = {"list", "ingest", "policy", "accesslog", "ceiling"}
    if shutil.which("wrk") is None and with_wrk & set(parts):
        sys.exit("bench: wrk is needed (Debian: apt-get install wrk)")
    redis = redis_answers()
    if not redis:
        print(f"bench: no Redis at {REDIS_URL}: events stay in process (embedded mode)")
    if set(parts) - {"history", "sync", "clients", "cluster"}:
        _seeded_parts(parts, redis)
    if "history" in parts:
        history.run(redis)
    if "sync" in parts:
        sync.run()
    if "clients" in parts:
        clients.run(redis)
    if "cluster" in parts:
        cluster.run()


def _seeded_parts(parts: list[str], redis: bool) -> None:
    """The parts that share the seeded database of 10,000 accounts."""
    with fresh_database() as url, tempfile.TemporaryDirectory() as scratch:
        print("seeding 10,000 accounts ...", flush=True)
        seeded = asyncio.run(seed(Settings(database_url=url, secret_key=SECRET)))
        env = server_env(url, redis=redis)
        if {"list", "ingest", "policy", "sessions"} & set(parts):
            with server(env) as running:
                if "list" in parts:
                    list_query.run(running.url, seeded, Path(scratch))
                if "ingest" in parts:
                    ingest.run(running.url, seeded, Path(scratch), url, running.process.pid)
                if "policy" in parts:
                    policy.run(running.url, seeded, Path(scratch), url, running.process.pid)
                if "sessions" in parts:
                    sessions.run(running.url, seeded, url)
        if "accesslog" in parts:
            access_log.run(env, seeded, Path(scratch))
        if "ceiling" in parts:
            ceiling.run(env, seeded, Path(scratch))
        if "fanout" in parts:
            fanout.run(env, seeded)
        if "growth" in parts:  # last: it grows the database the others measured
            with server(env) as running:
                growth.run(running, seeded, url)


if __name__ == "__main__":
    main(sys.argv[1:])
