"""Who may connect, and with what: protocols per account, a domain's client access policy, the
reason of every refusal, the sessions a change refuses told to end, and what connects."""

import pytest
from starlette.applications import Starlette

from api.events import EventBus, Topic
from api.models import (
    Account,
    AuditAction,
    AuditEntry,
    ClientAccessMode,
    ClientAccessPolicy,
    GatewayToken,
    LoginEvent,
    MailProtocol,
    ProtocolSession,
    SessionEndReason,
)
from api.services.access_policy import Decider, Policy, Rule, glob_matches, version_of
from api.services.event_payloads import SessionCommand
from tests.conftest import Factory, GraphQLClient

REPORT = """
mutation($e: String!, $p: MailProtocol!, $s: String, $c: String) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: $p, sessionId: $s, clientName: $c}) {
    allowed refusal userErrors { code }
  }
}
"""
REPORTS = """
mutation($r: [RecordProtocolLoginInput!]!) {
  recordProtocolLogins(input: {reports: $r}) { results { allowed refusal userErrors { code } } }
}
"""
ENABLE = """
mutation($u: [String!]!, $p: [MailProtocol!]) {
  enableMapiEws(input: {usernames: $u, protocols: $p}) {
    accounts { username mapiEwsProtocols } userErrors { field code }
  }
}
"""
PROTOCOLS = """
mutation($u: [String!]!, $p: [MailProtocol!]!) {
  setMapiEwsProtocols(input: {usernames: $u, protocols: $p}) {
    accounts { username mapiEwsProtocols activeSessionCount } sessionsEnding
    userErrors { field code message }
  }
}
"""
POLICY = """
mutation($mode: ClientAccessMode!, $rules: [ClientAccessRuleInput!]!, $unnamed: Boolean! = true,
    $dry: Boolean! = false) {
  setClientAccessPolicy(input: {mode: $mode, rules: $rules, allowUnnamedClients: $unnamed,
      dryRun: $dry}) {
    policy { mode rules { pattern protocol belowVersion } allowUnnamedClients updatedBy }
    sessionsEnding
    refusedClients { clientName protocol accounts logins allowedNow }
    userErrors { field code }
  }
}
"""
READ_POLICY = "{ clientAccessPolicy { mode rules { pattern } allowUnnamedClients updatedBy } }"
CLIENTS = """
query($days: Int!) {
  mapiEwsClients(days: $days) {
    clientName protocol accounts logins refusedLogins allowedNow
  }
}
"""
HISTORY = "{ mapiEwsLoginEvents(first: 50) { edges { node { username allowed refusal } } } }"

OUTLOOK_OLD = "Microsoft Outlook 16.0.4266.1001"
OUTLOOK_NEW = "Microsoft Outlook 16.0.17928.20114"
SCRAPER = "python-requests/2.31 LinkedIn scraper"


@pytest.fixture
async def tab(make: Factory) -> dict[str, str]:
    domain = await make.domain(limit=10)
    admin = await make.account(domain, "admin", admin=True)
    for name in ("alice", "bob", "carol"):
        await make.account(domain, name, enabled=True)
    await make.account(domain, "dave")
    return {"admin": await make.token_for(admin), "gateway": await make.gateway()}


async def report(
    gql: GraphQLClient,
    tab: dict[str, str],
    who: str,
    protocol: str = "MAPI",
    client: str | None = OUTLOOK_NEW,
    session: str | None = None,
) -> dict[str, object]:
    data = await gql.data(
        REPORT,
        {"e": f"{who}@example.com", "p": protocol, "c": client, "s": session},
        token=tab["gateway"],
    )
    answer: dict[str, object] = data["recordProtocolLogin"]
    return answer


def test_patterns_match_without_case_with_star_as_the_only_wildcard() -> None:
    def matches(pattern: str, text: str) -> bool:
        return glob_matches(pattern.lower().split("*"), text.lower())

    assert matches("Microsoft Outlook*", OUTLOOK_OLD)
    assert matches("*linkedin*", SCRAPER)
    assert matches("*", "")
    assert matches("a*b*c", "aXXbYYc") and matches("a*b*c", "abc")
    assert not matches("a*b*c", "acb") and not matches("ab*ba", "aba")
    assert not matches("Outlook", OUTLOOK_OLD)  # the whole name, not a part of it
    assert not matches("eM Client [0-9]*", "eM Client 9.2")  # brackets are plain characters
    assert matches("eM Client [0-9]*", "eM Client [0-9] 9.2")
    # A pattern built to make a backtracking matcher explode answers at once.
    assert not matches("*a" * 100 + "*b", "a" * 256)


