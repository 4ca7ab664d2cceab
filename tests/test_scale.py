"""Costs that do not grow with the domain: the count its row keeps, totalCount only when
selected, and the indexes that serve search on PostgreSQL."""

import asyncio
import random

from tortoise.transactions import in_transaction

from api.db import connection, is_sqlite
from api.models import Account, Domain
from api.services.accounts import search_filter
from api.settings import Settings
from tests.conftest import Factory, GraphQLClient, StatementCounter
from tests.servers import run_cli

PAGE = "{ mapiEwsAccounts(first: 10) { edges { node { username } } } }"
COUNTED = "query($s: String) { mapiEwsAccounts(first: 10, search: $s) { totalCount } }"
USAGE = "{ mapiEwsUsage { enabled limit available } }"
ENABLE = (
    "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
DISABLE = (
    "mutation($u: [String!]!) { disableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
RECLAIM = (
    "mutation { reclaimIdleMapiEws(input: {idleForDays: 1, dryRun: false}) "
    "{ accounts { username } } }"
)


async def admin_of(make: Factory, **domain: object) -> tuple[str, Domain]:
    example = await make.domain(**domain)  # type: ignore[arg-type]
    admin = await make.account(example, "admin", admin=True)
    return await make.token_for(admin), example


def counts(statements: list[str]) -> list[str]:
    return [s for s in statements if "COUNT(" in s.upper()]


async def test_a_page_without_total_count_counts_nothing(
    gql: GraphQLClient, make: Factory, sql: StatementCounter
) -> None:
    token, example = await admin_of(make)
    await make.accounts(example, 30, enabled=20)
    sql.statements.clear()

    data = await gql.data(PAGE, token=token)

    assert len(data["mapiEwsAccounts"]["edges"]) == 10
    assert counts(sql.statements) == []


async def test_total_count_and_usage_read_the_domain_row_not_its_accounts(
    gql: GraphQLClient, make: Factory, sql: StatementCounter
) -> None:
    token, example = await admin_of(make, limit=50)
    await make.accounts(example, 30, enabled=20)
    sql.statements.clear()

    total = await gql.data(COUNTED, token=token)
    usage = await gql.data(USAGE, token=token)

    assert total["mapiEwsAccounts"]["totalCount"] == 20
    assert usage["mapiEwsUsage"] == {"enabled": 20, "limit": 50, "available": 30}
    assert counts(sql.statements) == []


async def test_a_search_counts_what_it_matched(
    gql: GraphQLClient, make: Factory, sql: StatementCounter
) -> None:
    token, example = await admin_of(make)
    await make.accounts(example, 30, enabled=30)
    sql.statements.clear()

    data = await gql.data(COUNTED, {"s": "user0001"}, token=token)

    assert data["mapiEwsAccounts"]["totalCount"] == 10  # user00010 .. user00019
    assert len(counts(sql.statements)) == 1


async def test_racing_changes_leave_the_kept_count_equal_to_a_count(
    gql: GraphQLClient, make: Factory
) -> None:
    """Enables, disables and reclaims at once, against an allowance: the row's count is what a
    COUNT of the accounts says, and the allowance held."""
    token, example = await admin_of(make, limit=25)
    await make.accounts(example, 40, enabled=10)
    rng = random.Random(7)
    names = [f"user{i:05d}" for i in range(40)]
    calls = []
    for _ in range(60):
        batch = rng.sample(names, rng.randint(1, 4))
        calls.append(gql.data(ENABLE if rng.random() < 0.6 else DISABLE, {"u": batch}, token=token))
    calls.insert(30, gql.data(RECLAIM, token=token))  # never logged in, enabled today: none idle

    await asyncio.gather(*calls)

    counted = await Account.filter(domain_id=example.id, mapi_ews_enabled=True).count()
    kept = (await Domain.get(id=example.id)).mapi_ews_enabled_count
    assert kept == counted
    assert 0 < counted <= 25
    usage = await gql.data(USAGE, token=token)
    assert usage["mapiEwsUsage"]["enabled"] == counted


async def test_repair_recounts_domains_an_import_wrote_directly(
    gql: GraphQLClient, make: Factory, settings: Settings
) -> None:
    token, example = await admin_of(make, limit=100)
    await make.accounts(example, 12, enabled=4)
    untouched = await make.domain("untouched.example")
    await make.accounts(untouched, 3, enabled=3)
    # An import that sets the flag itself, behind the API's back.
    await Account.filter(domain_id=example.id, username__in=["user00010", "user00011"]).update(
        mapi_ews_enabled=True
    )
    before = await gql.data(USAGE, token=token)

    output = await run_cli(
        "repair-mapi-ews-counts", env={"MAPI_EWS_DATABASE_URL": settings.database_url}
    )
    again = await run_cli(
        "repair-mapi-ews-counts", env={"MAPI_EWS_DATABASE_URL": settings.database_url}
    )

    assert before["mapiEwsUsage"]["enabled"] == 4
    assert "example.com: 4 -> 6 MAPI/EWS accounts" in output
    assert "untouched.example" not in output
    assert "Repaired 0 domain count(s)." in again
    after = await gql.data(USAGE, token=token)
    assert after["mapiEwsUsage"] == {"enabled": 6, "limit": 100, "available": 94}


async def test_search_matches_trigram_indexes_on_postgresql_and_the_domain_on_sqlite(
    make: Factory,
) -> None:
    """The planner can serve the search's expressions from the trigram indexes (which it picks
    once the domain is large: bench growth); SQLite reads the domain's enabled accounts."""
    example = await make.domain()
    await make.accounts(example, 2_000, enabled=1_000)
    query = Account.filter(domain_id=example.id, mapi_ews_enabled=True)

    if is_sqlite(connection()):
        sql = query.filter(search_filter("user0001", example.name)).sql(params_inline=True)
        plan = await connection().execute_query_dict("EXPLAIN QUERY PLAN " + sql)
        details = " ".join(str(row["detail"]) for row in plan)
        assert "USING INDEX" in details and "domain_id=? AND mapi_ews_enabled=?" in details
        return
    # The search alone, with sequential scans priced out: only an index whose expression is
    # exactly the one Tortoise writes can stand in for the scan.
    sql = Account.filter(search_filter("user0001", example.name)).sql(params_inline=True)
    async with in_transaction("default") as tx:
        await tx.execute_script("SET LOCAL enable_seqscan = off")
        plan = await tx.execute_query_dict("EXPLAIN " + sql)
    text = "\n".join(row["QUERY PLAN"] for row in plan)
    assert "idx_account_username_trgm" in text
    assert "idx_account_name_trgm" in text
