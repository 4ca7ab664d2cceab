import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from api.models import Account, MailProtocol
from tests.conftest import Factory, GraphQLClient, StatementCounter

LIST = """
query List($domain: String, $search: String, $orderBy: AccountOrder,
           $first: Int, $after: String, $last: Int, $before: String) {
  mapiEwsAccounts(domain: $domain, search: $search, orderBy: $orderBy,
                  first: $first, after: $after, last: $last, before: $before) {
    totalCount
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { username emailAddress name domain mapiEwsEnabled lastLogin lastLoginProtocol } }
  }
}
"""
ACCOUNTS = """
query Accounts($enabled: Boolean, $search: String) {
  accounts(mapiEwsEnabled: $enabled, search: $search, first: 100) {
    totalCount edges { node { username mapiEwsEnabled } }
  }
}
"""


def usernames(data: dict) -> list[str]:
    return [edge["node"]["username"] for edge in data["mapiEwsAccounts"]["edges"]]


async def given_a_domain_admin(make: Factory, **domain: object) -> tuple[str, object]:
    example = await make.domain(**domain)  # type: ignore[arg-type]
    admin = await make.account(example, "admin", admin=True)
    return await make.token_for(admin), example


async def test_the_tab_lists_only_accounts_with_mapi_ews_enabled(
    gql: GraphQLClient, make: Factory
) -> None:
    token, example = await given_a_domain_admin(make)
    await make.account(example, "bob", name="Bob Builder", enabled=True)
    await make.account(example, "carol", enabled=False)
    await make.account(example, "alice", name="Alice", enabled=True)
    other = await make.domain("other.org")
    await make.account(other, "zed", enabled=True)

    data = await gql.data(LIST, token=token)

    connection = data["mapiEwsAccounts"]
    assert connection["totalCount"] == 2
    assert [edge["node"] for edge in connection["edges"]] == [
        {
            "username": "alice",
            "emailAddress": "alice@example.com",
            "name": "Alice",
            "domain": "example.com",
            "mapiEwsEnabled": True,
            "lastLogin": None,
            "lastLoginProtocol": None,
        },
        {
            "username": "bob",
            "emailAddress": "bob@example.com",
            "name": "Bob Builder",
            "domain": "example.com",
            "mapiEwsEnabled": True,
            "lastLogin": None,
            "lastLoginProtocol": None,
        },
    ]
    assert connection["pageInfo"]["hasNextPage"] is False


async def test_last_login_sorts_newest_first_with_never_logged_in_last(
    gql: GraphQLClient, make: Factory
) -> None:
    token, example = await given_a_domain_admin(make)
    now = datetime.now(UTC)
    for name, minutes in [("old", 300), ("never", None), ("new", 1), ("mid", 60)]:
        account = await make.account(example, name, enabled=True)
        if minutes is not None:
            account.last_login = now - timedelta(minutes=minutes)
            account.last_login_protocol = MailProtocol.EWS
            await account.save()

    newest = await gql.data(
        LIST, {"orderBy": {"field": "LAST_LOGIN", "direction": "DESC"}}, token=token
    )
    oldest = await gql.data(
        LIST, {"orderBy": {"field": "LAST_LOGIN", "direction": "ASC"}}, token=token
    )

    assert usernames(newest) == ["new", "mid", "old", "never"]
    assert usernames(oldest) == ["old", "mid", "new", "never"]
    assert newest["mapiEwsAccounts"]["edges"][0]["node"]["lastLoginProtocol"] == "EWS"


@pytest.mark.parametrize(
    ("field", "direction"),
    [
        (f, d)
        for f in ("USERNAME", "NAME", "LAST_LOGIN", "MAPI_EWS_ENABLED_AT")
        for d in ("ASC", "DESC")
    ],
)
async def test_paging_forwards_and_backwards_visits_every_row_once_in_order(
    gql: GraphQLClient, make: Factory, field: str, direction: str
) -> None:
    token, example = await given_a_domain_admin(make)
    now = datetime.now(UTC)
    for i in range(23):
        account = await make.account(
            example, f"u{i:02d}", name=None if i % 5 == 0 else f"Name {i % 7}", enabled=True
        )
        # Ties and NULLs on purpose: the id must break them the same way on every page.
        account.last_login = None if i % 4 == 0 else now - timedelta(hours=i % 6)
        account.mapi_ews_enabled_at = now - timedelta(days=i % 3)
        await account.save()
    order = {"field": field, "direction": direction}
    whole = usernames(await gql.data(LIST, {"orderBy": order, "first": 100}, token=token))
    assert len(whole) == 23

    forwards: list[str] = []
    after = None
    while True:
        page = await gql.data(LIST, {"orderBy": order, "first": 5, "after": after}, token=token)
        forwards += usernames(page)
        info = page["mapiEwsAccounts"]["pageInfo"]
        if not info["hasNextPage"]:
            break
        after = info["endCursor"]
    backwards: list[str] = []
    before = None
    while True:
        page = await gql.data(LIST, {"orderBy": order, "last": 4, "before": before}, token=token)
        backwards = usernames(page) + backwards
        info = page["mapiEwsAccounts"]["pageInfo"]
        if not info["hasPreviousPage"]:
            break
        before = info["startCursor"]

    assert forwards == whole
    assert backwards == whole


async def test_search_matches_username_name_and_address_without_case(
    gql: GraphQLClient, make: Factory
) -> None:
    token, example = await given_a_domain_admin(make)
    await make.account(example, "jsmith", name="John Smith", enabled=True)
    await make.account(example, "mary", name="Mary SMITHSON", enabled=True)
    await make.account(example, "pat", name="Pat", enabled=True)
    await make.account(example, "smitty", enabled=False)

    async def search(text: str) -> list[str]:
        return usernames(await gql.data(LIST, {"search": text}, token=token))

    assert await search("SMITH") == ["jsmith", "mary"]
    assert await search("pat@example.com") == ["pat"]
    assert await search("t@exam") == ["pat"]
    assert await search("example.com") == ["jsmith", "mary", "pat"]
    assert await search("%") == []
    assert await search("nobody") == []


