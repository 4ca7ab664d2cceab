import pytest

from api.models import Account, AuditEntry, Domain
from tests.conftest import Factory, GraphQLClient, StatementCounter

CREATE = """
mutation($input: CreateDomainInput!) {
  createDomain(input: $input) {
    domain { name maxMapiEwsAccounts mapiEwsAccountManagement mapiEwsUsage { enabled limit available } }
    userErrors { field code message }
  }
}
"""
UPDATE = """
mutation($input: UpdateDomainInput!) {
  updateDomain(input: $input) {
    domain { name maxMapiEwsAccounts mapiEwsAccountManagement }
    userErrors { field code }
  }
}
"""
CREATE_ACCOUNT = """
mutation($input: CreateAccountInput!) {
  createAccount(input: $input) {
    account { username emailAddress name domain isDomainAdmin mapiEwsEnabled }
    userErrors { field code message }
  }
}
"""
ENABLE_IN = 'mutation($d: String) { enableMapiEws(input: {domain: $d, usernames: ["alice"]}) { userErrors { field code message } } }'
CREATE_IN = 'mutation($e: String!) { createAccount(input: {emailAddress: $e, password: "long-enough-pw"}) { userErrors { field code message } } }'
DOMAINS = "query($s: String, $after: String) { domains(search: $s, first: 2, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { name } } } }"
DOMAIN = "query($n: String!) { domain(name: $n) { name maxMapiEwsAccounts mapiEwsUsage { domain enabled limit available } } }"


async def domains_now() -> list[tuple]:
    return list(
        await Domain.all()
        .order_by("id")
        .values_list("name", "max_mapi_ews_accounts", "mapi_ews_account_management")
    )


@pytest.fixture
async def root(make: Factory) -> str:
    return await make.token_for(await make.system_admin())


async def test_a_system_administrator_creates_a_domain_with_an_allowance(
    gql: GraphQLClient, root: str
) -> None:
    data = await gql.data(
        CREATE, {"input": {"name": "Mail.Example.ORG", "maxMapiEwsAccounts": 25}}, token=root
    )

    assert data["createDomain"] == {
        "domain": {
            "name": "mail.example.org",
            "maxMapiEwsAccounts": 25,
            "mapiEwsAccountManagement": True,
            "mapiEwsUsage": {"enabled": 0, "limit": 25, "available": 25},
        },
        "userErrors": [],
    }
    entry = await AuditEntry.get(action="DOMAIN_CREATED")
    assert (entry.actor, entry.target) == ("root", "mail.example.org")


@pytest.mark.parametrize(
    ("given", "field", "code"),
    [
        ({"name": "example.com"}, ["input", "name"], "ALREADY_EXISTS"),
        ({"name": "EXAMPLE.com."}, ["input", "name"], "ALREADY_EXISTS"),
        ({"name": "not a domain"}, ["input", "name"], "INVALID_INPUT"),
        ({"name": "nodot"}, ["input", "name"], "INVALID_INPUT"),
        ({"name": "a" * 64 + ".com"}, ["input", "name"], "INVALID_INPUT"),
        ({"name": ("a" * 60 + ".") * 5 + "com"}, ["input", "name"], "INVALID_INPUT"),
        ({"name": "bad\u0000.com"}, ["input", "name"], "INVALID_INPUT"),
        (
            {"name": "fine.com", "maxMapiEwsAccounts": -1},
            ["input", "maxMapiEwsAccounts"],
            "INVALID_INPUT",
        ),
    ],
)
async def test_bad_domains_are_refused_and_change_nothing(
    gql: GraphQLClient, make: Factory, root: str, given: dict, field: list[str], code: str
) -> None:
    await make.domain("example.com")
    before = await domains_now(), await AuditEntry.all().count()

    data = await gql.data(CREATE, {"input": given}, token=root)

    assert data["createDomain"]["domain"] is None
    assert [(e["field"], e["code"]) for e in data["createDomain"]["userErrors"]] == [(field, code)]
    assert (await domains_now(), await AuditEntry.all().count()) == before


