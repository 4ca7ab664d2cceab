"""MAPI/EWS sessions: opened by allowed logins, confirmed and ended by their own gateway only,
told to end by a disable or a disconnect, expired when no longer confirmed."""

from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette

from api import db
from api.events import EventBus, Topic
from api.models import (
    AuditAction,
    AuditEntry,
    Domain,
    GatewayToken,
    LoginEvent,
    ProtocolSession,
    SessionEndReason,
)
from api.services import connected, protocol_sessions
from api.services.event_payloads import SessionChanged, SessionCommand
from tests.conftest import Factory, GraphQLClient, StatementCounter

REPORT = """
mutation Report($email: String!, $protocol: MailProtocol! = MAPI, $session: String,
    $client: String, $at: DateTime) {
  recordProtocolLogin(input: {emailAddress: $email, protocol: $protocol, sessionId: $session,
      clientName: $client, occurredAt: $at, clientAddress: "192.0.2.7"}) {
    allowed
    userErrors { field code message }
  }
}
"""
TOUCH = """
mutation Touch($ids: [String!]!) {
  touchProtocolSessions(input: {sessionIds: $ids}) { touched endNow userErrors { field code } }
}
"""
END = """
mutation End($ids: [String!]!) {
  endProtocolSessions(input: {sessionIds: $ids}) { ended userErrors { field code } }
}
"""
SESSIONS = """
query Sessions($username: String) {
  mapiEwsSessions(username: $username, first: 10) {
    totalCount
    edges { node {
      sessionId username emailAddress domain protocol clientAddress clientName gateway
      startedAt lastSeenAt account { username activeSessionCount }
    } }
  }
}
"""
TAB = """
query Tab($first: Int) {
  mapiEwsAccounts(first: $first) { edges { node { username activeSessionCount } } }
}
"""
DISABLE = """
mutation Disable($u: [String!]!) {
  disableMapiEws(input: {usernames: $u}) {
    sessionsEnding accounts { username activeSessionCount } userErrors { field code }
  }
}
"""
DISCONNECT = """
mutation Disconnect($u: [String!]!) {
  disconnectMapiEws(input: {usernames: $u}) { sessionsEnding userErrors { field code message } }
}
"""
HISTORY = "{ mapiEwsLoginEvents(first: 5) { edges { node { clientName account { activeSessionCount } } } } }"
OUTLOOK = "Microsoft Outlook 16.0.17928"


@pytest.fixture
async def setup(make: Factory) -> dict[str, str]:
    domain = await make.domain("example.com")
    for username in ("alice", "bob", "carol"):
        await make.account(domain, username, enabled=True)
    await make.account(domain, "dave")
    return {
        "admin": await make.token_for(await make.account(domain, "admin", admin=True)),
        "gateway": await make.gateway("mapi-1"),
        "other_gateway": await make.gateway("ews-1"),
    }


async def report(
    gql: GraphQLClient, token: str, email: str, session: str | None, **more: object
) -> dict[str, object]:
    variables = {"email": email, "session": session, "client": OUTLOOK, **more}
    data = await gql.data(REPORT, variables, token=token)
    result: dict[str, object] = data["recordProtocolLogin"]
    return result


async def open_ids() -> list[tuple[str, str]]:
    rows = ProtocolSession.filter(connected.open_now()).order_by("id")
    return [(s, u) for s, u in await rows.values_list("session_id", "username")]


