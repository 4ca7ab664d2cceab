"""Accounts follow the mail server: upsertAccounts creates, updates and renames in batches, all
or nothing, and writes nothing for what did not change."""

import asyncio

from api.models import Account, AuditEntry, Domain, LoginEvent, ProtocolSession
from api.services import provisioning
from tests.conftest import Factory, GraphQLClient

UPSERT = """
mutation Upsert($domain: String!, $accounts: [AccountRecordInput!]!) {
  upsertAccounts(input: {domain: $domain, accounts: $accounts}) {
    created updated renamed unchanged userErrors { field code message }
  }
}
"""
ACCOUNTS = """
{ accounts(domain: "example.com", first: 50) {
    edges { node { username name externalId isDomainAdmin mapiEwsEnabled lastLogin } } } }
"""
AUDIT = '{ auditLog(domain: "example.com", first: 50) { edges { node { action target } } } }'
LOGIN = """
mutation($u: String!) { login(input: {username: $u, password: "anything at all 1"}) {
  accessToken userErrors { code } } }
"""
TAB = "{ mapiEwsAccounts(first: 1) { totalCount } }"
REPORT = """
mutation($e: String!, $s: String) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI, sessionId: $s}) { allowed }
}
"""


async def state() -> list[tuple[object, ...]]:
    """Everything an upsert may change: each account's columns, and the audit log's size."""
    rows = (
        await Account.all()
        .order_by("id")
        .values_list("id", "username", "name", "external_id", "is_domain_admin", "password_hash")
    )
    return [*rows, ("audit", await AuditEntry.all().count())]


async def test_new_records_are_created_without_a_password_and_audited(
    gql: GraphQLClient, make: Factory
) -> None:
    await make.domain("example.com")
    root = await make.token_for(await make.system_admin())

    data = await gql.data(
        UPSERT,
        {
            "domain": "Example.com",
            "accounts": [
                {"username": "Alice", "name": "Alice Liddell", "externalId": "guid-1"},
                {"username": "bob@example.com", "isDomainAdmin": True},
            ],
        },
        token=root,
    )

    assert data["upsertAccounts"] == {
        "created": 2,
        "updated": 0,
        "renamed": 0,
        "unchanged": 0,
        "userErrors": [],
    }
    listed = await gql.data(ACCOUNTS, token=root)
    assert [e["node"] for e in listed["accounts"]["edges"]] == [
        {
            "username": "alice",
            "name": "Alice Liddell",
            "externalId": "guid-1",
            "isDomainAdmin": False,
            "mapiEwsEnabled": False,
            "lastLogin": None,
        },
        {
            "username": "bob",
            "name": None,
            "externalId": None,
            "isDomainAdmin": True,
            "mapiEwsEnabled": False,
            "lastLogin": None,
        },
    ]
    audit = await gql.data(AUDIT, token=root)
    assert sorted(
        (e["node"]["action"], e["node"]["target"]) for e in audit["auditLog"]["edges"]
    ) == [
        ("ACCOUNT_CREATED", "alice@example.com"),
        ("ACCOUNT_CREATED", "bob@example.com"),
    ]
    # No password: the account cannot sign in here, whatever is tried.
    signed = await gql.data(LOGIN, {"u": "bob@example.com"})
    assert signed["login"] == {"accessToken": None, "userErrors": [{"code": "INVALID_CREDENTIALS"}]}


async def test_the_same_records_again_write_nothing(gql: GraphQLClient, make: Factory) -> None:
    await make.domain("example.com")
    root = await make.token_for(await make.system_admin())
    records = [
        {"username": "alice", "name": "Alice", "externalId": "guid-1", "isDomainAdmin": True},
        {"username": "bob", "name": None},
    ]
    await gql.data(UPSERT, {"domain": "example.com", "accounts": records}, token=root)
    before = await state()

    again = await gql.data(UPSERT, {"domain": "example.com", "accounts": records}, token=root)

    assert again["upsertAccounts"]["unchanged"] == 2
    assert again["upsertAccounts"]["created"] == again["upsertAccounts"]["updated"] == 0
    assert await state() == before