async def test_update_leaves_absent_fields_alone_and_null_means_no_limit(
    gql: GraphQLClient, make: Factory, root: str
) -> None:
    await make.domain("example.com", limit=10, managed=True)

    absent = await gql.data(
        UPDATE, {"input": {"name": "example.com", "mapiEwsAccountManagement": False}}, token=root
    )
    cleared = await gql.data(
        UPDATE, {"input": {"name": "example.com", "maxMapiEwsAccounts": None}}, token=root
    )

    assert absent["updateDomain"]["domain"] == {
        "name": "example.com",
        "maxMapiEwsAccounts": 10,
        "mapiEwsAccountManagement": False,
    }
    assert cleared["updateDomain"]["domain"] == {
        "name": "example.com",
        "maxMapiEwsAccounts": None,
        "mapiEwsAccountManagement": False,
    }
    assert await AuditEntry.filter(action="DOMAIN_UPDATED").count() == 2


async def test_an_update_that_changes_nothing_writes_no_audit_entry(
    gql: GraphQLClient, make: Factory, root: str
) -> None:
    await make.domain("example.com", limit=10)

    await gql.data(UPDATE, {"input": {"name": "example.com", "maxMapiEwsAccounts": 10}}, token=root)

    assert await AuditEntry.all().count() == 0


@pytest.mark.parametrize(
    ("given", "field", "code"),
    [
        ({"name": "nowhere.com", "maxMapiEwsAccounts": 1}, ["input", "name"], "NOT_FOUND"),
        (
            {"name": "example.com", "maxMapiEwsAccounts": -5},
            ["input", "maxMapiEwsAccounts"],
            "INVALID_INPUT",
        ),
    ],
)
async def test_bad_updates_change_nothing(
    gql: GraphQLClient, make: Factory, root: str, given: dict, field: list[str], code: str
) -> None:
    await make.domain("example.com", limit=3)
    before = await domains_now()

    data = await gql.data(UPDATE, {"input": given}, token=root)

    assert data["updateDomain"]["userErrors"] == [{"field": field, "code": code}]
    assert await domains_now() == before
    assert await AuditEntry.all().count() == 0


async def test_domains_are_listed_by_name_with_search_and_paging(
    gql: GraphQLClient, make: Factory, root: str
) -> None:
    for name in ("c.com", "a.com", "b.org", "d.com"):
        await make.domain(name)

    first = await gql.data(DOMAINS, {"s": ".COM"}, token=root)
    cursor = first["domains"]["pageInfo"]["endCursor"]
    second = await gql.data(DOMAINS, {"s": ".com", "after": cursor}, token=root)

    assert first["domains"]["totalCount"] == 3
    assert [e["node"]["name"] for e in first["domains"]["edges"]] == ["a.com", "c.com"]
    assert [e["node"]["name"] for e in second["domains"]["edges"]] == ["d.com"]
    assert second["domains"]["pageInfo"]["hasNextPage"] is False


@pytest.mark.parametrize("count", [2, 20])
async def test_listing_domains_with_their_usage_costs_the_same_sql_for_two_or_twenty(
    gql: GraphQLClient, make: Factory, root: str, sql: StatementCounter, count: int
) -> None:
    for i in range(count):
        domain = await make.domain(f"d{i:02d}.com", limit=5)
        for j in range(i % 3):
            await make.account(domain, f"u{j}", enabled=True)
    sql.statements.clear()

    data = await gql.data(
        "{ domains(first: 100) { edges { node { name mapiEwsUsage { enabled available } } } } }",
        token=root,
    )

    usages = [e["node"]["mapiEwsUsage"] for e in data["domains"]["edges"]]
    assert usages == [{"enabled": i % 3, "available": 5 - i % 3} for i in range(count)]
    assert len(sql.statements) == 1  # the page: each row keeps its count; no totalCount asked


async def test_domain_shows_its_usage_and_is_null_when_unknown(
    gql: GraphQLClient, make: Factory, root: str
) -> None:
    example = await make.domain("example.com", limit=4)
    await make.account(example, "a", enabled=True)
    await make.account(example, "b", enabled=True)
    await make.account(example, "c")

    known = await gql.data(DOMAIN, {"n": "example.com"}, token=root)
    unknown = await gql.data(DOMAIN, {"n": "nowhere.com"}, token=root)

    assert known["domain"] == {
        "name": "example.com",
        "maxMapiEwsAccounts": 4,
        "mapiEwsUsage": {"domain": "example.com", "enabled": 2, "limit": 4, "available": 2},
    }
    assert unknown == {"domain": None}


async def test_a_system_administrator_must_name_the_domain(gql: GraphQLClient, root: str) -> None:
    body = await gql.post("{ mapiEwsAccounts { totalCount } }", token=root)

    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        ("A system administrator must name the domain.", "BAD_USER_INPUT")
    ]