async def test_an_allowed_login_with_a_session_id_opens_a_session_listed_and_counted(
    gql: GraphQLClient, setup: dict[str, str]
) -> None:
    answer = await report(gql, setup["gateway"], "alice@example.com", "mapi-41")

    assert answer == {"allowed": True, "userErrors": []}
    listed = (await gql.data(SESSIONS, token=setup["admin"]))["mapiEwsSessions"]
    assert listed["totalCount"] == 1
    session = listed["edges"][0]["node"]
    assert {k: v for k, v in session.items() if k not in ("startedAt", "lastSeenAt")} == {
        "sessionId": "mapi-41",
        "username": "alice",
        "emailAddress": "alice@example.com",
        "domain": "example.com",
        "protocol": "MAPI",
        "clientAddress": "192.0.2.7",
        "clientName": OUTLOOK,
        "gateway": "mapi-1",
        "account": {"username": "alice", "activeSessionCount": 1},
    }
    tab = (await gql.data(TAB, token=setup["admin"]))["mapiEwsAccounts"]["edges"]
    assert {e["node"]["username"]: e["node"]["activeSessionCount"] for e in tab} == {
        "alice": 1,
        "bob": 0,
        "carol": 0,
    }
    history = (await gql.data(HISTORY, token=setup["admin"]))["mapiEwsLoginEvents"]["edges"]
    assert history == [{"node": {"clientName": OUTLOOK, "account": {"activeSessionCount": 1}}}]


async def test_a_refused_login_opens_no_session(gql: GraphQLClient, setup: dict[str, str]) -> None:
    answer = await report(gql, setup["gateway"], "dave@example.com", "mapi-42")

    assert answer == {"allowed": False, "userErrors": []}
    assert await ProtocolSession.all().count() == 0
    assert await LoginEvent.filter(allowed=False, client_name=OUTLOOK).count() == 1


async def test_a_session_reported_again_is_refreshed_and_keeps_its_start(
    gql: GraphQLClient, setup: dict[str, str]
) -> None:
    first = datetime.now(UTC) - timedelta(minutes=3)
    await report(gql, setup["gateway"], "alice@example.com", "mapi-1", at=first.isoformat())
    await report(gql, setup["gateway"], "alice@example.com", "mapi-1", client="Outlook 17")

    rows = await ProtocolSession.all()
    assert [(r.session_id, r.username, r.client_name) for r in rows] == [
        ("mapi-1", "alice", "Outlook 17")
    ]
    assert rows[0].started_at == first
    assert rows[0].last_seen_at > first


async def test_a_session_id_reported_for_another_account_ends_the_old_session(
    app: Starlette, gql: GraphQLClient, setup: dict[str, str]
) -> None:
    await report(gql, setup["gateway"], "alice@example.com", "mapi-1")
    events: EventBus = app.state.events
    async with events.subscribe(Topic.SESSION_CHANGES, await _domain_id()) as changes:
        await report(gql, setup["gateway"], "bob@example.com", "mapi-1")
        seen = [await anext(changes), await anext(changes)]

    assert await open_ids() == [("mapi-1", "bob")]
    kinds = sorted(
        (
            e.payload.session.username,
            e.payload.reason,
            e.payload.session.account.active_session_count,
        )
        for e in seen
    )
    assert kinds == [("alice", SessionEndReason.ENDED_BY_GATEWAY, 0), ("bob", None, 1)]


async def _domain_id() -> int:
    return (await Domain.get(name="example.com")).id


async def test_touch_confirms_the_gateways_open_sessions_and_names_the_rest_to_close(
    gql: GraphQLClient, setup: dict[str, str]
) -> None:
    await report(gql, setup["gateway"], "alice@example.com", "a-1")
    await report(gql, setup["gateway"], "bob@example.com", "b-1")
    await report(gql, setup["other_gateway"], "carol@example.com", "c-1")
    await gql.data(DISABLE, {"u": ["bob"]}, token=setup["admin"])
    before = await ProtocolSession.get(session_id="a-1")

    touched = await gql.data(
        TOUCH, {"ids": ["a-1", "b-1", "c-1", "never-seen", "a-1"]}, token=setup["gateway"]
    )

    assert touched["touchProtocolSessions"] == {
        "touched": 1,
        "endNow": ["b-1", "c-1", "never-seen"],  # told to end, another gateway's, unknown
        "userErrors": [],
    }
    after = await ProtocolSession.get(session_id="a-1")
    assert after.expires_at > before.expires_at
    # The other gateway's session was not touched by this one.
    assert (await ProtocolSession.get(session_id="c-1")).last_seen_at < after.last_seen_at