async def test_accounts_filters_on_mapi_ews_for_the_enable_dialog(
    gql: GraphQLClient, make: Factory
) -> None:
    token, example = await given_a_domain_admin(make)
    await make.account(example, "on", enabled=True)
    await make.account(example, "off")

    without = await gql.data(ACCOUNTS, {"enabled": False}, token=token)
    everyone = await gql.data(ACCOUNTS, {}, token=token)

    assert [e["node"]["username"] for e in without["accounts"]["edges"]] == ["admin", "off"]
    assert everyone["accounts"]["totalCount"] == 3


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"first": 101}, "`first` must be between 0 and 100."),
        ({"first": -1}, "`first` must be between 0 and 100."),
        ({"first": 5, "last": 5}, "Pass `first` or `last`, not both."),
        ({"after": "not-a-cursor"}, "The cursor is not valid for this list and ordering."),
        ({"search": "x" * 101}, "A search is at most 100 characters."),
        ({"search": "a\u0000b"}, "A search must not contain control characters."),
    ],
)
async def test_bad_paging_and_search_input_is_a_clear_error(
    gql: GraphQLClient, make: Factory, variables: dict, message: str
) -> None:
    token, _ = await given_a_domain_admin(make)

    body = await gql.post(LIST, variables, token=token)

    assert body["data"] is None
    assert [(e["message"], e["extensions"]["code"]) for e in body["errors"]] == [
        (message, "BAD_USER_INPUT")
    ]


def forged(*parts: object) -> str:
    raw = json.dumps(list(parts)).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    ("order", "cursor"),
    [
        ({"field": "NAME"}, forged("name", 5, 1)),
        ({"field": "USERNAME"}, forged("username", None, 1)),
        ({"field": "LAST_LOGIN"}, forged("last_login", "2026-01-01T00:00:00", 1)),
        ({"field": "LAST_LOGIN"}, forged("last_login", "yesterday", 1)),
        ({"field": "USERNAME"}, forged("username", "a", "1")),
        ({"field": "USERNAME"}, forged("username", "a")),
        ({"field": "USERNAME"}, "%%%"),
    ],
)
async def test_a_forged_cursor_is_bad_user_input(
    gql: GraphQLClient, make: Factory, order: dict, cursor: str
) -> None:
    token, example = await given_a_domain_admin(make)
    await make.account(example, "a", enabled=True)

    body = await gql.post(LIST, {"orderBy": order, "after": cursor}, token=token)

    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


async def test_a_cursor_of_another_ordering_is_refused(gql: GraphQLClient, make: Factory) -> None:
    token, example = await given_a_domain_admin(make)
    await make.account(example, "a", enabled=True)
    await make.account(example, "b", enabled=True)
    page = await gql.data(LIST, {"first": 1}, token=token)
    cursor = page["mapiEwsAccounts"]["pageInfo"]["endCursor"]

    body = await gql.post(
        LIST, {"first": 1, "after": cursor, "orderBy": {"field": "NAME"}}, token=token
    )

    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.parametrize(
    ("logged_in", "statements"),
    [
        (True, 2),
        (False, 3),
    ],  # the COUNT and the page; one more read when it reaches the never-logged-in
)
async def test_a_page_of_one_and_a_page_of_a_hundred_cost_the_same_sql(
    gql: GraphQLClient, make: Factory, sql: StatementCounter, logged_in: bool, statements: int
) -> None:
    token, example = await given_a_domain_admin(make)
    await make.accounts(example, 150, enabled=120)
    if logged_in:
        await Account.all().update(last_login=datetime.now(UTC))
    order = {"field": "LAST_LOGIN", "direction": "DESC"}

    sql.statements.clear()
    small = await gql.data(LIST, {"first": 1, "orderBy": order}, token=token)
    one = len(sql.statements)
    sql.statements.clear()
    large = await gql.data(LIST, {"first": 100, "orderBy": order}, token=token)
    hundred = len(sql.statements)

    assert len(small["mapiEwsAccounts"]["edges"]) == 1
    assert len(large["mapiEwsAccounts"]["edges"]) == 100
    assert one == hundred == statements  # the principal and the domain cost none


async def test_a_page_reads_at_most_one_row_more_than_it_shows(
    gql: GraphQLClient, make: Factory, sql: StatementCounter
) -> None:
    token, example = await given_a_domain_admin(make)
    await make.accounts(example, 30, enabled=30)
    sql.statements.clear()

    page = await gql.data(LIST, {"first": 10}, token=token)

    assert page["mapiEwsAccounts"]["totalCount"] == 30
    assert page["mapiEwsAccounts"]["pageInfo"]["hasNextPage"] is True
    limits = [s for s in sql.statements if "LIMIT" in s and 'FROM "account"' in s]
    assert len(limits) == 1
    assert limits[0].endswith(", 11]")  # the statement's parameters: LIMIT page size + 1


async def test_a_page_reads_no_password_hash(
    gql: GraphQLClient, make: Factory, sql: StatementCounter
) -> None:
    token, example = await given_a_domain_admin(make)
    await make.accounts(example, 5, enabled=5)
    sql.statements.clear()

    page = await gql.data(LIST, {"first": 10}, token=token)

    assert len(page["mapiEwsAccounts"]["edges"]) == 5
    rows = [s for s in sql.statements if 'FROM "account"' in s]
    assert rows, sql.statements
    assert not [s for s in rows if "password_hash" in s], rows
