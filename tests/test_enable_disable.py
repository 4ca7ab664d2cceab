import asyncio

import pytest

from api.models import Account, AuditEntry, Domain
from tests.conftest import Factory, GraphQLClient

ENABLE = """
mutation Enable($domain: String, $usernames: [String!]!) {
  enableMapiEws(input: {domain: $domain, usernames: $usernames}) {
    accounts { username mapiEwsEnabled }
    usage { domain enabled limit available }
    userErrors { field code message }
  }
}
"""
DISABLE = """
mutation Disable($domain: String, $usernames: [String!]!) {
  disableMapiEws(input: {domain: $domain, usernames: $usernames}) {
    accounts { username mapiEwsEnabled }
    usage { enabled limit available }
    userErrors { field code message }
  }
}
"""
AUDIT = "{ auditLog(first: 100) { totalCount edges { node { actor action domain target } } } }"


async def snapshot() -> tuple[list[tuple[str, bool]], int]:
    """Everything these mutations may change: each account's flag, and the audit log's size."""
    flags = await Account.all().order_by("id").values_list("username", "mapi_ews_enabled")
    return [(u, bool(e)) for u, e in flags], await AuditEntry.all().count()


@pytest.fixture
async def tab(make: Factory) -> tuple[str, Domain]:
    example = await make.domain(limit=3)
    admin = await make.account(example, "admin", admin=True)
    for name in ("alice", "bob", "carol", "dave", "erin"):
        await make.account(example, name)
    return await make.token_for(admin), example


async def test_enabling_one_account_turns_on_mapi_and_ews_and_audits_it(
    gql: GraphQLClient, tab: tuple[str, Domain]
) -> None:
    token, _ = tab

    data = await gql.data(ENABLE, {"usernames": ["alice"]}, token=token)

    assert data["enableMapiEws"] == {
        "accounts": [{"username": "alice", "mapiEwsEnabled": True}],
        "usage": {"domain": "example.com", "enabled": 1, "limit": 3, "available": 2},
        "userErrors": [],
    }
    alice = await Account.get(username="alice")
    assert alice.mapi_ews_enabled is True
    assert alice.mapi_ews_enabled_at is not None
    audit = await gql.data(AUDIT, token=token)
    assert audit["auditLog"]["edges"] == [
        {
            "node": {
                "actor": "admin@example.com",
                "action": "MAPI_EWS_ENABLED",
                "domain": "example.com",
                "target": "alice@example.com",
            }
        }
    ]


async def test_enabling_several_takes_usernames_and_addresses_without_case(
    gql: GraphQLClient, tab: tuple[str, Domain]
) -> None:
    token, _ = tab

    data = await gql.data(ENABLE, {"usernames": ["Alice", "BOB@Example.com", "alice"]}, token=token)

    assert data["enableMapiEws"]["accounts"] == [
        {"username": "alice", "mapiEwsEnabled": True},
        {"username": "bob", "mapiEwsEnabled": True},
    ]
    assert data["enableMapiEws"]["usage"]["enabled"] == 2
    assert await AuditEntry.filter(action="MAPI_EWS_ENABLED").count() == 2


async def test_enabling_an_enabled_account_is_not_an_error_and_writes_nothing(
    gql: GraphQLClient, tab: tuple[str, Domain]
) -> None:
    token, _ = tab
    await gql.data(ENABLE, {"usernames": ["alice"]}, token=token)
    before = await snapshot()

    data = await gql.data(ENABLE, {"usernames": ["alice"]}, token=token)

    assert data["enableMapiEws"]["userErrors"] == []
    assert data["enableMapiEws"]["usage"]["enabled"] == 1
    assert await snapshot() == before


async def test_going_past_the_limit_refuses_the_whole_batch(
    gql: GraphQLClient, tab: tuple[str, Domain]
) -> None:
    token, _ = tab
    await gql.data(ENABLE, {"usernames": ["alice", "bob"]}, token=token)
    before = await snapshot()

    data = await gql.data(ENABLE, {"usernames": ["carol", "dave"]}, token=token)

    assert data["enableMapiEws"]["accounts"] == []
    assert data["enableMapiEws"]["usage"] is None
    assert data["enableMapiEws"]["userErrors"] == [
        {
            "field": ["input", "usernames"],
            "code": "LIMIT_EXCEEDED",
            "message": "example.com may have 3 MAPI/EWS accounts; 2 are in use, so 2 more would exceed the limit.",
        }
    ]
    assert await snapshot() == before


async def test_an_already_enabled_account_does_not_count_against_the_limit_twice(
    gql: GraphQLClient, tab: tuple[str, Domain]
) -> None:
    token, _ = tab
    await gql.data(ENABLE, {"usernames": ["alice", "bob"]}, token=token)

    data = await gql.data(ENABLE, {"usernames": ["alice", "bob", "carol"]}, token=token)

    assert data["enableMapiEws"]["userErrors"] == []
    assert data["enableMapiEws"]["usage"] == {
        "domain": "example.com",
        "enabled": 3,
        "limit": 3,
        "available": 0,
    }