async def test_a_gateway_ends_only_its_own_sessions(
    gql: GraphQLClient, setup: dict[str, str]
) -> None:
    await report(gql, setup["gateway"], "alice@example.com", "s-1")
    await report(gql, setup["gateway"], "bob@example.com", "s-2")
    await report(gql, setup["other_gateway"], "carol@example.com", "s-1")

    ended = await gql.data(END, {"ids": ["s-1", "unknown"]}, token=setup["gateway"])

    assert ended["endProtocolSessions"] == {"ended": 1, "userErrors": []}
    remaining = await ProtocolSession.all().order_by("id").values_list("session_id", "username")
    assert remaining == [("s-2", "bob"), ("s-1", "carol")]


async def test_a_disable_tells_the_accounts_sessions_to_end_in_its_own_transaction(
    app: Starlette, gql: GraphQLClient, setup: dict[str, str]
) -> None:
    await report(gql, setup["gateway"], "alice@example.com", "a-1")
    await report(gql, setup["gateway"], "alice@example.com", "a-2", protocol="EWS")
    await report(gql, setup["other_gateway"], "alice@example.com", "a-3")
    await report(gql, setup["gateway"], "bob@example.com", "b-1")
    events: EventBus = app.state.events
    gateway_ids = {name: gid for gid, name in await GatewayToken.all().values_list("id", "name")}
    async with (
        events.subscribe(Topic.SESSION_COMMANDS, gateway_ids["mapi-1"]) as commands,
        events.subscribe(Topic.SESSION_COMMANDS, gateway_ids["ews-1"]) as other_commands,
    ):
        disabled = await gql.data(DISABLE, {"u": ["alice"]}, token=setup["admin"])
        command = (await anext(commands)).payload
        other = (await anext(other_commands)).payload

    assert disabled["disableMapiEws"] == {
        "sessionsEnding": 3,
        "accounts": [{"username": "alice", "activeSessionCount": 0}],
        "userErrors": [],
    }
    assert isinstance(command, SessionCommand)
    assert (sorted(command.end_session_ids), command.email_address, command.reason) == (
        ["a-1", "a-2"],
        "alice@example.com",
        SessionEndReason.MAPI_EWS_DISABLED,
    )
    assert (other.end_session_ids, other.reason) == (("a-3",), SessionEndReason.MAPI_EWS_DISABLED)
    assert await open_ids() == [("b-1", "bob")]
    listed = (await gql.data(SESSIONS, token=setup["admin"]))["mapiEwsSessions"]
    assert [e["node"]["sessionId"] for e in listed["edges"]] == ["b-1"]
    # Marked, not forgotten: the gateway's backlog still names them until it closes them.
    backlog = await protocol_sessions.backlog(gateway_id=gateway_ids["mapi-1"])
    assert [(sorted(c.end_session_ids), c.reason) for c in backlog] == [
        (["a-1", "a-2"], SessionEndReason.MAPI_EWS_DISABLED)
    ]
    await gql.data(END, {"ids": ["a-1", "a-2"]}, token=setup["gateway"])
    assert await protocol_sessions.backlog(gateway_id=gateway_ids["mapi-1"]) == []


async def test_a_refused_disable_tells_no_session_to_end(
    gql: GraphQLClient, setup: dict[str, str]
) -> None:
    await report(gql, setup["gateway"], "alice@example.com", "a-1")

    refused = await gql.data(DISABLE, {"u": ["alice", "nobody"]}, token=setup["admin"])

    assert refused["disableMapiEws"]["userErrors"] == [
        {"field": ["input", "usernames", "1"], "code": "NOT_FOUND"}
    ]
    assert refused["disableMapiEws"]["sessionsEnding"] == 0
    assert await open_ids() == [("a-1", "alice")]