def test_versions_are_the_first_dotted_numbers_compared_number_by_number() -> None:
    assert version_of(OUTLOOK_OLD) == (16, 0, 4266, 1001)
    assert version_of("eM Client") is None
    assert version_of("16.0") == version_of("16.0.0") == (16,)
    assert (version_of("16.0.10000") or ()) > (16, 0, 9)


def test_a_policy_decides_by_mode_rule_protocol_version_and_unnamed_clients() -> None:
    block = Decider(
        Policy(
            ClientAccessMode.BLOCK_LISTED,
            (
                Rule("*scraper*"),
                Rule("Microsoft Outlook*", below_version="16.0.10000"),
                Rule("Apple Mail*", protocol=MailProtocol.MAPI),
            ),
            allow_unnamed_clients=False,
        )
    )
    allow = Decider(Policy(ClientAccessMode.ALLOW_LISTED_ONLY, (Rule("Microsoft Outlook*"),)))

    assert not block.allows(MailProtocol.EWS, SCRAPER)
    assert not block.allows(MailProtocol.MAPI, OUTLOOK_OLD)
    assert block.allows(MailProtocol.MAPI, OUTLOOK_NEW)
    assert block.allows(MailProtocol.MAPI, "Microsoft Outlook")  # no version: not below one
    assert not block.allows(MailProtocol.MAPI, "Apple Mail 16")
    assert block.allows(MailProtocol.EWS, "Apple Mail 16")
    assert not block.allows(MailProtocol.EWS, None)
    assert allow.allows(MailProtocol.EWS, OUTLOOK_OLD)
    assert not allow.allows(MailProtocol.EWS, "eM Client 9.2")
    assert allow.allows(MailProtocol.EWS, None)  # unnamed clients: their own switch


async def test_an_account_may_be_given_one_protocol_and_a_login_over_the_other_says_why(
    gql: GraphQLClient, tab: dict[str, str]
) -> None:
    enabled = await gql.data(ENABLE, {"u": ["dave"], "p": ["EWS"]}, token=tab["admin"])

    mapi = await report(gql, tab, "dave", "MAPI", session="d-1")
    ews = await report(gql, tab, "dave", "EWS", session="d-2")
    off = await report(gql, tab, "bob", "EWS")
    await gql.data(ENABLE, {"u": ["bob"]}, token=tab["admin"])  # already enabled: unchanged

    assert enabled["enableMapiEws"]["accounts"] == [
        {"username": "dave", "mapiEwsProtocols": ["EWS"]}
    ]
    assert mapi == {"allowed": False, "refusal": "PROTOCOL_NOT_ALLOWED", "userErrors": []}
    assert ews == {"allowed": True, "refusal": None, "userErrors": []}
    assert off == {"allowed": True, "refusal": None, "userErrors": []}
    assert await ProtocolSession.filter(session_id="d-1").count() == 0  # refused: none opened
    history = (await gql.data(HISTORY, token=tab["admin"]))["mapiEwsLoginEvents"]["edges"]
    assert {"username": "dave", "allowed": False, "refusal": "PROTOCOL_NOT_ALLOWED"} in [
        e["node"] for e in history
    ]
    dave = await Account.get(username="dave")
    assert dave.last_mapi_login is None and dave.last_ews_login is not None


