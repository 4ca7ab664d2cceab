"""What every benchmark shares: a fresh PostgreSQL database, the seed, the server, wrk."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from api import db
from api.auth.passwords import hash_password
from api.auth.principal import Principal, Role
from api.auth.tokens import issue_access_token
from api.models import Account, Domain, MailProtocol
from api.services.domains import repair_enabled_counts
from api.services.gateways import create_gateway_token
from api.services.login_partitions import create_partitions
from api.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SERVER_URL = os.environ.get(
    "MAPI_EWS_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("MAPI_EWS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SECONDS = int(os.environ.get("BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
SECRET = "bench-secret-key-that-is-long-enough-0123456789"  # noqa: S105 - a throwaway bench key
DOMAIN = "bench.example"
ACCOUNTS = 10_000  # even-numbered ones have MAPI/EWS


@dataclass(frozen=True)
class Seeded:
    admin_token: str
    gateway_token: str


def _dsn(url: str, name: str | None = None) -> str:
    parts = urlsplit(url.replace("postgres://", "postgresql://"))
    return urlunsplit(parts._replace(path=f"/{name}")) if name else urlunsplit(parts)


@contextmanager
def fresh_database() -> Iterator[str]:
    """A new PostgreSQL database (its URL), dropped afterwards."""
    name = f"mapi_ews_bench_{uuid.uuid4().hex[:8]}"

    async def admin(statement: str) -> None:
        conn = await asyncpg.connect(_dsn(SERVER_URL))
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    try:
        yield _dsn(SERVER_URL, name).replace("postgresql://", "postgres://")
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


HISTORY_DAYS = 7
HISTORY_EVENTS = 200_000


async def _login_history(domain_id: int, now: datetime) -> None:
    """A week of login history (HISTORY_EVENTS events, in their days' partitions), as a running
    deployment has: the planner then works from the statistics such a table has, not from those
    of an empty one."""
    # The oldest event is HISTORY_DAYS before now: that day's partition too, or its part of the
    # history would land in the default partition.
    days = [(now - timedelta(days=n)).date() for n in range(HISTORY_DAYS + 1)]
    await create_partitions(days)
    await db.connection().execute_query(
        "INSERT INTO login_event (domain_id, account_id, username, protocol, occurred_at, "
        "client_address, allowed, count, last_occurred_at) "
        "SELECT $1, a.id, a.username, CASE WHEN i % 2 = 0 THEN 'MAPI' ELSE 'EWS' END, t, "
        "'198.51.100.' || (i % 200), a.mapi_ews_enabled, 1, t "
        "FROM generate_series(1, $2) i "
        "CROSS JOIN LATERAL (SELECT $3::timestamptz - (i * $4::float / $2) * interval '1 day' "
        "AS t) moment "
        "JOIN account a ON a.domain_id = $1 "
        "AND a.username = 'user' || lpad((i % 10000)::text, 5, '0')",
        [domain_id, HISTORY_EVENTS, now, float(HISTORY_DAYS)],
    )


async def seed(settings: Settings) -> Seeded:
    """10,000 accounts, half with MAPI/EWS (most with a last login), a week of login history;
    an admin and a gateway."""
    await db.migrate_database(settings)
    await db.open_database(settings)
    try:
        rng = random.Random(1)
        password_hash = await hash_password("bench-password")
        domain = await Domain.create(name=DOMAIN)
        now = datetime.now(UTC)
        rows = []
        for i in range(ACCOUNTS):
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
        await repair_enabled_counts()  # the rows were written directly, as an import would
        await _login_history(domain.id, now)
        await db.connection().execute_script("VACUUM ANALYZE")
        admin = await Account.get(username="user00000")
        principal = Principal(
            Role.DOMAIN_ADMIN, admin.id, f"user00000@{DOMAIN}", domain.id, domain.name
        )
        token, _ = issue_access_token(principal, key=SECRET, lifetime=timedelta(hours=2))
        gateway = await create_gateway_token(actor="bench", name="bench-gateway")
        return Seeded(admin_token=token, gateway_token=gateway)
    finally:
        await db.close_database()


def redis_answers() -> bool:
    async def ping() -> bool:
        client = Redis.from_url(REDIS_URL, socket_connect_timeout=1)
        try:
            return bool(await client.ping())
        except (RedisError, OSError):
            return False
        finally:
            await client.aclose()

    return asyncio.run(ping())


def server_env(database_url: str, *, redis: bool) -> dict[str, str]:
    env = {
        **os.environ,
        "MAPI_EWS_ENV": "production",
        "MAPI_EWS_SECRET_KEY": SECRET,
        "MAPI_EWS_DATABASE_URL": database_url,
        # Budgets too large to run out under wrk: every request still pays for its charge and
        # settlement (in Redis when there is one), which is the cost measured here.
        "MAPI_EWS_COST_LIMITS": ",".join(
            f"{role}=1000000000/1000000000"
            for role in ("DOMAIN_ADMIN", "SYSTEM_ADMIN", "ANONYMOUS")
        ),
    }
    if redis:
        env["MAPI_EWS_REDIS_URL"] = REDIS_URL
        env["MAPI_EWS_REDIS_CHANNEL"] = f"mapi-ews-bench:{uuid.uuid4().hex}"
    return env


@dataclass
class RunningServer:
    url: str
    process: subprocess.Popen[bytes]

    def rss_mb(self) -> float:
        """Resident memory of the server process, from /proc."""
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS"))
        return kib / 1024


@contextmanager
def server(
    env: dict[str, str], stderr: Path | None = None, *, command: tuple[str, ...] = ("bench.server",)
) -> Iterator[RunningServer]:
    """bench/server.py (the app plus its baselines), one uvicorn worker, on a free port; its
    standard error to `stderr` when given. `command`: another module to run, given the port as
    its last argument (`("api", "serve", "--port")`: the app exactly as deployed)."""
    # Ten thousand dashboards need ten thousand sockets on each side.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 32768), hard), hard))
    port = 18000 + random.randrange(1000)
    errors = stderr.open("ab") if stderr is not None else None
    process = subprocess.Popen(
        [sys.executable, "-m", *command, str(port)], cwd=ROOT, env=env, stderr=errors
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield RunningServer(base, process)
    finally:
        process.terminate()
        process.wait()
        if errors is not None:
            errors.close()


def wrk(url: str, script: Path, *, connections: int = CONNECTIONS) -> dict[str, float]:
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{SECONDS}s", "--latency", "-s", str(script), url],
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


def _postgres_pids() -> set[int]:
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == "postgres":
                    pids.add(int(entry.name))
    return pids


def _cpu_seconds(pids: set[int]) -> dict[int, float]:
    """CPU time (user and system) of each process, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            seconds[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return seconds


def measured(url: str, script: Path, server_pid: int | None) -> dict[str, float]:
    """wrk's figures and, given the server's pid, the CPU each request cost the server and
    PostgreSQL (every postgres process on this machine: run nothing else against it)."""
    if server_pid is None:
        return wrk(url, script)
    start_pids = _postgres_pids()
    before = _cpu_seconds(start_pids | {server_pid})
    figures = wrk(url, script)
    after = _cpu_seconds(start_pids | _postgres_pids() | {server_pid})
    spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    requests = figures["rps"] * SECONDS
    figures["server_cpu_ms"] = 1000 * spent.pop(server_pid, 0.0) / requests
    figures["postgres_cpu_ms"] = 1000 * sum(spent.values()) / requests
    return figures


def warm(url: str, script: Path) -> None:
    subprocess.run(
        ["wrk", "-t1", "-c4", "-d2s", "-s", str(script), url], capture_output=True, check=True
    )


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def alternate(
    scripts: dict[str, tuple[str, Path]], *, server_pid: int | None = None
) -> dict[str, dict[str, float]]:
    """Median of ROUNDS rounds; rounds alternate so a slow spell hits every side alike. Given
    the server's pid, each figure also says what a request cost in CPU (`measured`)."""
    for url, script in scripts.values():
        warm(url, script)
    rounds: dict[str, list[dict[str, float]]] = {label: [] for label in scripts}
    for _ in range(ROUNDS):
        for label, (url, script) in scripts.items():
            rounds[label].append(measured(url, script, server_pid))
    return {label: median(runs) for label, runs in rounds.items()}


def lua(
    directory: Path, name: str, method: str, body: str | None, token: str, extra: str = ""
) -> Path:
    path = directory / f"{name}.lua"
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Authorization"] = "Bearer {token}"']
    if body is not None:
        lines += [
            'wrk.headers["Content-Type"] = "application/json"',
            f"wrk.body = {json.dumps(body)}",
        ]
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def table(results: dict[str, dict[str, float]]) -> None:
    cpu = all("server_cpu_ms" in figures for figures in results.values())
    extra = f" {'server CPU ms':>14} {'PostgreSQL CPU ms':>18}" if cpu else ""
    print(f"{'endpoint':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}{extra}")
    for label, figures in results.items():
        rps, p50, p99 = figures["rps"], figures["p50_ms"], figures["p99_ms"]
        line = f"{label:<12} {rps:>9.0f} {p50:>8.2f} {p99:>8.2f}"
        if cpu:
            line += f" {figures['server_cpu_ms']:>14.2f} {figures['postgres_cpu_ms']:>18.2f}"
        print(line)


def save(name: str, data: object) -> None:
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(data, indent=2))
