"""sync-accounts at hosting scale: a file of BENCH_SYNC_LINES accounts (100,000 by default;
1,000,000 for the target's figure, some minutes at today's rate) into an empty domain, against
PostgreSQL's own COPY of the same rows into a bare table in the same database, side by side;
then the same file again (nothing changes: no row may be written). Each run is `mapi-ews-admin
sync-accounts` in a process of its own, whose peak RSS is read from the kernel (getrusage of the
finished child: ru_maxrss)."""

from __future__ import annotations

import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg

from bench.common import ROOT, SECRET, _dsn, fresh_database, save

LINES = int(os.environ.get("BENCH_SYNC_LINES", "100000"))
DOMAIN = "sync.example"
_WRITES = (
    "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) AS n FROM pg_stat_user_tables "
    "WHERE relname IN ('account', 'account_recency', 'audit_entry')"
)


def _write(path: Path) -> None:
    with path.open("w") as out:
        out.write("username,name,externalId,isDomainAdmin\n")
        for i in range(LINES):
            out.write(f"user{i:07d},User {i},guid-{i:07d},{'true' if i % 1000 == 0 else ''}\n")


def _command(env: dict[str, str], path: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one sync-accounts run, in a process of its own."""
    started = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "api", "sync-accounts", DOMAIN, str(path)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    assert run.returncode == 0, run.stderr[-2000:]
    # The largest of this process's finished children so far: the sync runs are the only ones
    # of their size, each measured after the one before.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(run.stdout.strip().splitlines()[-1])
    return seconds, peak


async def _sql(url: str, statement: str) -> int:
    conn = await asyncpg.connect(_dsn(url))
    try:
        return int(await conn.fetchval(statement))
    finally:
        await conn.close()


async def _copy(url: str, path: Path) -> tuple[float, float]:
    """(seconds of COPY into a bare table, seconds of inserting the same rows into the account
    table with one INSERT ... SELECT, rolled back): the second is the floor any sync meets,
    the account table's own indexes (search among them) and recency trigger."""
    conn = await asyncpg.connect(_dsn(url))
    try:
        await conn.execute(
            "CREATE TABLE bare (username varchar(64), name varchar(256), "
            "external_id varchar(255), is_domain_admin varchar(8))"
        )
        started = time.perf_counter()
        await conn.copy_to_table("bare", source=str(path), format="csv", header=True)
        copied = time.perf_counter() - started
        domain = await conn.fetchval("SELECT id FROM domain WHERE name = $1", DOMAIN)
        started = time.perf_counter()
        async with conn.transaction():
            await conn.execute(
                "INSERT INTO account (domain_id, username, name, external_id, password_hash, "
                "is_domain_admin, mapi_ews_enabled, created_at) SELECT $1, username, name, "
                "external_id, '', coalesce(is_domain_admin = 'true', false), false, now() "
                "FROM bare",
                domain,
            )
            inserted = time.perf_counter() - started
            raise _Undo
    except _Undo:
        await conn.execute("VACUUM ANALYZE account")  # the floor's dead rows
        return copied, inserted
    finally:
        await conn.close()


class _Undo(Exception):
    """Rolls the floor's INSERT back."""


def run() -> dict[str, object]:
    with fresh_database() as url, tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "accounts.csv"
        _write(path)
        env = {**os.environ, "MAPI_EWS_DATABASE_URL": url, "MAPI_EWS_SECRET_KEY": SECRET}
        env.pop("MAPI_EWS_REDIS_URL", None)
        subprocess.run(
            [sys.executable, "-m", "api", "migrate"],
            env=env,
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        create = (
            "INSERT INTO domain (name, mapi_ews_account_management, mapi_ews_enabled_count, "
            "created_at) VALUES ('sync.example', true, 0, now()) RETURNING id"
        )
        asyncio.run(_sql(url, create))
        copy_seconds, floor_seconds = asyncio.run(_copy(url, path))
        first, first_rss = _command(env, path)
        time.sleep(1.0)  # pg_stat counts reach the view within a second of a commit
        written = asyncio.run(_sql(url, _WRITES))
        second, second_rss = _command(env, path)
        time.sleep(1.0)
        again = asyncio.run(_sql(url, _WRITES)) - written
    copy_rate, sync_rate = LINES / copy_seconds, LINES / first
    print(
        f"\nsync-accounts of {LINES:,} lines into an empty domain: {first:.1f} s "
        f"({sync_rate:,.0f} lines/s), peak RSS {first_rss:.0f} MB; "
        f"COPY of the same rows into a bare table: {copy_seconds:.1f} s ({copy_rate:,.0f}/s)"
    )
    print(
        f"sync / COPY rate: {sync_rate / copy_rate:.3f} (target 0.3 or more); the same file "
        f"again: {second:.1f} s, {again} rows written, peak RSS {second_rss:.0f} MB"
    )
    print(
        f"the floor, one INSERT ... SELECT of the same rows into the account table (its indexes "
        f"and trigger), rolled back: {floor_seconds:.1f} s, {copy_seconds / floor_seconds:.3f} of "
        f"COPY's rate; sync / floor rate: {floor_seconds / first:.2f}"
    )
    data = {
        "lines": LINES,
        "copy_seconds": copy_seconds,
        "first_seconds": first,
        "second_seconds": second,
        "ratio": sync_rate / copy_rate,
        "floor_seconds": floor_seconds,
        "ratio_to_floor": floor_seconds / first,
        "peak_rss_mb": max(first_rss, second_rss),
        "rows_written_again": again,
    }
    save("sync", data)
    return data
