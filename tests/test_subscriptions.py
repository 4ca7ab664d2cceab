"""Subscriptions over graphql-transport-ws against a real `serve` process (the demo, embedded
SQLite, in-process fan-out), over real sockets."""

import asyncio
import itertools
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.servers import graphql_data, metric, running_server
from tests.ws import GraphQLWebSocket, websocket

LOGIN = 'mutation($u: String!) { login(input: {username: $u, password: "demo-password"}) { accessToken } }'
CREATE_GATEWAY = 'mutation { createGatewayToken(input: {name: "mapi-1"}) { token } }'
REPORT = """
mutation($e: String!, $p: MailProtocol!, $at: DateTime) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: $p, occurredAt: $at, clientAddress: "198.51.100.4"}) {
    allowed userErrors { code }
  }
}
"""
ENABLE = (
    "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
DISABLE = (
    "mutation($u: [String!]!) { disableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
CREATE_ACCOUNT = "mutation($e: String!, $p: String!) { createAccount(input: {emailAddress: $e, password: $p}) { userErrors { code message } } }"
ENABLE_IN = "mutation($d: String!, $u: [String!]!) { enableMapiEws(input: {domain: $d, usernames: $u}) { userErrors { code } } }"
HISTORY = (
    "query($u: String) { mapiEwsLoginEvents(username: $u, first: 5) { edges { node { id } } } }"
)
LOGINS = """
subscription($d: String) {
  mapiEwsLoginUpdates(domain: $d) {
    id username emailAddress domain protocol occurredAt clientAddress allowed
    account { username mapiEwsEnabled lastLogin lastLoginProtocol lastMapiLogin }
  }
}
"""
CHANGES = """
subscription {
  mapiEwsAccountChanges {
    kind actor account { username mapiEwsEnabled } usage { enabled limit available }
  }
}
"""


_accounts = itertools.count(1)


@dataclass
class Demo:
    url: str
    admin: str
    read_only_admin: str
    system_admin: str
    gateway: str

    async def call(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str
    ) -> dict[str, Any]:
        return await graphql_data(self.url, query, variables, token=token)

    async def new_account(self, domain: str = "example.com", *, enabled: bool = False) -> str:
        """A username of its own for one test, so no test depends on what another changed."""
        username = f"live-{next(_accounts)}"
        created = await self.call(
            CREATE_ACCOUNT,
            {"e": f"{username}@{domain}", "p": "account-password-1"},
            token=self.system_admin,
        )
        assert created["createAccount"]["userErrors"] == []
        if enabled:
            changed = await self.call(
                ENABLE_IN, {"d": domain, "u": [username]}, token=self.system_admin
            )
            assert changed["enableMapiEws"]["userErrors"] == []
        return username


def _sign_in(url: str, username: str) -> str:
    response = httpx.post(f"{url}/graphql", json={"query": LOGIN, "variables": {"u": username}})
    return str(response.json()["data"]["login"]["accessToken"])


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    folder = tmp_path_factory.mktemp("live")
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{folder / 'demo.sqlite3'}"}
    with running_server(env, folder / "server.log", "--demo") as server:
        root = _sign_in(server.url, "sysadmin")
        gateway = httpx.post(
            f"{server.url}/graphql",
            json={"query": CREATE_GATEWAY},
            headers={"Authorization": f"Bearer {root}"},
        ).json()["data"]["createGatewayToken"]["token"]
        yield Demo(
            url=server.url,
            admin=_sign_in(server.url, "admin@example.com"),
            read_only_admin=_sign_in(server.url, "admin@readonly.example"),
            system_admin=root,
            gateway=gateway,
        )


@pytest.fixture
async def dashboard(demo: Demo) -> AsyncIterator[GraphQLWebSocket]:
    await nothing_open(demo)
    async with websocket(demo.url) as ws:
        assert await ws.init({"Authorization": f"Bearer {demo.admin}"}) == {
            "type": "connection_ack"
        }
        yield ws


async def subscribed(ws: GraphQLWebSocket, demo: Demo, operation_id: str, query: str) -> None:
    """Subscribe, then wait until the server counts the subscription as open (/metrics): events
    published before that moment are not for it."""
    before = await open_subscriptions(demo)
    await ws.subscribe(operation_id, query)
    async with asyncio.timeout(10):
        while await open_subscriptions(demo) <= before:
            await asyncio.sleep(0.01)


async def nothing_open(demo: Demo) -> None:
    """Wait until the subscriptions of earlier tests on this server have closed."""
    async with asyncio.timeout(10):
        while await open_subscriptions(demo):
            await asyncio.sleep(0.01)


async def open_subscriptions(demo: Demo) -> int:
    return await metric(demo.url, "open_subscriptions")


async def test_a_dashboard_sees_a_reported_login_with_the_account_as_it_now_stands(
    demo: Demo, dashboard: GraphQLWebSocket
) -> None:
    user = await demo.new_account(enabled=True)
    await subscribed(dashboard, demo, "logins", LOGINS)

    report = await demo.call(
        REPORT,
        {"e": f"{user}@example.com", "p": "MAPI", "at": "2026-11-01T10:00:00+00:00"},
        token=demo.gateway,
    )
    message = await dashboard.receive()

    assert report["recordProtocolLogin"] == {"allowed": True, "userErrors": []}
    assert message["type"] == "next" and message["id"] == "logins"
    event = message["payload"]["data"]["mapiEwsLoginUpdates"]
    assert {k: v for k, v in event.items() if k != "id"} == {
        "username": user,
        "emailAddress": f"{user}@example.com",
        "domain": "example.com",
        "protocol": "MAPI",
        "occurredAt": "2026-11-01T10:00:00+00:00",
        "clientAddress": "198.51.100.4",
        "allowed": True,
        "account": {
            "username": user,
            "mapiEwsEnabled": True,
            # The account's first login: every last-login column is this one.
            "lastLogin": "2026-11-01T10:00:00+00:00",
            "lastLoginProtocol": "MAPI",
            "lastMapiLogin": "2026-11-01T10:00:00+00:00",
        },
    }
    # Published after its transaction committed: the history already has it.
    history = await demo.call(HISTORY, {"u": user}, token=demo.admin)
    assert history["mapiEwsLoginEvents"]["edges"] == [{"node": {"id": event["id"]}}]


async def test_a_repeated_login_reaches_the_dashboard_each_time_as_its_event_counts_it(
    demo: Demo, dashboard: GraphQLWebSocket
) -> None:
    user = await demo.new_account(enabled=True)
    await subscribed(
        dashboard,
        demo,
        "logins",
        "subscription { mapiEwsLoginUpdates { id count occurredAt lastOccurredAt } }",
    )
    times = ["2026-11-01T10:00:00+00:00", "2026-11-01T10:01:00+00:00", "2026-11-01T10:02:30+00:00"]

    for moment in times:
        await demo.call(
            REPORT, {"e": f"{user}@example.com", "p": "MAPI", "at": moment}, token=demo.gateway
        )
    received = [
        (await dashboard.receive())["payload"]["data"]["mapiEwsLoginUpdates"] for _ in times
    ]

    assert len({event["id"] for event in received}) == 1  # one event, three reports
    assert [(e["count"], e["occurredAt"], e["lastOccurredAt"]) for e in received] == [
        (1, times[0], times[0]),
        (2, times[0], times[1]),
        (3, times[0], times[2]),
    ]


async def test_a_batch_of_reports_reaches_the_dashboard_report_by_report(
    demo: Demo, dashboard: GraphQLWebSocket
) -> None:
    user, other = await demo.new_account(enabled=True), await demo.new_account()
    await subscribed(
        dashboard, demo, "logins", "subscription { mapiEwsLoginUpdates { username allowed count } }"
    )
    batch = "mutation($r: [RecordProtocolLoginInput!]!) { recordProtocolLogins(input: {reports: $r}) { results { allowed } } }"
    reports = [
        {
            "emailAddress": f"{user}@example.com",
            "protocol": "MAPI",
            "occurredAt": "2026-11-01T10:00:00Z",
        },
        {"emailAddress": f"{other}@example.com", "protocol": "EWS"},
        {
            "emailAddress": f"{user}@example.com",
            "protocol": "MAPI",
            "occurredAt": "2026-11-01T10:01:00Z",
        },
    ]

    await demo.call(batch, {"r": reports}, token=demo.gateway)
    received = [
        (await dashboard.receive())["payload"]["data"]["mapiEwsLoginUpdates"] for _ in reports
    ]

    assert received == [
        {"username": user, "allowed": True, "count": 1},
        {"username": other, "allowed": False, "count": 1},
        {"username": user, "allowed": True, "count": 2},
    ]


async def test_a_refused_login_is_delivered_too(demo: Demo, dashboard: GraphQLWebSocket) -> None:
    user = await demo.new_account()
    await subscribed(dashboard, demo, "logins", LOGINS)

    await demo.call(REPORT, {"e": f"{user}@example.com", "p": "EWS"}, token=demo.gateway)
    message = await dashboard.receive()

    event = message["payload"]["data"]["mapiEwsLoginUpdates"]
    assert (event["username"], event["allowed"], event["protocol"]) == (user, False, "EWS")
    assert event["account"]["mapiEwsEnabled"] is False


async def test_a_dashboard_sees_enables_and_disables_and_nothing_for_a_refused_change(
    demo: Demo, dashboard: GraphQLWebSocket
) -> None:
    user = await demo.new_account()
    await subscribed(dashboard, demo, "changes", CHANGES)

    refused = await demo.call(ENABLE, {"u": [user, "nobody-here"]}, token=demo.admin)
    await demo.call(ENABLE, {"u": [user]}, token=demo.admin)
    enabled = await dashboard.receive()
    await demo.call(DISABLE, {"u": [user]}, token=demo.admin)
    disabled = await dashboard.receive()

    assert refused["enableMapiEws"]["userErrors"] == [{"code": "NOT_FOUND"}]
    # The refused enable published nothing: the first message is the real enable.
    change = enabled["payload"]["data"]["mapiEwsAccountChanges"]
    assert (change["kind"], change["actor"], change["account"]) == (
        "ENABLED",
        "admin@example.com",
        {"username": user, "mapiEwsEnabled": True},
    )
    assert change["usage"]["limit"] == 25
    assert change["usage"]["available"] == 25 - change["usage"]["enabled"]
    after = disabled["payload"]["data"]["mapiEwsAccountChanges"]
    assert (after["kind"], after["account"]["mapiEwsEnabled"]) == ("DISABLED", False)
    assert after["usage"]["enabled"] == change["usage"]["enabled"] - 1


async def test_a_dashboard_sees_only_its_own_domain(
    demo: Demo, dashboard: GraphQLWebSocket
) -> None:
    other = await demo.new_account("readonly.example")
    mine = await demo.new_account(enabled=True)
    await subscribed(dashboard, demo, "logins", LOGINS)

    await demo.call(REPORT, {"e": f"{other}@readonly.example", "p": "MAPI"}, token=demo.gateway)
    await demo.call(REPORT, {"e": f"{mine}@example.com", "p": "MAPI"}, token=demo.gateway)
    message = await dashboard.receive()

    assert message["payload"]["data"]["mapiEwsLoginUpdates"]["username"] == mine


async def test_credentials_may_come_from_the_upgrade_request_header(demo: Demo) -> None:
    await nothing_open(demo)
    async with websocket(demo.url, token=demo.admin) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        await subscribed(ws, demo, "1", LOGINS)
        user = await demo.new_account(enabled=True)

        await demo.call(REPORT, {"e": f"{user}@example.com", "p": "EWS"}, token=demo.gateway)

        assert (await ws.receive())["payload"]["data"]["mapiEwsLoginUpdates"]["username"] == user


@pytest.mark.parametrize("where", ["payload", "header"])
async def test_a_bad_token_closes_the_connection_with_4403(demo: Demo, where: str) -> None:
    bad = demo.admin[:-4] + "AAAA"
    async with websocket(demo.url, token=bad if where == "header" else None) as ws:
        await ws.send(
            {
                "type": "connection_init",
                "payload": {"Authorization": f"Bearer {bad}"} if where == "payload" else {},
            }
        )

        assert await ws.close_code() == 4403


async def test_another_domain_is_forbidden(demo: Demo, dashboard: GraphQLWebSocket) -> None:
    await dashboard.subscribe("other", LOGINS, {"d": "readonly.example"})

    message = await dashboard.receive()

    assert message["type"] == "error" and message["id"] == "other"
    assert [e["extensions"]["code"] for e in message["payload"]] == ["FORBIDDEN"]


async def test_without_a_token_a_subscription_is_unauthenticated(demo: Demo) -> None:
    async with websocket(demo.url) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        await ws.subscribe("anon", CHANGES)

        message = await ws.receive()

    assert message["type"] == "error"
    assert [e["extensions"]["code"] for e in message["payload"]] == ["UNAUTHENTICATED"]


async def test_a_gateway_may_not_subscribe(demo: Demo) -> None:
    async with websocket(demo.url, token=demo.gateway) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        await ws.subscribe("gw", CHANGES)

        message = await ws.receive()

    assert [e["extensions"]["code"] for e in message["payload"]] == ["FORBIDDEN"]


async def test_a_system_administrator_names_the_domain(demo: Demo) -> None:
    await nothing_open(demo)
    async with websocket(demo.url, token=demo.system_admin) as ws:
        await ws.init()
        await ws.subscribe("none", LOGINS)
        unnamed = await ws.receive()
        await subscribed(
            ws,
            demo,
            "named",
            LOGINS.replace("($d: String)", "").replace(
                "(domain: $d)", '(domain: "readonly.example")'
            ),
        )
        user = await demo.new_account("readonly.example")
        await demo.call(REPORT, {"e": f"{user}@readonly.example", "p": "MAPI"}, token=demo.gateway)
        named = await ws.receive()

    assert [e["extensions"]["code"] for e in unnamed["payload"]] == ["BAD_USER_INPUT"]
    assert named["payload"]["data"]["mapiEwsLoginUpdates"]["domain"] == "readonly.example"


async def test_the_legacy_graphql_ws_subprotocol_is_refused(demo: Demo) -> None:
    async with websocket(demo.url, subprotocol="graphql-ws") as ws:
        code = await ws.close_code()

    assert code == 4406  # "Subprotocol not acceptable"


@pytest.mark.parametrize("accept", ["application/json", "multipart/mixed;subscriptionSpec=1.0"])
async def test_a_subscription_over_http_is_refused(demo: Demo, accept: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{demo.url}/graphql",
            json={"query": CHANGES},
            headers={"Authorization": f"Bearer {demo.admin}", "Accept": accept},
        )

    errors = response.json()["errors"]
    assert [e["extensions"]["code"] for e in errors] == ["BAD_USER_INPUT"]
    assert "WebSocket only" in errors[0]["message"]


async def test_the_connection_refuses_more_subscriptions_than_its_cap(
    demo: Demo, dashboard: GraphQLWebSocket
) -> None:
    for index in range(20):  # the default cap (MAPI_EWS_MAX_SUBSCRIPTIONS_PER_CONNECTION)
        await dashboard.subscribe(str(index), CHANGES)
    await dashboard.subscribe("one-too-many", CHANGES)

    message = await dashboard.receive()

    assert (message["type"], message["id"]) == ("error", "one-too-many")
    assert "limit" in message["payload"][0]["message"].lower()
    assert message["payload"][0]["extensions"] == {"code": "BAD_USER_INPUT"}