@pytest.mark.parametrize(
    ("usernames", "errors"),
    [
        ([], [(["input", "usernames"], "INVALID_INPUT")]),
        (
            ["alice", "ghost", "bob", "nobody"],
            [
                (["input", "usernames", "1"], "NOT_FOUND"),
                (["input", "usernames", "3"], "NOT_FOUND"),
            ],
        ),
        (["alice", "bad name"], [(["input", "usernames", "1"], "INVALID_INPUT")]),
        (["alice", "bob@other.org"], [(["input", "usernames", "1"], "INVALID_INPUT")]),
        (["x" * 65], [(["input", "usernames", "0"], "INVALID_INPUT")]),
        (["ali\u0007ce"], [(["input", "usernames", "0"], "INVALID_INPUT")]),
        (["alice"] * 1000, [(["input", "usernames"], "INVALID_INPUT")]),
        (["@example.com"], [(["input", "usernames", "0"], "INVALID_INPUT")]),
    ],
)
@pytest.mark.parametrize("mutation", ["enableMapiEws", "disableMapiEws"])
async def test_bad_input_changes_nothing_and_points_at_the_item(
    gql: GraphQLClient, tab: tuple[str, Domain], usernames: list[str], errors: list, mutation: str
) -> None:
    token, _ = tab
    await gql.data(ENABLE, {"usernames": ["carol"]}, token=token)
    before = await snapshot()

    data = await gql.data(
        ENABLE if mutation == "enableMapiEws" else DISABLE, {"usernames": usernames}, token=token
    )

    payload = data[mutation]
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == errors
    assert all(e["message"] for e in payload["userErrors"])
    assert payload["accounts"] == []
    assert await snapshot() == before


async def test_disabling_several_selected_rows_frees_their_allowance(
    gql: GraphQLClient, tab: tuple[str, Domain]
) -> None:
    token, _ = tab
    await gql.data(ENABLE, {"usernames": ["alice", "bob", "carol"]}, token=token)

    data = await gql.data(DISABLE, {"usernames": ["alice", "carol"]}, token=token)

    assert data["disableMapiEws"] == {
        "accounts": [
            {"username": "alice", "mapiEwsEnabled": False},
            {"username": "carol", "mapiEwsEnabled": False},
        ],
        "usage": {"enabled": 1, "limit": 3, "available": 2},
        "userErrors": [],
    }
    assert (await Account.get(username="alice")).mapi_ews_enabled_at is None
    audit = await gql.data(AUDIT, token=token)
    assert [(e["node"]["action"], e["node"]["target"]) for e in audit["auditLog"]["edges"][:2]] == [
        ("MAPI_EWS_DISABLED", "carol@example.com"),
        ("MAPI_EWS_DISABLED", "alice@example.com"),
    ]


async def test_disabling_a_disabled_account_writes_nothing(
    gql: GraphQLClient, tab: tuple[str, Domain]
) -> None:
    token, _ = tab
    before = await snapshot()

    data = await gql.data(DISABLE, {"usernames": ["alice"]}, token=token)

    assert data["disableMapiEws"]["userErrors"] == []
    assert await snapshot() == before


async def test_racing_enables_never_leave_the_domain_above_its_limit(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("race.example", limit=7)
    admin = await make.account(example, "admin", admin=True)
    token = await make.token_for(admin)
    await make.accounts(example, 30, prefix="racer")

    # 30 single enables and 5 pairs, all at once, against an allowance of 7.
    batches = [[f"racer{i:05d}"] for i in range(30)] + [
        [f"racer{i:05d}", f"racer{i + 1:05d}"] for i in range(0, 10, 2)
    ]
    results = await asyncio.gather(
        *(gql.data(ENABLE, {"usernames": b}, token=token) for b in batches)
    )

    enabled = await Account.filter(domain_id=example.id, mapi_ews_enabled=True).count()
    refused = [r for r in results if r["enableMapiEws"]["userErrors"]]
    assert enabled == 7
    assert all(r["enableMapiEws"]["userErrors"][0]["code"] == "LIMIT_EXCEEDED" for r in refused)
    assert await AuditEntry.filter(action="MAPI_EWS_ENABLED").count() == 7


async def test_lowering_the_limit_keeps_enabled_accounts_and_refuses_new_ones(
    gql: GraphQLClient, make: Factory, tab: tuple[str, Domain]
) -> None:
    token, example = tab
    await gql.data(ENABLE, {"usernames": ["alice", "bob", "carol"]}, token=token)
    example.max_mapi_ews_accounts = 1
    await example.save(update_fields=["max_mapi_ews_accounts"])

    refused = await gql.data(ENABLE, {"usernames": ["dave"]}, token=token)
    await gql.data(DISABLE, {"usernames": ["alice", "bob"]}, token=token)
    still_full = await gql.data(ENABLE, {"usernames": ["dave"]}, token=token)
    await gql.data(DISABLE, {"usernames": ["carol"]}, token=token)
    accepted = await gql.data(ENABLE, {"usernames": ["dave"]}, token=token)

    assert refused["enableMapiEws"]["userErrors"][0]["code"] == "LIMIT_EXCEEDED"
    assert still_full["enableMapiEws"]["userErrors"][0]["code"] == "LIMIT_EXCEEDED"
    assert accepted["enableMapiEws"]["usage"] == {
        "domain": "example.com",
        "enabled": 1,
        "limit": 1,
        "available": 0,
    }