async def test_a_domain_administrator_creates_an_account_in_their_domain(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))

    data = await gql.data(
        CREATE_ACCOUNT,
        {
            "input": {
                "emailAddress": "New.Person@Example.com",
                "name": "  New Person ",
                "password": "a-long-password",
            }
        },
        token=token,
    )

    assert data["createAccount"] == {
        "account": {
            "username": "new.person",
            "emailAddress": "new.person@example.com",
            "name": "New Person",
            "domain": "example.com",
            "isDomainAdmin": False,
            "mapiEwsEnabled": False,
        },
        "userErrors": [],
    }
    created = await Account.get(username="new.person")
    assert created.password_hash.startswith("$argon2id$")
    entry = await AuditEntry.get(action="ACCOUNT_CREATED")
    assert (entry.actor, entry.target) == ("admin@example.com", "new.person@example.com")


@pytest.mark.parametrize(
    ("given", "errors"),
    [
        ({"emailAddress": "admin@example.com"}, [(["input", "emailAddress"], "ALREADY_EXISTS")]),
        ({"emailAddress": "ADMIN@example.com"}, [(["input", "emailAddress"], "ALREADY_EXISTS")]),
        ({"emailAddress": "no-at-sign"}, [(["input", "emailAddress"], "INVALID_INPUT")]),
        ({"emailAddress": "two words@example.com"}, [(["input", "emailAddress"], "INVALID_INPUT")]),
        (
            {"emailAddress": "ok@example.com", "name": "x" * 257},
            [(["input", "name"], "INVALID_INPUT")],
        ),
        (
            {"emailAddress": "ok@example.com", "name": "tab\there"},
            [(["input", "name"], "INVALID_INPUT")],
        ),
        (
            {"emailAddress": "ok@example.com", "password": "short"},
            [(["input", "password"], "INVALID_INPUT")],
        ),
        (
            {"emailAddress": "bad name@example.com", "password": "short"},
            [
                (["input", "emailAddress"], "INVALID_INPUT"),
                (["input", "password"], "INVALID_INPUT"),
            ],
        ),
    ],
)
async def test_bad_accounts_are_refused_and_change_nothing(
    gql: GraphQLClient, make: Factory, given: dict, errors: list
) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))
    before = await Account.all().count(), await AuditEntry.all().count()

    data = await gql.data(
        CREATE_ACCOUNT, {"input": {"password": "a-long-password", **given}}, token=token
    )

    assert data["createAccount"]["account"] is None
    assert [(e["field"], e["code"]) for e in data["createAccount"]["userErrors"]] == errors
    assert (await Account.all().count(), await AuditEntry.all().count()) == before


@pytest.mark.parametrize(
    ("document", "variables", "error"),
    [
        (
            ENABLE_IN,
            {"d": "nowhere.test"},
            (["input", "domain"], "NOT_FOUND", "No domain nowhere.test."),
        ),
        (
            ENABLE_IN,
            {"d": "not a domain"},
            (["input", "domain"], "INVALID_INPUT", "'not a domain' is not a valid domain name."),
        ),
        (
            ENABLE_IN,
            {"d": None},
            (["input", "domain"], "INVALID_INPUT", "A system administrator must name the domain."),
        ),
        (
            CREATE_IN,
            {"e": "new@nowhere.test"},
            (["input", "emailAddress"], "NOT_FOUND", "No domain nowhere.test."),
        ),
    ],
)
async def test_a_bad_domain_in_a_system_administrators_mutation_is_a_user_error(
    gql: GraphQLClient, make: Factory, root: str, document: str, variables: dict, error: tuple
) -> None:
    example = await make.domain("example.com")
    await make.account(example, "alice")
    before = await domains_now(), await Account.all().count(), await AuditEntry.all().count()

    data = await gql.data(document, variables, token=root)

    payload = next(iter(data.values()))
    assert [(e["field"], e["code"], e["message"]) for e in payload["userErrors"]] == [error]
    assert (
        await domains_now(),
        await Account.all().count(),
        await AuditEntry.all().count(),
    ) == before


@pytest.mark.parametrize("search", ["x" * 101, "a\u0000b"])
async def test_a_bad_domain_search_is_refused_like_an_account_search(
    gql: GraphQLClient, root: str, search: str
) -> None:
    body = await gql.post(DOMAINS, {"s": search}, token=root)

    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
