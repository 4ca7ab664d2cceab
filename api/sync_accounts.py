"""`mapi-ews-admin sync-accounts DOMAIN FILE [--remove-missing] [--dry-run]`: make a domain's
accounts match the mail server's full list of them.

The file is CSV with a header (username,name,externalId,isDomainAdmin; only username is needed)
or JSON Lines with the same keys. It is read as a stream, 5,000 lines at a time, each batch applied
as upsertAccounts applies its records (api/services/provisioning.py: the same rules, the same
audit), all in one transaction under the domain's lock: a bad line anywhere (named by its
number) changes nothing, and `--dry-run` runs everything and then rolls it back, so the plan it
prints is exactly what a real run does. Which usernames the file names is kept in a temporary
table, not in memory: a second appearance of a username or externalId is a bad line, and
`--remove-missing` removes every account of the domain the file does not name (as
removeAccounts does: seats freed, sessions told to end). An account whose username a line takes
is parked (api.services.provisioning.parking_name) for a later line to rename, so names swap
however far apart the file lists them; one still parked at the end refuses the file. Memory does
not grow with the file.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction
from tqdm import tqdm

from api import db
from api.account_files import read_records
from api.db import is_sqlite
from api.errors import UserErrors
from api.events import EventBus, event_bus
from api.models import Account, Domain, ProtocolSession
from api.services import provisioning, removals, sign_ins
from api.services.domains import Usage
from api.services.event_payloads import PAYLOADS
from api.services.provisioning import AccountRecord, RecordError
from api.settings import Settings

# Lines applied at once (each batch: a few statements whatever its size), and accounts removed
# at once with --remove-missing.
LINES_AT_ONCE = 5000
BATCH = 500
MAX_REPORTED = 20  # bad lines printed; the rest are counted


@dataclass(slots=True)
class Summary:
    created: int = 0
    updated: int = 0
    renamed: int = 0
    unchanged: int = 0
    removed: int = 0
    seats_freed: int = 0
    sessions_ending: int = 0
    roles_changed: bool = False
    bad_lines: list[str] = field(default_factory=list)
    bad_count: int = 0

    def bad(self, line: int, message: str) -> None:
        self.bad_count += 1
        if len(self.bad_lines) < MAX_REPORTED:
            self.bad_lines.append(f"line {line}: {message}")


class Refused(Exception):
    """The file has bad lines: nothing was changed."""

    def __init__(self, summary: Summary) -> None:
        super().__init__(f"{summary.bad_count} bad line(s)")
        self.summary = summary


class _RollBack(Exception):
    """A dry run's end: everything it did is undone."""


Plan = Callable[[str, str], None]
"""Told each change as it is made: (what, whom), e.g. ("create", "alice@example.com")."""