async def test_disconnect_ends_the_sessions_keeps_mapi_ews_and_is_audited_per_account(
    gql: GraphQLClient, setup: dict[str, str]
) -> None:
    await report(gql, setup["gateway"], "alice@example.com", "a-1")
    await report(gql, setup["gateway"], "bob@example.com", "b-1")

    done = await gql.data(
        DISCONNECT, {"u": ["alice", "BOB@example.com", "carol"]}, token=setup["admin"]
    )

    assert done["disconnectMapiEws"] == {"sessionsEnding": 2, "userErrors": []}
    assert await open_ids() == []
    reasons = await ProtocolSession.all().values_list("end_reason", flat=True)
    assert reasons == [SessionEndReason.DISCONNECTED_BY_ADMIN] * 2
    audited = await AuditEntry.filter(action=AuditAction.MAPI_EWS_DISCONNECTED).order_by("id")
    assert [(e.actor, e.target) for e in audited] == [
        ("admin@example.com", "alice@example.com"),
        ("admin@example.com", "bob@example.com"),
        ("admin@example.com", "carol@example.com"),
    ]
    # MAPI/EWS stays: the next login is allowed and opens a new session.
    assert (await report(gql, setup["gateway"], "alice@example.com", "a-2"))["allowed"] is True


async def test_disconnect_is_all_or_nothing(gql: GraphQLClient, setup: dict[str, str]) -> None:
    await report(gql, setup["gateway"], "alice@example.com", "a-1")

    refused = await gql.data(
        DISCONNECT, {"u": ["alice", "ghost", "bad name"]}, token=setup["admin"]
    )
    empty = await gql.data(DISCONNECT, {"u": []}, token=setup["admin"])

    assert [(e["field"], e["code"]) for e in refused["disconnectMapiEws"]["userErrors"]] == [
        (["input", "usernames", "2"], "INVALID_INPUT")
    ]
    assert empty["disconnectMapiEws"]["userErrors"][0]["code"] == "INVALID_INPUT"
    missing = await gql.data(DISCONNECT, {"u": ["alice", "ghost"]}, token=setup["admin"])
    assert missing["disconnectMapiEws"] == {
        "sessionsEnding": 0,
        "userErrors": [
            {
                "field": ["input", "usernames", "1"],
                "code": "NOT_FOUND",
                "message": "No account ghost@example.com.",
            }
        ],
    }
    assert await open_ids() == [("a-1", "alice")]
    assert await AuditEntry.filter(action=AuditAction.MAPI_EWS_DISCONNECTED).count() == 0


async def test_disconnecting_accounts_without_sessions_is_no_error(
    gql: GraphQLClient, setup: dict[str, str]
) -> None:
    done = await gql.data(DISCONNECT, {"u": ["carol"]}, token=setup["admin"])

    assert done["disconnectMapiEws"] == {"sessionsEnding": 0, "userErrors": []}


async def test_an_unconfirmed_session_expires_and_is_swept_with_an_announcement(
    app: Starlette, gql: GraphQLClient, setup: dict[str, str]
) -> None:
    await report(gql, setup["gateway"], "alice@example.com", "a-1")
    await report(gql, setup["gateway"], "bob@example.com", "b-1")
    await gql.data(DISABLE, {"u": ["bob"]}, token=setup["admin"])
    # Time passes: neither session is confirmed within its TTL.
    past = datetime.now(UTC) - timedelta(seconds=1)
    await ProtocolSession.all().update(expires_at=past)

    assert await open_ids() == []
    assert (await gql.data(SESSIONS, token=setup["admin"]))["mapiEwsSessions"]["totalCount"] == 0
    touched = await gql.data(TOUCH, {"ids": ["a-1"]}, token=setup["gateway"])
    assert touched["touchProtocolSessions"]["endNow"] == ["a-1"]

    events: EventBus = app.state.events
    async with events.subscribe(Topic.SESSION_CHANGES, await _domain_id()) as changes:
        swept = await protocol_sessions.sweep(events=events)
        change = (await anext(changes)).payload

    assert swept == 2
    assert await ProtocolSession.all().count() == 0
    # Only the open one is announced: bob's was announced when it was told to end.
    assert isinstance(change, SessionChanged)
    assert (change.session.session_id, change.reason) == ("a-1", SessionEndReason.EXPIRED)
    assert await protocol_sessions.sweep(events=events) == 0


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"session": "x" * 129}, ["input", "sessionId"]),
        ({"session": "tab\there"}, ["input", "sessionId"]),
        ({"session": ""}, ["input", "sessionId"]),
        ({"session": "ok", "client": "c" * 257}, ["input", "clientName"]),
        ({"session": "ok", "client": "bell\x07"}, ["input", "clientName"]),
    ],
)
async def test_a_bad_session_id_or_client_name_is_refused_and_changes_nothing(
    gql: GraphQLClient, setup: dict[str, str], variables: dict[str, str], field: list[str]
) -> None:
    data = await gql.data(
        REPORT,
        {"email": "alice@example.com", "client": OUTLOOK, **variables},
        token=setup["gateway"],
    )

    answer = data["recordProtocolLogin"]
    assert answer["allowed"] is False
    assert [(e["field"], e["code"]) for e in answer["userErrors"]] == [(field, "INVALID_INPUT")]
    assert await ProtocolSession.all().count() == 0
    assert await LoginEvent.all().count() == 0


