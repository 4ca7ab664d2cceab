"""Accounts and domains gone from the mail server: seats freed at once, sessions told to end,
administrators signed out, history and audit kept, a removed domain still billed."""

import asyncio
from datetime import UTC, datetime

import pytest
from starlette.applications import Starlette

from api.auth.principal import Principal, Role
from api.events import EventBus, Topic
from api.models import (
    Account,
    AuditEntry,
    Domain,
    GatewayToken,
    LoginEvent,
    ProtocolSession,
    RefreshToken,
    SessionEndReason,
    UsageDay,
)
from api.services import protocol_sessions, sign_ins
from api.services.domains import Usage
from api.services.event_payloads import MapiEwsChanged, SessionCommand
from tests.conftest import PASSWORD, Factory, GraphQLClient, StatementCounter

REMOVE = """
mutation Remove($domain: String!, $u: [String!]!) {
  removeAccounts(input: {domain: $domain, usernames: $u}) {
    removed seatsFreed sessionsEnding usage { enabled limit available }
    userErrors { field code message }
  }
}
"""
REMOVE_DOMAIN = """
mutation RemoveDomain($name: String!, $confirm: String!) {
  removeDomain(input: {name: $name, confirm: $confirm}) {
    removedAccounts sessionsEnding userErrors { field code message }
  }
}
"""
REPORT = """
mutation($e: String!, $s: String) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI, sessionId: $s}) {
    allowed userErrors { code }
  }
}
"""
TOUCH = "mutation($ids: [String!]!) { touchProtocolSessions(input: {sessionIds: $ids}) { endNow } }"
HISTORY = """
{ mapiEwsLoginEvents(domain: "example.com", first: 10) {
    edges { node { username account { username } } } } }
"""
ENABLE = """
mutation($d: String!, $u: [String!]!) {
  enableMapiEws(input: {domain: $d, usernames: $u}) { userErrors { code } }
}
"""
CREATE_DOMAIN = """
mutation($n: String!) { createDomain(input: {name: $n}) { domain { name } userErrors { code } } }
"""
DOMAINS = "{ domains(first: 10) { edges { node { name } } } }"
USAGE_REPORT = """
query($m: String!) { mapiEwsUsageReport(month: $m, first: 10) {
  edges { node { domain peakEnabled enabledAtEnd } } } }
"""
LOGIN = """
mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) {
  accessToken refreshToken userErrors { code } } }
"""
TAB = "{ mapiEwsAccounts(first: 1) { totalCount } }"
REFRESH = """
mutation($t: String!) { refreshAccessToken(input: {refreshToken: $t}) {
  accessToken userErrors { code } } }
"""


@pytest.fixture
async def hosted(make: Factory, gql: GraphQLClient) -> dict[str, str]:
    domain = await make.domain("example.com", limit=10)
    for name in ("alice", "bob"):
        await make.account(domain, name, enabled=True)
    await make.account(domain, "carol")
    await make.account(domain, "admin", admin=True)
    gateway = await make.gateway("mapi-1")
    for email, session in (("alice@example.com", "a-1"), ("alice@example.com", "a-2")):
        await gql.data(REPORT, {"e": email, "s": session}, token=gateway)
    await gql.data(REPORT, {"e": "bob@example.com", "s": "b-1"}, token=gateway)
    return {"root": await make.token_for(await make.system_admin()), "gateway": gateway}