async def test_names_and_the_admin_flag_are_updated_and_audited_once_each(
    gql: GraphQLClient, make: Factory
) -> None:
    domain = await make.domain("example.com")
    await make.account(domain, "alice", name="Alice", admin=True)
    await make.account(domain, "bob", name="Bob")
    root = await make.token_for(await make.system_admin())

    data = await gql.data(
        UPSERT,
        {
            "domain": "example.com",
            "accounts": [
                {"username": "alice", "name": "Alice L.", "isDomainAdmin": False},
                # isDomainAdmin absent: unchanged
                {"username": "bob", "name": "Bob"},
            ],
        },
        token=root,
    )

    assert data["upsertAccounts"]["updated"] == 1
    assert data["upsertAccounts"]["unchanged"] == 1
    alice = await Account.get(username="alice")
    assert (alice.name, alice.is_domain_admin) == ("Alice L.", False)
    assert (await Account.get(username="bob")).is_domain_admin is False
    entries = await AuditEntry.filter(action="ACCOUNT_UPDATED").values_list("target", flat=True)
    assert entries == ["alice@example.com"]


async def test_a_demoted_administrators_access_token_is_refused_at_once(
    gql: GraphQLClient, make: Factory
) -> None:
    domain = await make.domain("example.com")
    alice = await make.account(domain, "alice", admin=True)
    bob = await make.account(domain, "bob", admin=True)
    root = await make.token_for(await make.system_admin())
    token, other = await make.token_for(alice), await make.token_for(bob)
    assert "errors" not in await gql.post(TAB, token=token)  # trusted, and remembered

    await gql.data(
        UPSERT,
        {"domain": "example.com", "accounts": [{"username": "alice", "isDomainAdmin": False}]},
        token=root,
    )

    async with asyncio.timeout(1):
        while "errors" not in (answer := await gql.post(TAB, token=token)):
            await asyncio.sleep(0.01)
    assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    # The domain's other administrator is asked about again, and still stands.
    assert "errors" not in await gql.post(TAB, token=other)


async def test_a_known_external_id_under_a_new_username_is_a_rename_that_keeps_everything(
    gql: GraphQLClient, make: Factory
) -> None:
    domain = await make.domain("example.com", limit=5)
    alice = await make.account(domain, "alice", enabled=True)
    await Account.filter(id=alice.id).update(external_id="guid-1")
    root = await make.token_for(await make.system_admin())
    gateway = await make.gateway()
    reported = await gql.data(REPORT, {"e": "alice@example.com", "s": "s-1"}, token=gateway)
    assert reported["recordProtocolLogin"]["allowed"] is True

    data = await gql.data(
        UPSERT,
        {
            "domain": "example.com",
            "accounts": [{"username": "alice.smith", "name": "Alice", "externalId": "guid-1"}],
        },
        token=root,
    )

    assert data["upsertAccounts"]["renamed"] == 1
    renamed = await Account.get(id=alice.id)  # the same row: seat, last login, history
    assert (renamed.username, renamed.mapi_ews_enabled) == ("alice.smith", True)
    assert renamed.last_login is not None
    assert await LoginEvent.filter(account_id=alice.id).count() == 1
    session = await ProtocolSession.get(session_id="s-1")
    assert (session.account_id, session.username) == (alice.id, "alice.smith")
    assert (await Domain.get(id=domain.id)).mapi_ews_enabled_count == 1
    assert await AuditEntry.filter(action="ACCOUNT_RENAMED").values_list("target", flat=True) == [
        "alice.smith@example.com"
    ]
    # The old name is free for a new account, which starts with no seat.
    again = await gql.data(
        UPSERT, {"domain": "example.com", "accounts": [{"username": "alice"}]}, token=root
    )
    assert again["upsertAccounts"]["created"] == 1
    assert (await Account.get(username="alice")).mapi_ews_enabled is False
    # Reports go to the account by its new name.
    after = await gql.data(REPORT, {"e": "alice.smith@example.com"}, token=gateway)
    assert after["recordProtocolLogin"]["allowed"] is True