async def test_narrowing_protocols_ends_the_sessions_over_the_protocol_taken_away(
    app: Starlette, gql: GraphQLClient, tab: dict[str, str]
) -> None:
    await report(gql, tab, "alice", "MAPI", session="a-mapi")
    await report(gql, tab, "alice", "EWS", session="a-ews")
    await report(gql, tab, "bob", "MAPI", session="b-mapi")
    events: EventBus = app.state.events
    gateway_id = (await GatewayToken.get(name="gateway-1")).id
    async with events.subscribe(Topic.SESSION_COMMANDS, gateway_id) as commands:
        changed = await gql.data(
            PROTOCOLS, {"u": ["alice", "bob"], "p": ["EWS"]}, token=tab["admin"]
        )
        told = [(await anext(commands)).payload for _ in range(2)]

    assert changed["setMapiEwsProtocols"] == {
        "accounts": [
            {"username": "alice", "mapiEwsProtocols": ["EWS"], "activeSessionCount": 1},
            {"username": "bob", "mapiEwsProtocols": ["EWS"], "activeSessionCount": 0},
        ],
        "sessionsEnding": 2,
        "userErrors": [],
    }
    assert all(isinstance(c, SessionCommand) for c in told)
    assert sorted((c.end_session_ids, c.reason) for c in told) == [
        (("a-mapi",), SessionEndReason.ACCESS_POLICY),
        (("b-mapi",), SessionEndReason.ACCESS_POLICY),
    ]
    ended = await ProtocolSession.filter(end_reason=SessionEndReason.ACCESS_POLICY).count()
    assert ended == 2
    audited = await AuditEntry.filter(action=AuditAction.MAPI_EWS_PROTOCOLS_CHANGED).count()
    assert audited == 2
    # The same again changes nothing and writes nothing.
    again = await gql.data(PROTOCOLS, {"u": ["alice"], "p": ["EWS"]}, token=tab["admin"])
    assert again["setMapiEwsProtocols"]["sessionsEnding"] == 0
    assert await AuditEntry.filter(action=AuditAction.MAPI_EWS_PROTOCOLS_CHANGED).count() == 2


async def test_protocols_are_all_or_nothing_never_empty_and_only_for_enabled_accounts(
    gql: GraphQLClient, tab: dict[str, str]
) -> None:
    dave = await gql.data(PROTOCOLS, {"u": ["alice", "dave"], "p": ["MAPI"]}, token=tab["admin"])
    none = await gql.data(PROTOCOLS, {"u": ["alice"], "p": []}, token=tab["admin"])

    assert dave["setMapiEwsProtocols"]["userErrors"] == [
        {
            "field": ["input", "usernames", "1"],
            "code": "INVALID_INPUT",
            "message": "MAPI/EWS is not enabled for dave@example.com: enable it with these "
            "protocols instead.",
        }
    ]
    assert none["setMapiEwsProtocols"]["userErrors"][0]["field"] == ["input", "protocols"]
    assert set(await Account.all().values_list("mapi_ews_protocols", flat=True)) == {3}


async def test_disabling_and_enabling_again_gives_both_protocols_back(
    gql: GraphQLClient, tab: dict[str, str]
) -> None:
    await gql.data(PROTOCOLS, {"u": ["alice"], "p": ["MAPI"]}, token=tab["admin"])
    disable = 'mutation { disableMapiEws(input: {usernames: ["alice"]}) { userErrors { code } } }'
    await gql.data(disable, token=tab["admin"])
    hidden = await gql.data(
        '{ accounts(search: "alice") { edges { node { mapiEwsProtocols } } } }', token=tab["admin"]
    )

    again = await gql.data(ENABLE, {"u": ["alice"]}, token=tab["admin"])

    assert hidden["accounts"]["edges"][0]["node"]["mapiEwsProtocols"] == []
    assert again["enableMapiEws"]["accounts"][0]["mapiEwsProtocols"] == ["MAPI", "EWS"]