async def test_removing_accounts_frees_their_seats_and_tells_their_sessions_to_end(
    app: Starlette, gql: GraphQLClient, hosted: dict[str, str]
) -> None:
    events: EventBus = app.state.events
    domain = await Domain.get(name="example.com")
    gateway_id = (await GatewayToken.get(name="mapi-1")).id
    async with (
        events.subscribe(Topic.SESSION_COMMANDS, gateway_id) as commands,
        events.subscribe(Topic.ACCOUNT_CHANGES, domain.id) as changes,
        events.subscribe(Topic.USAGE, domain.id) as usage,
    ):
        data = await gql.data(
            REMOVE, {"domain": "example.com", "u": ["alice", "carol"]}, token=hosted["root"]
        )
        command = (await anext(commands)).payload
        change = (await anext(changes)).payload
        used = (await anext(usage)).payload

    assert data["removeAccounts"] == {
        "removed": 2,
        "seatsFreed": 1,
        "sessionsEnding": 2,
        "usage": {"enabled": 1, "limit": 10, "available": 9},
        "userErrors": [],
    }
    assert isinstance(command, SessionCommand)
    assert (sorted(command.end_session_ids), command.email_address, command.reason) == (
        ["a-1", "a-2"],
        "alice@example.com",
        SessionEndReason.ACCOUNT_REMOVED,
    )
    # Announced as a disable of the account as it was, so open dashboards drop its row.
    assert isinstance(change, MapiEwsChanged)
    assert (change.enabled, change.account.username) == (False, "alice")
    assert used == Usage("example.com", 1, 10)
    assert (await Domain.get(id=domain.id)).mapi_ews_enabled_count == 1
    today = await UsageDay.get(domain_id=domain.id, day=datetime.now(UTC).date())
    assert (today.peak_enabled, today.enabled_at_end) == (2, 1)
    assert await Account.filter(username__in=["alice", "carol"]).count() == 0
    # The sessions stay, told to end, for the gateway's backlog and its next confirmation.
    backlog = await protocol_sessions.backlog(gateway_id=gateway_id)
    assert [(sorted(c.end_session_ids), c.reason) for c in backlog] == [
        (["a-1", "a-2"], SessionEndReason.ACCOUNT_REMOVED)
    ]
    touched = await gql.data(TOUCH, {"ids": ["a-1", "b-1"]}, token=hosted["gateway"])
    assert touched["touchProtocolSessions"]["endNow"] == ["a-1"]
    # The history keeps the logins, with no account.
    history = await gql.data(HISTORY, token=hosted["root"])
    assert sorted(
        (e["node"]["username"], e["node"]["account"])
        for e in history["mapiEwsLoginEvents"]["edges"]
    ) == [("alice", None), ("bob", {"username": "bob"})]  # alice's two logins: one event
    assert await LoginEvent.filter(account_id=None).count() == 1
    targets = await AuditEntry.filter(action="ACCOUNT_REMOVED").values_list("target", flat=True)
    assert sorted(targets) == ["alice@example.com", "carol@example.com"]


async def test_a_removed_username_may_come_back_as_a_new_account_without_a_seat(
    gql: GraphQLClient, hosted: dict[str, str]
) -> None:
    await gql.data(REMOVE, {"domain": "example.com", "u": ["alice"]}, token=hosted["root"])

    refused = await gql.data(REPORT, {"e": "alice@example.com"}, token=hosted["gateway"])
    upsert = await gql.data(
        'mutation { upsertAccounts(input: {domain: "example.com", accounts: [{username: "alice"}]})'
        " { created } }",
        token=hosted["root"],
    )
    again = await gql.data(REPORT, {"e": "alice@example.com"}, token=hosted["gateway"])

    assert refused["recordProtocolLogin"]["userErrors"] == [{"code": "NOT_FOUND"}]
    assert upsert["upsertAccounts"]["created"] == 1
    assert again["recordProtocolLogin"] == {"allowed": False, "userErrors": []}


async def test_a_removal_naming_an_unknown_account_removes_nothing(
    gql: GraphQLClient, hosted: dict[str, str]
) -> None:
    before = await Account.all().count(), await AuditEntry.all().count()

    data = await gql.data(
        REMOVE, {"domain": "example.com", "u": ["alice", "nobody"]}, token=hosted["root"]
    )

    assert data["removeAccounts"]["removed"] == 0
    assert [(e["field"], e["code"]) for e in data["removeAccounts"]["userErrors"]] == [
        (["input", "usernames", "1"], "NOT_FOUND")
    ]
    assert (await Account.all().count(), await AuditEntry.all().count()) == before
    assert await ProtocolSession.filter(end_reason__isnull=False).count() == 0