async def test_two_accounts_may_swap_names_in_one_batch(gql: GraphQLClient, make: Factory) -> None:
    domain = await make.domain("example.com")
    a = await make.account(domain, "alice")
    b = await make.account(domain, "bob")
    await Account.filter(id=a.id).update(external_id="a")
    await Account.filter(id=b.id).update(external_id="b")
    root = await make.token_for(await make.system_admin())

    data = await gql.data(
        UPSERT,
        {
            "domain": "example.com",
            "accounts": [
                {"username": "bob", "externalId": "a"},
                {"username": "alice", "externalId": "b"},
            ],
        },
        token=root,
    )

    assert data["upsertAccounts"]["renamed"] == 2
    assert (await Account.get(id=a.id)).username == "bob"
    assert (await Account.get(id=b.id)).username == "alice"


async def test_a_rename_onto_another_accounts_name_is_refused_and_changes_nothing(
    gql: GraphQLClient, make: Factory
) -> None:
    domain = await make.domain("example.com")
    a = await make.account(domain, "alice")
    b = await make.account(domain, "bob")
    await Account.filter(id=a.id).update(external_id="a")
    await Account.filter(id=b.id).update(external_id="b")
    root = await make.token_for(await make.system_admin())
    before = await state()

    data = await gql.data(
        UPSERT,
        {
            "domain": "example.com",
            "accounts": [{"username": "carol"}, {"username": "bob", "externalId": "a"}],
        },
        token=root,
    )

    assert data["upsertAccounts"]["created"] == 0
    assert [(e["field"], e["code"]) for e in data["upsertAccounts"]["userErrors"]] == [
        (["input", "accounts", "1", "username"], "ALREADY_EXISTS")
    ]
    assert await state() == before


async def test_bad_records_are_named_by_index_and_nothing_changes(
    gql: GraphQLClient, make: Factory
) -> None:
    await make.domain("example.com")
    root = await make.token_for(await make.system_admin())
    before = await state()

    data = await gql.data(
        UPSERT,
        {
            "domain": "example.com",
            "accounts": [
                {"username": "fine"},
                {"username": "no spaces"},
                {"username": "eve@other.org"},
                {"username": "fine"},
                {"username": "x", "externalId": "   "},
                {"username": "y", "name": "bell\u0007"},
            ],
        },
        token=root,
    )

    assert [(e["field"], e["code"]) for e in data["upsertAccounts"]["userErrors"]] == [
        (["input", "accounts", "1", "username"], "INVALID_INPUT"),
        (["input", "accounts", "2", "username"], "INVALID_INPUT"),
        (["input", "accounts", "3", "username"], "INVALID_INPUT"),
        (["input", "accounts", "4", "externalId"], "INVALID_INPUT"),
        (["input", "accounts", "5", "name"], "INVALID_INPUT"),
    ]
    assert await state() == before


async def test_a_batch_is_at_most_500_and_names_a_live_domain(
    gql: GraphQLClient, make: Factory
) -> None:
    await make.domain("example.com")
    root = await make.token_for(await make.system_admin())
    many = [{"username": f"u{i}"} for i in range(provisioning.MAX_RECORDS + 1)]

    too_many = await gql.data(UPSERT, {"domain": "example.com", "accounts": many}, token=root)
    unknown = await gql.data(
        UPSERT, {"domain": "nowhere.org", "accounts": [{"username": "a"}]}, token=root
    )

    assert too_many["upsertAccounts"]["userErrors"][0]["field"] == ["input", "accounts"]
    assert unknown["upsertAccounts"]["userErrors"] == [
        {"field": ["input", "domain"], "code": "NOT_FOUND", "message": "No domain nowhere.org."}
    ]
    assert await Account.all().count() == 0


async def test_only_a_system_administrator_may_provision(gql: GraphQLClient, make: Factory) -> None:
    domain = await make.domain("example.com")
    admin = await make.token_for(await make.account(domain, "admin", admin=True))

    body = await gql.post(
        UPSERT, {"domain": "example.com", "accounts": [{"username": "a"}]}, token=admin
    )

    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert await Account.all().count() == 1
