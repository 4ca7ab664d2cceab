"""node(id:) and nodes(ids:): any object by its global id, the domain rule applied per object."""

import base64

import pytest

from api.models import Domain
from tests.conftest import Factory, GraphQLClient, StatementCounter

REPORT = """
mutation($e: String!) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: EWS, sessionId: "s-1"}) { allowed }
}
"""
ENABLE = (
    "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
IDS = """
query {
  domain(name: "example.com") { id name }
  mapiEwsAccounts { edges { node { id username } } }
  mapiEwsLoginEvents { edges { node { id username count } } }
  auditLog { edges { node { id action } } }
  mapiEwsSessions { edges { node { id sessionId } } }
}
"""
NODE = """
query($id: ID!) {
  node(id: $id) {
    __typename id
    ... on Domain { name }
    ... on Account { username }
    ... on MapiEwsLoginEvent { username count }
    ... on AuditEntry { action }
    ... on MapiEwsSession { sessionId }
  }
}
"""
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id ... on Account { username } } }"


def ours(kind: str, pk: int) -> str:
    return ours_raw(f"{kind}:{pk}")


def ours_raw(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


async def a_domain_with_one_of_everything(
    gql: GraphQLClient, make: Factory
) -> tuple[str, dict[str, object]]:
    example = await make.domain("example.com")
    admin = await make.account(example, "admin", admin=True)
    await make.account(example, "alice")
    token = await make.token_for(admin)
    await gql.data(ENABLE, {"u": ["alice"]}, token=token)
    await gql.data(REPORT, {"e": "alice@example.com"}, token=await make.gateway())
    return token, await gql.data(IDS, token=token)


async def test_every_kind_of_object_comes_back_by_its_id(gql: GraphQLClient, make: Factory) -> None:
    token, listed = await a_domain_with_one_of_everything(gql, make)
    expected = [
        {"__typename": "Domain", **listed["domain"]},
        {"__typename": "Account", **listed["mapiEwsAccounts"]["edges"][0]["node"]},
        {"__typename": "MapiEwsLoginEvent", **listed["mapiEwsLoginEvents"]["edges"][0]["node"]},
        {"__typename": "AuditEntry", **listed["auditLog"]["edges"][0]["node"]},
        {"__typename": "MapiEwsSession", **listed["mapiEwsSessions"]["edges"][0]["node"]},
    ]

    fetched = [(await gql.data(NODE, {"id": o["id"]}, token=token))["node"] for o in expected]

    assert fetched == expected


async def test_another_domains_object_and_a_missing_one_are_the_same_not_found_each_in_its_place(
    gql: GraphQLClient, make: Factory
) -> None:
    token, listed = await a_domain_with_one_of_everything(gql, make)
    alice = listed["mapiEwsAccounts"]["edges"][0]["node"]
    other = await make.domain("other.org")
    stranger = await make.account(other, "zed")
    ids = [alice["id"], ours("Account", stranger.id), "not-an-id", ours("Account", 999_999)]

    body = await gql.post(NODES, {"ids": ids}, token=token)
    single = await gql.post(NODE, {"id": ours("Domain", other.id)}, token=token)
    missing = await gql.post(NODE, {"id": ours("Domain", 999_999)}, token=token)

    assert body["data"]["nodes"] == [{"__typename": "Account", **alice}, None, None, None]
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["nodes", 1], "NOT_FOUND"),
        (["nodes", 2], "BAD_USER_INPUT"),
        (["nodes", 3], "NOT_FOUND"),
    ]
    messages = [e["message"] for e in body["errors"]]
    assert messages[0].replace(ids[1], "ID") == messages[2].replace(ids[3], "ID")
    assert single["data"] == missing["data"] == {"node": None}
    assert [(e["path"], e["extensions"]["code"]) for e in single["errors"]] == [
        (["node"], "NOT_FOUND")
    ]
    assert single["errors"][0]["message"].replace(ours("Domain", other.id), "ID") == (
        missing["errors"][0]["message"].replace(ours("Domain", 999_999), "ID")
    )
    assert "zed" not in str(body) + str(single)