async def test_a_removed_administrator_is_signed_out_everywhere(
    gql: GraphQLClient, make: Factory, hosted: dict[str, str]
) -> None:
    signed = await gql.data(LOGIN, {"u": "admin@example.com", "p": PASSWORD})
    refresh, access = signed["login"]["refreshToken"], signed["login"]["accessToken"]
    assert (await gql.data(TAB, token=access))["mapiEwsAccounts"]["totalCount"] == 2
    admin = await Account.get(username="admin")
    principal = Principal(
        role=Role.DOMAIN_ADMIN,
        subject_id=admin.id,
        username="admin@example.com",
        domain_id=admin.domain_id,
        domain="example.com",
    )
    assert await sign_ins.still_allowed(principal) is True

    await gql.data(REMOVE, {"domain": "example.com", "u": ["admin"]}, token=hosted["root"])

    # Its refresh tokens are gone, and its WebSockets close at their next check.
    assert await RefreshToken.filter(account_id=admin.id).count() == 0
    refused = await gql.data(REFRESH, {"t": refresh})
    assert refused["refreshAccessToken"]["accessToken"] is None
    assert await sign_ins.still_allowed(principal) is False
    # Its access token, trusted a moment ago, is refused from the removal on (the process heard
    # it on the event bus; credential_check_seconds is only the bound when that was lost).
    async with asyncio.timeout(1):
        while "errors" not in (answer := await gql.post(TAB, token=access)):
            await asyncio.sleep(0.01)
    assert answer["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert "sign in again" in answer["errors"][0]["message"].lower()


async def test_removing_a_domain_needs_its_name_twice_and_keeps_it_in_the_bill(
    gql: GraphQLClient, hosted: dict[str, str]
) -> None:
    root = hosted["root"]
    slip = await gql.data(
        REMOVE_DOMAIN, {"name": "example.com", "confirm": "exmaple.com"}, token=root
    )
    assert [(e["field"], e["code"]) for e in slip["removeDomain"]["userErrors"]] == [
        (["input", "confirm"], "INVALID_INPUT")
    ]
    assert await Account.all().count() == 4

    data = await gql.data(
        REMOVE_DOMAIN, {"name": "example.com", "confirm": "Example.com"}, token=root
    )

    assert data["removeDomain"] == {"removedAccounts": 4, "sessionsEnding": 3, "userErrors": []}
    assert await Account.all().count() == 0
    domain = await Domain.get(name="example.com")
    assert (domain.removed_at is not None, domain.mapi_ews_enabled_count) == (True, 0)
    listed = await gql.data(DOMAINS, token=root)
    assert listed["domains"]["edges"] == []
    # Gone for every request that names it ...
    enable = await gql.data(ENABLE, {"d": "example.com", "u": ["alice"]}, token=root)
    assert enable["enableMapiEws"]["userErrors"] == [{"code": "NOT_FOUND"}]
    again = await gql.data(
        REMOVE_DOMAIN, {"name": "example.com", "confirm": "example.com"}, token=root
    )
    assert again["removeDomain"]["userErrors"][0]["code"] == "NOT_FOUND"
    # ... but billed for the month it existed in, its peak included.
    month = datetime.now(UTC).strftime("%Y-%m")
    bill = await gql.data(USAGE_REPORT, {"m": month}, token=root)
    assert [e["node"] for e in bill["mapiEwsUsageReport"]["edges"]] == [
        {"domain": "example.com", "peakEnabled": 2, "enabledAtEnd": 0}
    ]
    actions = await AuditEntry.filter(domain_id=domain.id).values_list("action", flat=True)
    assert actions.count("ACCOUNT_REMOVED") == 4 and actions.count("DOMAIN_REMOVED") == 1
    # Creating it again brings the row back, history and all.
    created = await gql.data(CREATE_DOMAIN, {"n": "example.com"}, token=root)
    assert created["createDomain"] == {"domain": {"name": "example.com"}, "userErrors": []}
    assert (await Domain.get(name="example.com")).id == domain.id


async def test_removing_accounts_takes_the_same_statements_for_2_or_40(
    gql: GraphQLClient, make: Factory, sql: StatementCounter
) -> None:
    domain = await make.domain("example.com")
    await make.accounts(domain, 42, enabled=42)
    gateway = await make.gateway()
    for i in range(42):
        await gql.data(REPORT, {"e": f"user{i:05d}@example.com", "s": f"s-{i}"}, token=gateway)
    root = await make.token_for(await make.system_admin())
    counts = []
    for names in ([f"user{i:05d}" for i in range(2)], [f"user{i:05d}" for i in range(2, 42)]):
        sql.statements.clear()
        data = await gql.data(REMOVE, {"domain": "example.com", "u": names}, token=root)
        assert data["removeAccounts"]["sessionsEnding"] == len(names)
        counts.append(len(sql.statements))

    assert counts[0] == counts[1]


async def test_removals_racing_enables_and_reports_leave_the_count_exact(
    gql: GraphQLClient, make: Factory
) -> None:
    domain = await make.domain("example.com", limit=40)
    await make.accounts(domain, 60, enabled=20)
    gateway = await make.gateway()
    root = await make.token_for(await make.system_admin())
    names = [f"user{i:05d}" for i in range(60)]

    await asyncio.gather(
        *(gql.post(REMOVE, {"domain": "example.com", "u": [n]}, token=root) for n in names[::3]),
        *(gql.post(ENABLE, {"d": "example.com", "u": [n]}, token=root) for n in names[1::3]),
        *(gql.post(REPORT, {"e": f"{n}@example.com", "s": n}, token=gateway) for n in names),
    )

    counted = await Account.filter(domain_id=domain.id, mapi_ews_enabled=True).count()
    assert (await Domain.get(id=domain.id)).mapi_ews_enabled_count == counted
    assert counted <= 40
    assert await Account.filter(domain_id=domain.id).count() == 40