@pytest.mark.parametrize("document", [TOUCH, END], ids=["touch", "end"])
@pytest.mark.parametrize(
    ("ids", "field"),
    [
        ([], ["input", "sessionIds"]),
        ([f"s-{i}" for i in range(1001)], ["input", "sessionIds"]),
        (["fine", "x" * 129], ["input", "sessionIds", "1"]),
        (["fine", "new\nline"], ["input", "sessionIds", "1"]),
    ],
    ids=["empty", "too-many", "too-long", "control-character"],
)
async def test_a_bad_list_of_session_ids_is_refused_and_changes_nothing(
    gql: GraphQLClient, setup: dict[str, str], document: str, ids: list[str], field: list[str]
) -> None:
    await report(gql, setup["gateway"], "alice@example.com", "fine")
    before = await ProtocolSession.all().values_list("session_id", "expires_at")

    data = await gql.data(document, {"ids": ids}, token=setup["gateway"])

    payload = next(iter(data.values()))
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [(field, "INVALID_INPUT")]
    assert await ProtocolSession.all().values_list("session_id", "expires_at") == before


async def test_the_list_counts_sessions_in_one_read_whatever_the_page_size(
    gql: GraphQLClient, setup: dict[str, str], make: Factory, sql: StatementCounter
) -> None:
    for username in ("alice", "bob", "carol"):
        await report(gql, setup["gateway"], f"{username}@example.com", f"{username}-1")

    statements = []
    for size in (1, 3):
        sql.statements.clear()
        await gql.data(TAB, {"first": size}, token=setup["admin"])
        statements.append(len(sql.statements))
    sql.statements.clear()
    await gql.data(
        "{ mapiEwsAccounts(first: 3) { edges { node { username } } } }", token=setup["admin"]
    )
    without = len(sql.statements)

    assert statements[0] == statements[1]
    assert without == statements[0] - 1  # the count is read only when asked for


async def test_a_report_with_a_session_id_is_one_statement_on_postgresql(
    gql: GraphQLClient, setup: dict[str, str], sql: StatementCounter
) -> None:
    await report(gql, setup["gateway"], "alice@example.com", "warm-up")  # caches the token
    sql.statements.clear()

    await report(gql, setup["gateway"], "alice@example.com", "s-1")

    # SQLite: a short transaction of the UPDATE, the event, the session's read and its write.
    assert len(sql.statements) == (5 if db.is_sqlite() else 1), sql.statements
    assert await open_ids() == [("warm-up", "alice"), ("s-1", "alice")]


async def test_a_session_id_told_to_end_and_reported_again_opens_a_new_session(
    gql: GraphQLClient, setup: dict[str, str]
) -> None:
    first = datetime.now(UTC) - timedelta(minutes=3)
    await report(gql, setup["gateway"], "alice@example.com", "a-1", at=first.isoformat())
    await gql.data(DISCONNECT, {"u": ["alice"]}, token=setup["admin"])

    await report(gql, setup["gateway"], "alice@example.com", "a-1")

    assert await open_ids() == [("a-1", "alice")]
    row = await ProtocolSession.get(session_id="a-1")
    assert (row.end_reason, row.ended_at) == (None, None)
    assert row.started_at > first  # a new session, not the old one resumed