async def test_a_policy_refuses_clients_at_once_and_ends_their_open_sessions(
    app: Starlette, gql: GraphQLClient, tab: dict[str, str]
) -> None:
    await report(gql, tab, "alice", "EWS", client=SCRAPER, session="scrape-1")
    await report(gql, tab, "bob", "MAPI", client=OUTLOOK_OLD, session="old-1")
    await report(gql, tab, "carol", "MAPI", client=OUTLOOK_NEW, session="new-1")
    rules = [
        {"pattern": "*LinkedIn*"},
        {"pattern": "Microsoft Outlook*", "protocol": "MAPI", "belowVersion": "16.0.10000"},
    ]
    before = await ProtocolSession.filter(end_reason=None).count()

    dry = await gql.data(
        POLICY, {"mode": "BLOCK_LISTED", "rules": rules, "dry": True}, token=tab["admin"]
    )
    unchanged = await ProtocolSession.filter(end_reason=None).count()
    events: EventBus = app.state.events
    gateway_id = (await GatewayToken.get(name="gateway-1")).id
    async with events.subscribe(Topic.SESSION_COMMANDS, gateway_id) as commands:
        real = await gql.data(POLICY, {"mode": "BLOCK_LISTED", "rules": rules}, token=tab["admin"])
        told = sorted([(await anext(commands)).payload.end_session_ids[0] for _ in range(2)])
    scraper = await report(gql, tab, "alice", "EWS", client=SCRAPER)
    outlook_over_ews = await report(gql, tab, "bob", "EWS", client=OUTLOOK_OLD)
    batch = await gql.data(
        REPORTS,
        {
            "r": [
                {
                    "emailAddress": "carol@example.com",
                    "protocol": "MAPI",
                    "clientName": OUTLOOK_OLD,
                },
                {
                    "emailAddress": "carol@example.com",
                    "protocol": "MAPI",
                    "clientName": OUTLOOK_NEW,
                },
                {"emailAddress": "dave@example.com", "protocol": "MAPI", "clientName": OUTLOOK_NEW},
            ]
        },
        token=tab["gateway"],
    )

    assert dry["setClientAccessPolicy"]["sessionsEnding"] == 2
    assert {
        (c["clientName"], c["allowedNow"]) for c in dry["setClientAccessPolicy"]["refusedClients"]
    } == {
        (SCRAPER, False),
        (OUTLOOK_OLD, False),
    }
    assert before == unchanged == 3
    assert await AuditEntry.filter(action=AuditAction.CLIENT_ACCESS_POLICY_CHANGED).count() == 1
    assert real["setClientAccessPolicy"]["sessionsEnding"] == 2
    assert real["setClientAccessPolicy"]["policy"]["updatedBy"] == "admin@example.com"
    assert told == ["old-1", "scrape-1"]
    assert scraper == {"allowed": False, "refusal": "CLIENT_NOT_ALLOWED", "userErrors": []}
    assert outlook_over_ews["allowed"] is True  # the version rule is for MAPI only
    assert [(r["allowed"], r["refusal"]) for r in batch["recordProtocolLogins"]["results"]] == [
        (False, "CLIENT_NOT_ALLOWED"),
        (True, None),
        (False, "MAPI_EWS_DISABLED"),
    ]
    read = await gql.data(READ_POLICY, token=tab["admin"])
    assert read["clientAccessPolicy"]["rules"] == [
        {"pattern": "*LinkedIn*"},
        {"pattern": "Microsoft Outlook*"},
    ]


async def test_an_allow_list_lets_only_named_clients_in_and_the_default_lets_all_back(
    gql: GraphQLClient, tab: dict[str, str]
) -> None:
    only_outlook = [{"pattern": "microsoft outlook*"}]
    await gql.data(
        POLICY,
        {"mode": "ALLOW_LISTED_ONLY", "rules": only_outlook, "unnamed": False},
        token=tab["admin"],
    )

    outlook = await report(gql, tab, "alice", "EWS", client=OUTLOOK_OLD)
    em = await report(gql, tab, "alice", "EWS", client="eM Client 9.2.1234")
    unnamed = await report(gql, tab, "alice", "EWS", client=None)
    await gql.data(POLICY, {"mode": "BLOCK_LISTED", "rules": []}, token=tab["admin"])
    em_again = await report(gql, tab, "alice", "EWS", client="eM Client 9.2.1234")

    assert (outlook["allowed"], em["refusal"], unnamed["refusal"]) == (
        True,
        "CLIENT_NOT_ALLOWED",
        "CLIENT_NOT_ALLOWED",
    )
    assert em_again["allowed"] is True
    # The same login refused and then allowed is two events: the refusal is part of the key.
    assert await LoginEvent.filter(client_name="eM Client 9.2.1234").count() == 2


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ([{"pattern": ""}], ["input", "rules", "0", "pattern"]),
        ([{"pattern": "ok"}, {"pattern": "x" * 257}], ["input", "rules", "1", "pattern"]),
        ([{"pattern": "tab\there"}], ["input", "rules", "0", "pattern"]),
        ([{"pattern": "ok", "belowVersion": "16.x"}], ["input", "rules", "0", "belowVersion"]),
        ([{"pattern": f"c{i}"} for i in range(101)], ["input", "rules"]),
    ],
)
async def test_a_bad_policy_is_refused_with_its_field_and_changes_nothing(
    gql: GraphQLClient, tab: dict[str, str], rules: list[dict[str, str]], field: list[str]
) -> None:
    refused = await gql.data(POLICY, {"mode": "BLOCK_LISTED", "rules": rules}, token=tab["admin"])

    assert refused["setClientAccessPolicy"]["userErrors"] == [
        {"field": field, "code": "INVALID_INPUT"}
    ]
    assert refused["setClientAccessPolicy"]["policy"] is None
    assert await ClientAccessPolicy.all().count() == 0
    assert await AuditEntry.filter(action=AuditAction.CLIENT_ACCESS_POLICY_CHANGED).count() == 0