async def sync_accounts(
    *,
    events: EventBus,
    actor: str,
    domain: str,
    lines: Iterator[tuple[int, AccountRecord | str]],
    remove_missing: bool = False,
    dry_run: bool = False,
    plan: Plan | None = None,
    progress: Callable[[], None] | None = None,
) -> Summary:
    """Apply the mail server's list to the domain; Refused for bad lines, UserErrors for no
    such domain: nothing changed then, nor with `dry_run`."""
    summary = Summary()
    tell = plan or (lambda what, whom: None)
    removed: list[tuple[Domain, list[Account], list[ProtocolSession]]] = []
    now = datetime.now(UTC)
    try:
        async with in_transaction("default") as conn:
            row = await provisioning.find_domain(conn, domain)
            seen = _Seen(conn)
            await seen.create()
            batches = 0
            while batch := list(islice(lines, LINES_AT_ONCE)):
                if batches & (batches - 1) == 0 and not is_sqlite(conn):
                    # First and as the domain doubles in this transaction, statistics of it
                    # (ANALYZE sees the transaction's own rows). Without them PostgreSQL took
                    # any index that starts with the domain, and each lookup of a batch read the
                    # whole domain; and statistics that call a table of dead rows empty made the
                    # foreign-key checks of a batch's inserts scan it (a 5,000-line batch took
                    # 49 s after a million rows were deleted).
                    await conn.execute_query("ANALYZE account")
                await _apply(conn, row, batch, seen, summary, tell, actor=actor)
                batches += 1
                if progress is not None:
                    progress()
            for line, parked in await seen.still_parked(row.id):
                summary.bad(
                    line,
                    f"{parked.username}@{row.name} is another account (externalId "
                    f"{parked.external_id!r}) that the file does not list under another "
                    "username: remove or rename it first.",
                )
            if summary.bad_count:
                raise Refused(summary)
            if remove_missing:
                async for accounts in seen.missing(row.id):
                    for account in accounts:
                        tell("remove", f"{account.username}@{row.name}")
                    ending = await removals.remove_in(conn, row, accounts, actor=actor, at=now)
                    summary.removed += len(accounts)
                    summary.seats_freed += sum(1 for a in accounts if a.mapi_ews_enabled)
                    summary.sessions_ending += len(ending)
                    removed.append((row, accounts, ending))
            await seen.drop()
            if dry_run:
                raise _RollBack
    except _RollBack:
        return summary
    if summary.roles_changed:
        await sign_ins.principals_changed(events, row.id)
    for domain_row, accounts, ending in removed:
        used = Usage(
            domain_row.name, domain_row.mapi_ews_enabled_count, domain_row.max_mapi_ews_accounts
        )
        seats = [a for a in accounts if a.mapi_ews_enabled]
        await removals.announce(events, domain_row, seats, used, ending, actor=actor, at=now)
    return summary


async def _apply(
    conn: BaseDBAsyncClient,
    domain: Domain,
    batch: Sequence[tuple[int, AccountRecord | str]],
    seen: _Seen,
    summary: Summary,
    tell: Plan,
    *,
    actor: str,
) -> None:
    """One batch of lines: checked, their names and ids kept, applied unless a line was bad
    (here or before: then the rest is only checked)."""
    records: list[tuple[int, AccountRecord]] = []
    problems: list[tuple[int, str]] = []
    for line, read in batch:
        if isinstance(read, str):
            problems.append((line, read))
            continue
        try:
            records.append((line, provisioning.check_record(read, domain=domain.name)))
        except RecordError as error:
            problems.append((line, f"{error.field}: {error}"))
    problems += await seen.add(records)
    for line, message in sorted(problems):  # in the file's order
        summary.bad(line, message)
    if summary.bad_count or not records:
        return
    try:
        done = await provisioning.apply_records(
            conn, domain, [record for _, record in records], actor=actor, park=True
        )
    except UserErrors as refused:
        for problem in refused.errors:
            index = int(problem.field[2]) if problem.field and len(problem.field) > 2 else 0
            summary.bad(records[index][0], problem.message)
        return
    for what, whom in (
        ("create", done.created),
        ("update", done.updated),
        ("rename", done.renamed),
    ):
        for address in whom:
            tell(what, address)
    summary.created += len(done.created)
    summary.updated += len(done.updated)
    summary.renamed += len(done.renamed)
    summary.unchanged += len(done.unchanged)
    summary.roles_changed |= done.roles_changed
    await seen.park([(records[index][0], parked) for index, parked in done.parked])


