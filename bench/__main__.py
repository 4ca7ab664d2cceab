"""`make bench`: the MAPI/EWS list on PostgreSQL against its baseline, measured in one run.

A domain of 10,000 accounts (5,000 with MAPI/EWS, most with a last login) in a fresh PostgreSQL
database; one uvicorn worker; wrk (Debian's package) as the load generator in its own process.
Prints requests/s and p50/p99 latency for the baseline and for GraphQL, and their ratio.

Environment: MAPI_EWS_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
BENCH_SECONDS (default 8) per round, BENCH_ROUNDS (default 3), BENCH_CONNECTIONS (default 8).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx

from api import db
from api.auth.passwords import hash_password
from api.auth.principal import Principal, Role
from api.auth.tokens import issue_access_token
from api.models import Account, Domain, MailProtocol
from api.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get(
    "MAPI_EWS_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
SECRET = "bench-secret-key-that-is-long-enough-0123456789"  # noqa: S105 - a throwaway bench key
LIST_QUERY = (
    "{ mapiEwsAccounts(first: 50, orderBy: {field: LAST_LOGIN, direction: DESC}) "
    "{ totalCount pageInfo { hasNextPage } "
    "edges { cursor node { username name lastLogin lastLoginProtocol } } } }"
)


def _dsn(url: str, name: str | None = None) -> str:
    parts = urlsplit(url.replace("postgres://", "postgresql://"))
    return urlunsplit(parts._replace(path=f"/{name}")) if name else urlunsplit(parts)


async def seed(settings: Settings) -> str:
    """Fills the database; returns a domain administrator's access token."""
    await db.migrate_database(settings)
    await db.open_database(settings)
    try:
        rng = random.Random(1)
        password_hash = await hash_password("bench-password")
        domain = await Domain.create(name="bench.example")
        now = datetime.now(UTC)
        rows = []
        for i in range(10_000):
            enabled = i % 2 == 0
            last = (
                now - timedelta(minutes=rng.randint(1, 43_200))
                if enabled and rng.random() < 0.8
                else None
            )
            protocol = rng.choice(list(MailProtocol)) if last else None
            rows.append(
                Account(
                    domain=domain,
                    username=f"user{i:05d}",
                    name=f"User {i}",
                    password_hash=password_hash,
                    mapi_ews_enabled=enabled,
                    mapi_ews_enabled_at=now if enabled else None,
                    last_login=last,
                    last_login_protocol=protocol,
                    is_domain_admin=i == 0,
                )
            )
        await Account.bulk_create(rows, batch_size=1000)
        await db.connection().execute_script("VACUUM ANALYZE")
        principal = Principal(
            Role.DOMAIN_ADMIN, rows[0].id or 1, "user00000@bench.example", domain.id, domain.name
        )
        token, _ = issue_access_token(principal, key=SECRET, lifetime=timedelta(hours=2))
        return token
    finally:
        await db.close_database()


def wrk(url: str, script: Path) -> dict[str, float]:
    result = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    )
    out = result.stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{url}: {errors.group(1)} failed responses\n{out}")

    def millis(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rate, out
    return {"rps": float(rate.group(1)), "p50_ms": millis("50%"), "p99_ms": millis("99%")}


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def lua(directory: Path, name: str, method: str, body: str | None, token: str) -> Path:
    path = directory / f"{name}.lua"
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Authorization"] = "Bearer {token}"']
    if body is not None:
        lines += [
            'wrk.headers["Content-Type"] = "application/json"',
            f"wrk.body = {json.dumps(body)}",
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench: wrk is needed (Debian: apt-get install wrk)")
    name = f"mapi_ews_bench_{uuid.uuid4().hex[:8]}"

    async def create() -> None:
        conn = await asyncpg.connect(_dsn(SERVER_URL))
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(_dsn(SERVER_URL))
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(create())
    env = {
        **os.environ,
        "MAPI_EWS_ENV": "production",
        "MAPI_EWS_SECRET_KEY": SECRET,
        "MAPI_EWS_DATABASE_URL": _dsn(SERVER_URL, name).replace("postgresql://", "postgres://"),
    }
    server: subprocess.Popen[bytes] | None = None
    try:
        settings = Settings(database_url=env["MAPI_EWS_DATABASE_URL"], secret_key=SECRET)
        print("seeding 10,000 accounts ...", flush=True)
        token = asyncio.run(seed(settings))
        port = 18000 + random.randrange(1000)
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.server", str(port)], cwd=ROOT, env=env
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        graphql_body = json.dumps({"query": LIST_QUERY})
        check = httpx.post(
            f"{base}/graphql",
            content=graphql_body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ).json()
        assert len(check["data"]["mapiEwsAccounts"]["edges"]) == 50, check
        with tempfile.TemporaryDirectory() as scratch:
            directory = Path(scratch)
            scripts = {
                "baseline": (f"{base}/baseline", lua(directory, "baseline", "GET", None, token)),
                "graphql": (
                    f"{base}/graphql",
                    lua(directory, "graphql", "POST", graphql_body, token),
                ),
            }
            for url, script in scripts.values():  # warm caches and the pool
                subprocess.run(
                    ["wrk", "-t1", "-c4", "-d2s", "-s", str(script), url],
                    capture_output=True,
                    check=True,
                )
            # Rounds alternate so that a slow spell of a shared machine hits both sides alike.
            rounds: dict[str, list[dict[str, float]]] = {label: [] for label in scripts}
            for _ in range(ROUNDS):
                for label, (url, script) in scripts.items():
                    rounds[label].append(wrk(url, script))
            results = {label: _median(runs) for label, runs in rounds.items()}
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        asyncio.run(drop())

    ratio = results["graphql"]["rps"] / results["baseline"]["rps"]
    print(
        f"\nmapiEwsAccounts(first: 50) by last login; 10,000 accounts, 5,000 enabled; PostgreSQL;"
        f" 1 worker; wrk -t1 -c{CONNECTIONS} -d{SECONDS}s; median of {ROUNDS} alternating rounds"
    )
    print(f"{'endpoint':<10} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for label, figures in results.items():
        rps, p50, p99 = figures["rps"], figures["p50_ms"], figures["p99_ms"]
        print(f"{label:<10} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f}")
    print(f"graphql / baseline throughput: {ratio:.2f} (target 0.50 or more)")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "list.json").write_text(json.dumps({"results": results, "ratio": ratio}, indent=2))


if __name__ == "__main__":
    main()