async def test_the_clients_in_use_are_counted_with_their_refusals_and_todays_verdict(
    gql: GraphQLClient, tab: dict[str, str]
) -> None:
    for who in ("alice", "bob"):
        await report(gql, tab, who, "MAPI", client=OUTLOOK_NEW)
    await report(gql, tab, "alice", "MAPI", client=OUTLOOK_NEW)  # a repeat: counted on its event
    await report(gql, tab, "dave", "EWS", client="eM Client 9.2")  # refused: MAPI/EWS is off
    await gql.data(
        POLICY, {"mode": "BLOCK_LISTED", "rules": [{"pattern": "eM*"}]}, token=tab["admin"]
    )

    clients = (await gql.data(CLIENTS, {"days": 30}, token=tab["admin"]))["mapiEwsClients"]
    bad = await gql.post(CLIENTS, {"days": 91}, token=tab["admin"])

    assert clients == [
        {
            "clientName": OUTLOOK_NEW,
            "protocol": "MAPI",
            "accounts": 2,
            "logins": 3,
            "refusedLogins": 0,
            "allowedNow": True,
        },
        {
            "clientName": "eM Client 9.2",
            "protocol": "EWS",
            "accounts": 1,
            "logins": 1,
            "refusedLogins": 1,
            "allowedNow": False,
        },
    ]
    assert bad["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_domain_administrator_without_the_permission_may_read_but_not_change(
    gql: GraphQLClient, make: Factory
) -> None:
    other = await make.domain("other.example", managed=False)
    admin = await make.account(other, "boss", admin=True)
    token = await make.token_for(admin)

    read = await gql.data(READ_POLICY, token=token)
    change = await gql.post(POLICY, {"mode": "BLOCK_LISTED", "rules": []}, token=token)

    assert read["clientAccessPolicy"]["mode"] == "BLOCK_LISTED"
    assert change["errors"][0]["extensions"]["code"] == "FORBIDDEN"


async def test_a_removed_domain_created_again_starts_with_the_default_policy(
    gql: GraphQLClient, tab: dict[str, str], make: Factory
) -> None:
    await gql.data(POLICY, {"mode": "ALLOW_LISTED_ONLY", "rules": []}, token=tab["admin"])
    root = await make.token_for(await make.system_admin())
    remove = 'mutation { removeDomain(input: {name: "example.com", confirm: "example.com"}) { userErrors { code } } }'
    create = 'mutation { createDomain(input: {name: "example.com"}) { userErrors { code } } }'
    read = '{ clientAccessPolicy(domain: "example.com") { mode rules { pattern } updatedBy } }'

    assert (await gql.data(remove, token=root))["removeDomain"]["userErrors"] == []
    assert (await gql.data(create, token=root))["createDomain"]["userErrors"] == []

    assert (await gql.data(read, token=root))["clientAccessPolicy"] == {
        "mode": "BLOCK_LISTED",
        "rules": [],
        "updatedBy": None,
    }