class _Seen:
    """The usernames and externalIds the file named so far, with their lines, in temporary
    tables of the sync's transaction (dropped with it)."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.conn = conn
        self.sqlite = is_sqlite(conn)

    async def create(self) -> None:
        # execute_query, not execute_script: SQLite's executescript commits the transaction
        # first, which would make a dry run (or a refused file) keep what came before.
        end = "" if self.sqlite else " ON COMMIT DROP"
        for table, column in (("sync_name", "username"), ("sync_id", "external_id")):
            await self.conn.execute_query(
                f"CREATE TEMPORARY TABLE {table} ({column} VARCHAR(255) PRIMARY KEY, "
                f"line INT NOT NULL){end}"
            )
        await self.conn.execute_query(
            "CREATE TEMPORARY TABLE sync_parked (account_id INT PRIMARY KEY, "
            f"username VARCHAR(255) NOT NULL, external_id VARCHAR(255), line INT NOT NULL){end}"
        )

    async def drop(self) -> None:
        if self.sqlite:
            for table in ("sync_name", "sync_id", "sync_parked"):
                await self.conn.execute_query(f"DROP TABLE temp.{table}")

    async def park(self, parked: Sequence[tuple[int, provisioning.Parked]]) -> None:
        """Keep the accounts a batch parked, with the line that took each one's name."""
        rows = [[a.id, a.username, a.external_id, line] for line, a in parked]
        if rows:
            await self.conn.execute_many(_PARK_SQLITE if self.sqlite else _PARK_POSTGRES, rows)

    async def still_parked(self, domain_id: int) -> list[tuple[int, provisioning.Parked]]:
        """The parked accounts no later line renamed: (the line that took its name, the account
        as it was)."""
        rows = await self.conn.execute_query_dict(
            _STILL_PARKED.replace("$1", "?") if self.sqlite else _STILL_PARKED, [domain_id]
        )
        return [
            (
                int(r["line"]),
                provisioning.Parked(int(r["account_id"]), r["username"], r["external_id"]),
            )
            for r in rows
        ]

    async def add(self, records: Sequence[tuple[int, AccountRecord]]) -> list[tuple[int, str]]:
        """Keep the records' usernames and externalIds: (line, why) for each one named
        before, on an earlier line."""
        problems: list[tuple[int, str]] = []
        for table, what, values in (
            ("sync_name", "username", [(line, r.username) for line, r in records]),
            ("sync_id", "externalId", [(line, r.external_id) for line, r in records]),
        ):
            first: dict[str, int] = {}
            for line, value in values:
                if value is None:
                    continue
                if value in first:  # twice in this batch
                    problems.append((line, f"{what} {value!r} is also on line {first[value]}"))
                else:
                    first[value] = line
            pairs = [(value, line) for value, line in first.items()]
            for line, value, earlier in await self._insert(table, pairs):
                problems.append((line, f"{what} {value!r} is also on line {earlier}"))
        return problems

    async def _insert(self, table: str, pairs: list[tuple[str, int]]) -> list[tuple[int, str, int]]:
        """Insert (value, line) pairs; (line, value, first line) for those already there."""
        if not pairs:
            return []
        column = "username" if table == "sync_name" else "external_id"
        values: list[object]
        if self.sqlite:
            marks = ", ".join("(?, ?)" for _ in pairs)
            sql = f"INSERT INTO {table} VALUES {marks} ON CONFLICT DO NOTHING RETURNING {column}"
            values = [v for pair in pairs for v in pair]
        else:
            sql = (
                f"INSERT INTO {table} SELECT * FROM unnest($1::varchar[], $2::int[]) "
                f"ON CONFLICT DO NOTHING RETURNING {column}"
            )
            values = [[v for v, _ in pairs], [line for _, line in pairs]]
        added = {r[column] for r in await self.conn.execute_query_dict(sql, values)}
        again = [(value, line) for value, line in pairs if value not in added]
        if not again:
            return []
        firsts = await self._lines(table, column, [value for value, _ in again])
        return [(line, value, firsts[value]) for value, line in again]

    async def _lines(self, table: str, column: str, values: list[str]) -> dict[str, int]:
        if self.sqlite:
            marks = ", ".join("?" for _ in values)
            sql = f"SELECT {column}, line FROM {table} WHERE {column} IN ({marks})"
            rows = await self.conn.execute_query_dict(sql, values)
        else:
            sql = f"SELECT {column}, line FROM {table} WHERE {column} = ANY($1::varchar[])"
            rows = await self.conn.execute_query_dict(sql, [values])
        return {r[column]: int(r["line"]) for r in rows}

    async def missing(self, domain_id: int) -> AsyncIterator[list[Account]]:
        """The domain's accounts the file did not name, BATCH at a time."""
        after = 0
        while True:
            p = "?" if self.sqlite else "$"
            rows = await self.conn.execute_query_dict(
                f"SELECT id FROM account a WHERE a.domain_id = {p}1 AND a.id > {p}2 "
                f"AND NOT EXISTS (SELECT 1 FROM sync_name s WHERE s.username = a.username) "
                f"ORDER BY a.id LIMIT {BATCH}",
                [domain_id, after],
            )
            if not rows:
                return
            ids = [int(r["id"]) for r in rows]
            after = ids[-1]
            yield await Account.filter(id__in=ids).using_db(self.conn).order_by("id")


