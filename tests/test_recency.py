"""AccountRecency: the account's last login, flag and enable time in a narrow row the database
keeps itself, so a login report changes no indexed column of the account (a heap-only update on
PostgreSQL) while the tab's order by last login and the idle list still read indexes."""

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from tortoise.transactions import in_transaction

from api import db
from api.models import Account, AccountRecency, Domain, MailProtocol
from api.services import accounts, login_batches, reclaim
from api.services.login_sql import PG_REPORT
from api.services.login_store import Report
from api.services.paging import as_is
from tests.conftest import Factory, GraphQLClient

ENABLE = (
    "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
DISABLE = (
    "mutation($u: [String!]!) { disableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
BATCH = """
mutation($reports: [RecordProtocolLoginInput!]!) {
  recordProtocolLogins(input: {reports: $reports}) { results { allowed } userErrors { code } }
}
"""
SINGLE = """
mutation($r: RecordProtocolLoginInput!) {
  recordProtocolLogin(input: $r) { allowed userErrors { code } }
}
"""
# The columns a login report writes.
REPORT_COLUMNS = re.compile(r"\blast_(login|login_protocol|mapi_login|ews_login)\b")
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def report(username: str, minutes: int, protocol: str = "MAPI") -> dict[str, str]:
    moment = START + timedelta(minutes=minutes)
    return {
        "emailAddress": f"{username}@example.com",
        "protocol": protocol,
        "occurredAt": moment.isoformat(),
    }


async def copies() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The account's columns and AccountRecency's, row for row."""
    names = ("domain_id", "mapi_ews_enabled", "mapi_ews_enabled_at", "last_login")
    originals = await Account.all().order_by("id").values_list("id", *names)
    kept = await AccountRecency.all().order_by("account_id").values_list("account_id", *names)
    return [tuple(row) for row in originals], [tuple(row) for row in kept]


async def imported(domain: Domain) -> None:
    """An account written in SQL, past the ORM, as an import would (the ORM fills defaults in
    Python: the INSERT names them all)."""
    conn = db.connection()
    marks = ", ".join(["?"] * 7 if db.is_sqlite(conn) else [f"${n}" for n in range(1, 8)])
    field = Account._meta.fields_map
    values = [
        domain.id,
        field["is_domain_admin"].to_db_value(False, Account),
        field["mapi_ews_enabled"].to_db_value(True, Account),
        *(field["last_login"].to_db_value(t, Account) for t in (START, START + timedelta(1))),
        field["created_at"].to_db_value(START, Account),
        "x",
    ]
    await conn.execute_query(
        "INSERT INTO account (domain_id, is_domain_admin, mapi_ews_enabled, mapi_ews_enabled_at, "  # noqa: S608
        f"last_login, created_at, password_hash, username) VALUES ({marks}, 'imported')",
        values,
    )


async def administered(make: Factory) -> tuple[Domain, str, str]:
    """example.com with room for every account, its administrator's token and a gateway's."""
    example = await make.domain("example.com", limit=1_000)
    admin = await make.account(example, "admin", admin=True)
    return example, await make.token_for(admin), await make.gateway()


async def index_definitions(table: str) -> list[str]:
    conn = db.connection()
    if db.is_sqlite(conn):
        rows = await conn.execute_query_dict(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", [table]
        )
        definitions = []
        for row in rows:
            # SQLite's own indexes (UNIQUE constraints) have no SQL: their columns instead.
            columns = await conn.execute_query_dict(f"PRAGMA index_info('{row['name']}')")
            definitions.append(row["sql"] or " ".join(str(c["name"]) for c in columns))
        return definitions
    rows = await conn.execute_query_dict(
        "SELECT indexdef FROM pg_indexes WHERE tablename = $1", [table]
    )
    return [row["indexdef"] for row in rows]


async def test_no_index_of_the_account_names_a_column_a_login_report_writes(
    make: Factory,
) -> None:
    account_indexes = await index_definitions("account")
    recency_indexes = await index_definitions("account_recency")

    assert len(account_indexes) >= 4
    assert [d for d in account_indexes if REPORT_COLUMNS.search(d)] == []
    assert any("last_login" in d for d in recency_indexes)


async def test_the_copy_follows_every_write_of_an_account_whoever_makes_it(
    gql: GraphQLClient, make: Factory
) -> None:
    example, token, gateway = await administered(make)
    await make.account(example, "alice", enabled=True)
    await make.accounts(example, 6, enabled=3)
    other = await make.domain("other.example")
    await imported(example)
    assert (await gql.data(ENABLE, {"u": ["user00004", "user00005"]}, token=token))[
        "enableMapiEws"
    ]["userErrors"] == []
    await gql.data(SINGLE, {"r": report("alice", 5, "EWS")}, token=gateway)
    batch = [report("user00000", 1), report("user00001", 2), report("user00004", 3)]
    # user00003 has MAPI/EWS off (refused); alice's is older than her last login (kept).
    batch += [report("user00003", 4), report("alice", 1)]
    await gql.data(BATCH, {"reports": batch}, token=gateway)
    assert (await gql.data(DISABLE, {"u": ["user00001"]}, token=token))["disableMapiEws"][
        "userErrors"
    ] == []
    await Account.filter(username="user00002").update(domain_id=other.id)  # moved
    await Account.filter(username="user00005").delete()
    original, kept = await copies()

    assert len(original) == 8
    assert kept == original
    alice = await AccountRecency.get(account__username="alice")
    assert alice.last_login == START + timedelta(minutes=5)


async def test_the_copy_stays_exact_while_reports_enables_and_disables_race(
    gql: GraphQLClient, make: Factory
) -> None:
    example, token, gateway = await administered(make)
    await make.accounts(example, 40, enabled=20)
    names = [f"user{i:05d}" for i in range(40)]

    async def reports(offset: int) -> None:
        batch = [report(name, offset * 7 + i) for i, name in enumerate(names[offset::3])]
        await gql.data(BATCH, {"reports": batch}, token=gateway)

    async def flip(offset: int) -> None:
        chosen = names[offset::5]
        await gql.data(ENABLE if offset % 2 else DISABLE, {"u": chosen}, token=token)

    await asyncio.gather(*(reports(n) for n in range(6)), *(flip(n) for n in range(5)))
    original, kept = await copies()

    assert len(original) == 41
    assert kept == original


async def test_a_login_report_updates_its_account_without_touching_its_indexes(
    make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL writes a report's account update as a heap-only tuple, single and batched; on
    SQLite the copy is written only when a copied column changes."""
    example = await make.domain("example.com")
    alice = await make.account(example, "alice", enabled=True)
    await make.account(example, "bob", enabled=True)
    if db.is_sqlite():
        assert await sqlite_rows_written("UPDATE account SET name = 'A' WHERE id = ?", alice) == 1
        moved = "UPDATE account SET last_login = '2026-11-02T08:00:00+00:00' WHERE id = ?"
        assert await sqlite_rows_written(moved, alice) == 2
        return
    now = datetime.now(UTC)
    single = [
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
        await tx.execute_query(PG_REPORT, single)
        stats = "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = $1"
        account_single = await tx.execute_query_dict(stats, ["account"])
        recency_single = await tx.execute_query_dict(stats, ["account_recency"])
        # The batch's statement, on this transaction's connection so its counts show here.
        monkeypatch.setattr(login_batches, "gateway_connection", lambda: tx)
        batch = [
            Report(name, "example.com", MailProtocol.EWS, now, None) for name in ("alice", "bob")
        ]
        await login_batches.write_reports(batch, None, timedelta(minutes=5), timedelta(0))
        account_both = await tx.execute_query_dict(stats, ["account"])

    assert account_single == [{"n_tup_upd": 1, "n_tup_hot_upd": 1}]
    assert recency_single == [{"n_tup_upd": 1, "n_tup_hot_upd": 0}]
    assert account_both == [{"n_tup_upd": 3, "n_tup_hot_upd": 3}]


async def sqlite_rows_written(statement: str, account: Account) -> int:
    """Rows a statement wrote, its triggers' included (SQLite's total_changes)."""
    conn = db.connection()
    total = "SELECT total_changes() AS n"
    before = (await conn.execute_query_dict(total))[0]["n"]
    await conn.execute_query(statement, [account.id])
    return int((await conn.execute_query_dict(total))[0]["n"] - before)


async def plan(queryset: Any) -> str:
    """The database's plan for a queryset; on PostgreSQL with sequential scans and sorts priced
    out: what is left says which indexes can serve it (it picks them once the domain is large)."""
    if db.is_sqlite():
        sql = queryset.sql(params_inline=True)
        rows = await db.connection().execute_query_dict("EXPLAIN QUERY PLAN " + sql)
        return "\n".join(str(row["detail"]) for row in rows)
    async with in_transaction("default") as tx:
        await tx.execute_script("SET LOCAL enable_seqscan = off; SET LOCAL enable_sort = off")
        rows = await tx.execute_query_dict("EXPLAIN " + queryset.sql(params_inline=True))
    return "\n".join(row["QUERY PLAN"] for row in rows)


async def test_the_tab_by_last_login_and_the_idle_list_read_the_narrow_rows_indexes(
    make: Factory,
) -> None:
    example = await make.domain()
    await make.accounts(example, 200, enabled=100)
    order = accounts.sort_spec(accounts.AccountSortField.LAST_LOGIN, descending=True)
    # The page's QuerySet with its values in place: the statement kept for its shape is the
    # text Tortoise writes for it (tests/test_statements.py).
    page = accounts.listed(domain_id=example.id, mapi_ews_enabled=True, order=order).build(as_is)
    idle = reclaim.idle_accounts(example.id, 30, now=datetime.now(UTC))

    page_plan = await plan(page.order_by("-recency__last_login", "-id").limit(51))
    idle_plan = await plan(idle)

    assert "idx_account_rec_domain__92a0d4" in page_plan
    # In the index's order: PostgreSQL sorts nothing; SQLite at most ties by id ("RIGHT PART").
    assert "Sort" not in page_plan and "TEMP B-TREE FOR ORDER BY" not in page_plan
    assert "idx_account_rec_domain__92a0d4" in idle_plan
    assert "idx_account_recency_never" in idle_plan


async def test_the_idle_list_splits_at_the_cutoff_on_both_halves(make: Factory) -> None:
    """Idle: logged in at or before the cutoff, or never logged in and enabled at or before it."""
    example = await make.domain()
    now = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    cutoff = now - timedelta(days=30)
    rows = {
        "at-cutoff": (cutoff, START),
        "after-cutoff": (cutoff + timedelta(seconds=1), START),
        "never-enabled-at-cutoff": (None, cutoff),
        "never-enabled-after": (None, cutoff + timedelta(seconds=1)),
        "never-no-enable-time": (None, None),
    }
    for name, (last_login, enabled_at) in rows.items():
        account = await make.account(example, name, enabled=True)
        await Account.filter(id=account.id).update(
            last_login=last_login, mapi_ews_enabled_at=enabled_at
        )
    disabled = await make.account(example, "disabled")
    await Account.filter(id=disabled.id).update(last_login=START)
    found = await reclaim.idle_accounts(example.id, 30, now=now).order_by("username")

    assert [a.username for a in found] == ["at-cutoff", "never-enabled-at-cutoff"]