@pytest.mark.parametrize(
    "written",
    [
        "Account:99999999999999999999999999",
        "Account:2147483648",  # past the column's range
        "Account:" + "9" * 5000,  # past what int() reads
        "Account: 1",
        "Account:1_0",
        "Account:01",
        "Account:+1",
        "Account:-1",
        "Account:0",
        "Account:\u0661",  # an Arabic-Indic one
        "Usage:1",
        "Account:1:2",
    ],
)
async def test_a_non_canonical_or_out_of_range_id_is_bad_input_at_its_index_and_the_others_answered(
    gql: GraphQLClient, make: Factory, written: str
) -> None:
    example = await make.domain("example.com")
    admin = await make.account(example, "admin", admin=True)
    token = await make.token_for(admin)
    good = ours("Account", admin.id)

    body = await gql.post(NODES, {"ids": [good, ours_raw(written), good]}, token=token)

    assert [n and n["username"] for n in body["data"]["nodes"]] == ["admin", None, "admin"]
    assert [(e["path"], e["extensions"]["code"]) for e in body["errors"]] == [
        (["nodes", 1], "BAD_USER_INPUT")
    ]


async def test_another_spelling_of_a_good_id_is_not_one(gql: GraphQLClient, make: Factory) -> None:
    example = await make.domain("example.com")
    admin = await make.account(example, "admin", admin=True)
    token = await make.token_for(admin)
    good = ours("Account", admin.id)
    spellings = [good + "=", good + "\n", " " + good, good.lower() if good != good.lower() else ""]

    body = await gql.post(NODES, {"ids": spellings}, token=token)

    assert body["data"]["nodes"] == [None] * 4
    assert {e["extensions"]["code"] for e in body["errors"]} == {"BAD_USER_INPUT"}


async def test_a_system_administrator_reads_any_domains_objects(
    gql: GraphQLClient, make: Factory
) -> None:
    other = await make.domain("other.org")
    zed = await make.account(other, "zed")
    root = await make.token_for(await make.system_admin())

    data = await gql.data(
        NODES, {"ids": [ours("Account", zed.id), ours("Domain", other.id)]}, token=root
    )

    assert data["nodes"] == [
        {"__typename": "Account", "id": ours("Account", zed.id), "username": "zed"},
        {"__typename": "Domain", "id": ours("Domain", other.id)},
    ]


async def test_nodes_costs_the_same_sql_for_two_ids_or_fifty(
    gql: GraphQLClient, make: Factory, sql: StatementCounter
) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))
    await make.accounts(example, 50)
    pks = [a.id for a in await example.accounts.all().order_by("id")]
    counts = []
    for size in (2, 50):
        sql.statements.clear()
        data = await gql.data(
            NODES, {"ids": [ours("Account", pk) for pk in pks[:size]]}, token=token
        )
        assert len(data["nodes"]) == size and all(data["nodes"])
        counts.append(len(sql.statements))

    assert counts[0] == counts[1]


async def test_more_than_a_hundred_ids_are_refused(gql: GraphQLClient, make: Factory) -> None:
    example: Domain = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))

    body = await gql.post(NODES, {"ids": [ours("Account", 1)] * 101}, token=token)

    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]
    assert "At most 100 ids" in body["errors"][0]["message"]


async def test_the_usage_and_the_viewer_have_ids_that_stay_the_same(
    gql: GraphQLClient, make: Factory
) -> None:
    """So a normalizing cache updates the usage it holds from an enable's answer."""
    example = await make.domain("example.com", limit=5)
    admin = await make.account(example, "admin", admin=True)
    await make.account(example, "alice")
    other = await make.domain("other.org")
    token = await make.token_for(admin)
    enable = 'mutation { enableMapiEws(input: {usernames: ["alice"]}) { usage { id enabled } } }'

    before = await gql.data("{ mapiEwsUsage { id enabled } viewer { id } }", token=token)
    changed = await gql.data(enable, token=token)
    after = await gql.data("{ mapiEwsUsage { id enabled } viewer { id } }", token=token)
    root = await gql.data(
        '{ mapiEwsUsage(domain: "other.org") { id } viewer { id } }',
        token=await make.token_for(await make.system_admin()),
    )

    assert before["mapiEwsUsage"]["id"] == changed["enableMapiEws"]["usage"]["id"]
    assert (before["mapiEwsUsage"]["enabled"], after["mapiEwsUsage"]["enabled"]) == (0, 1)
    assert before["viewer"]["id"] == after["viewer"]["id"]
    assert root["mapiEwsUsage"]["id"] != before["mapiEwsUsage"]["id"]
    assert root["viewer"]["id"] != before["viewer"]["id"]
    assert other.name == "other.org"