_PARK_SQLITE = "INSERT INTO sync_parked VALUES (?, ?, ?, ?)"
_PARK_POSTGRES = "INSERT INTO sync_parked VALUES ($1, $2, $3, $4)"
# Parked and never renamed: still under its parking name (api.services.provisioning.parking_name).
_STILL_PARKED = (
    "SELECT s.account_id, s.username, s.external_id, s.line FROM sync_parked s "
    "JOIN account a ON a.id = s.account_id WHERE a.domain_id = $1 "
    "AND a.username = '~' || a.id ORDER BY s.line"
)


def run(
    settings: Settings,
    *,
    domain: str,
    file: str,
    remove_missing: bool,
    dry_run: bool,
    actor: str,
) -> None:
    """The command: the file streamed through `sync_accounts`, a progress bar on a terminal
    (stderr), the plan on stdout with `dry_run`, a summary at the end; exits non-zero, having
    changed nothing, for bad lines or no such domain."""
    path = Path(file)
    try:
        raw = path.open("rb")
        size = path.stat().st_size
    except OSError as error:
        sys.exit(f"mapi-ews-admin: {error.strerror}: {file}")
    text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
    bar = tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        desc=domain,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
    )

    def progress() -> None:
        bar.update(raw.tell() - bar.n)

    def plan(what: str, whom: str) -> None:
        if dry_run:
            bar.write(f"{what} {whom}", file=sys.stdout)

    async def work() -> Summary:
        # Published like a server's changes, so open dashboards drop removed accounts at once
        # and the gateways are told to end their sessions.
        events = event_bus(settings, payloads=PAYLOADS)
        await db.open_database(settings)
        await events.start()
        try:
            return await sync_accounts(
                events=events,
                actor=actor,
                domain=domain,
                lines=read_records(text, name=file),
                remove_missing=remove_missing,
                dry_run=dry_run,
                plan=plan,
                progress=progress,
            )
        finally:
            await events.stop()
            await db.close_database()

    try:
        done = asyncio.run(work())
    except Refused as refused:
        bar.close()
        for line in refused.summary.bad_lines:
            print(f"{file}: {line}", file=sys.stderr)
        more = refused.summary.bad_count - len(refused.summary.bad_lines)
        sys.exit(
            (f"... and {more} more. " if more > 0 else "")
            + f"{refused.summary.bad_count} bad line(s): nothing was changed."
        )
    except UserErrors as refused:
        bar.close()
        sys.exit("mapi-ews-admin: " + "; ".join(e.message for e in refused.errors))
    except UnicodeDecodeError:
        bar.close()
        sys.exit(f"mapi-ews-admin: {file} is not UTF-8 text: nothing was changed.")
    finally:
        raw.close()
    bar.close()
    print(
        f"{domain}: {done.created} created, {done.updated} updated, {done.renamed} renamed, "
        f"{done.unchanged} unchanged, {done.removed} removed ({done.seats_freed} MAPI/EWS "
        f"seat(s) freed, {done.sessions_ending} open session(s) told to end)"
        + ("; dry run: nothing was changed." if dry_run else ".")
    )
