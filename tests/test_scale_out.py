"""Two server processes sharing PostgreSQL and Redis: a dashboard on one sees what the other
causes (the shape docker-compose.yml runs)."""

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import RedisShape, migrated_postgres
from tests.servers import Server, graphql_data, metric, running_server
from tests.ws import GraphQLWebSocket, websocket

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

LOGIN = 'mutation($u: String!) { login(input: {username: $u, password: "demo-password"}) { accessToken } }'
GATEWAY = 'mutation { createGatewayToken(input: {name: "ews-1"}) { token } }'
REPORT = "mutation($e: String!) { recordProtocolLogin(input: {emailAddress: $e, protocol: EWS}) { allowed } }"
PICK = "{ accounts(mapiEwsEnabled: false, first: 100) { edges { node { username } } } }"
ENABLED = "{ mapiEwsAccounts(first: 1) { edges { node { username } } } }"
ENABLE = (
    "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
LOGINS = "subscription { mapiEwsLoginUpdates { username allowed account { lastEwsLogin } } }"
CHANGES = "subscription { mapiEwsAccountChanges { kind account { username } usage { enabled } } }"


async def subscribe(ws: GraphQLWebSocket, server: Server, operations: dict[str, str]) -> None:
    before = await metric(server.url, "open_subscriptions")
    for operation_id, query in operations.items():
        await ws.subscribe(operation_id, query)
    async with asyncio.timeout(10):
        while await metric(server.url, "open_subscriptions") < before + len(operations):
            await asyncio.sleep(0.02)


@pytest.fixture
async def shared_environment(redis_shape: RedisShape) -> AsyncIterator[RedisShape]:
    """One PostgreSQL, and one Redis or a Redis Cluster known by each process by another node."""
    async with migrated_postgres() as database:
        yield redis_shape.with_(database)


async def test_a_dashboard_on_one_process_sees_logins_and_changes_made_through_another(
    tmp_path: Path, shared_environment: RedisShape
) -> None:
    shape = shared_environment
    with (
        running_server(shape.first, tmp_path / "a.log", "--demo") as first,
        running_server(shape.second, tmp_path / "b.log") as second,
    ):
        root = (await graphql_data(first.url, LOGIN, {"u": "sysadmin"}))["login"]["accessToken"]
        admin = (await graphql_data(second.url, LOGIN, {"u": "admin@example.com"}))["login"][
            "accessToken"
        ]
        gateway = (await graphql_data(second.url, GATEWAY, token=root))["createGatewayToken"][
            "token"
        ]
        enabled = (await graphql_data(first.url, ENABLED, token=admin))["mapiEwsAccounts"]["edges"][
            0
        ]
        picked = next(
            e["node"]["username"]
            for e in (await graphql_data(first.url, PICK, token=admin))["accounts"]["edges"]
            if e["node"]["username"] != "admin"
        )

        async with (
            websocket(first.url, token=admin) as on_first,
            websocket(second.url, token=admin) as on_second,
        ):
            for ws, server in ((on_first, first), (on_second, second)):
                await ws.init()
                await subscribe(ws, server, {"logins": LOGINS, "changes": CHANGES})

            user = enabled["node"]["username"]
            report = await graphql_data(
                second.url, REPORT, {"e": f"{user}@example.com"}, token=gateway
            )
            change = await graphql_data(second.url, ENABLE, {"u": [picked]}, token=admin)
            received = [
                [await ws.receive(10), await ws.receive(10)] for ws in (on_first, on_second)
            ]

        assert report["recordProtocolLogin"]["allowed"] is True
        assert change["enableMapiEws"]["userErrors"] == []
        for login, enable in received:
            assert login["id"] == "logins"
            event = login["payload"]["data"]["mapiEwsLoginUpdates"]
            assert (event["username"], event["allowed"]) == (user, True)
            assert event["account"]["lastEwsLogin"] is not None
            assert enable["id"] == "changes"
            made = enable["payload"]["data"]["mapiEwsAccountChanges"]
            assert (made["kind"], made["account"]["username"]) == ("ENABLED", picked)
            assert made["usage"]["enabled"] == 13


async def test_a_killed_process_takes_nothing_down_with_it(
    tmp_path: Path, shared_environment: RedisShape
) -> None:
    shape = shared_environment
    with (
        running_server(shape.first, tmp_path / "a.log", "--demo") as doomed,
        running_server(shape.second, tmp_path / "b.log") as survivor,
    ):
        admin = (await graphql_data(survivor.url, LOGIN, {"u": "admin@example.com"}))["login"][
            "accessToken"
        ]
        picked = [
            e["node"]["username"]
            for e in (await graphql_data(survivor.url, PICK, token=admin))["accounts"]["edges"]
            if e["node"]["username"] != "admin"
        ][:2]
        async with (
            websocket(doomed.url, token=admin) as on_doomed,
            websocket(survivor.url, token=admin) as on_survivor,
        ):
            for ws, server in ((on_doomed, doomed), (on_survivor, survivor)):
                await ws.init()
                await subscribe(ws, server, {"changes": CHANGES})
            # A change through the doomed process reaches the survivor's dashboard...
            await graphql_data(doomed.url, ENABLE, {"u": picked[:1]}, token=admin)
            before = await on_survivor.receive(10)

            os.killpg(doomed.process.pid, signal.SIGKILL)
            doomed.process.wait(10)
            # ...its own dashboards lose their connection (a load balancer sends them on)...
            assert await on_doomed.close_code(wait=10) is not None

            # ...and the survivor goes on: it answers, and its dashboards keep receiving.
            async with httpx.AsyncClient() as http:
                ready = await http.get(f"{survivor.url}/readyz")
            await graphql_data(survivor.url, ENABLE, {"u": picked[1:]}, token=admin)
            after = await on_survivor.receive(10)

    assert before["payload"]["data"]["mapiEwsAccountChanges"]["account"]["username"] == picked[0]
    assert ready.status_code == 200
    assert after["payload"]["data"]["mapiEwsAccountChanges"]["account"]["username"] == picked[1]


REMOVE = (
    'mutation($u: [String!]!) { removeAccounts(input: {domain: "example.com", usernames: $u}) '
    "{ removed userErrors { code } } }"
)
DOMAINS = "{ domains(first: 1) { totalCount } }"


async def test_a_removed_administrator_is_refused_at_once_by_every_process(
    tmp_path: Path, shared_environment: RedisShape
) -> None:
    shape = shared_environment
    with (
        running_server(shape.first, tmp_path / "a.log", "--demo") as first,
        running_server(shape.second, tmp_path / "b.log") as second,
    ):
        root = (await graphql_data(first.url, LOGIN, {"u": "sysadmin"}))["login"]["accessToken"]
        admin = (await graphql_data(second.url, LOGIN, {"u": "admin@example.com"}))["login"][
            "accessToken"
        ]
        for server in (first, second):  # trusted by both, by its signature
            await graphql_data(server.url, ENABLED, token=admin)

        removed = await graphql_data(first.url, REMOVE, {"u": ["admin"]}, token=root)
        assert removed["removeAccounts"] == {"removed": 1, "userErrors": []}

        async with httpx.AsyncClient(timeout=10) as http:
            for server in (first, second):
                async with asyncio.timeout(1):
                    while True:
                        body = (
                            await http.post(
                                f"{server.url}/graphql",
                                json={"query": ENABLED},
                                headers={"Authorization": f"Bearer {admin}"},
                            )
                        ).json()
                        if "errors" in body:
                            break
                        await asyncio.sleep(0.02)
                assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
            # The system administrator, on either process, is not asked about again.
            assert (
                "errors"
                not in (
                    await http.post(
                        f"{second.url}/graphql",
                        json={"query": DOMAINS},
                        headers={"Authorization": f"Bearer {root}"},
                    )
                ).json()
            )


CLIENT_REPORT = """
mutation($e: String!) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: EWS, clientName: "Scraper 1.0"}) {
    allowed refusal
  }
}
"""
BLOCK = """
mutation($rules: [ClientAccessRuleInput!]!) {
  setClientAccessPolicy(input: {mode: BLOCK_LISTED, rules: $rules}) { userErrors { code } }
}
"""


async def test_a_client_access_policy_set_through_one_process_decides_reports_on_another(
    tmp_path: Path, shared_environment: RedisShape
) -> None:
    shape = shared_environment
    with (
        running_server(shape.first, tmp_path / "a.log", "--demo") as first,
        running_server(shape.second, tmp_path / "b.log") as second,
    ):
        admin = (await graphql_data(first.url, LOGIN, {"u": "admin@example.com"}))["login"][
            "accessToken"
        ]
        root = (await graphql_data(first.url, LOGIN, {"u": "sysadmin"}))["login"]["accessToken"]
        gateway = (await graphql_data(first.url, GATEWAY, token=root))["createGatewayToken"]
        enabled = (await graphql_data(first.url, ENABLED, token=admin))["mapiEwsAccounts"]
        address = enabled["edges"][0]["node"]["username"] + "@example.com"
        # The second process decides by the default policy, and keeps it.
        before = await graphql_data(
            second.url, CLIENT_REPORT, {"e": address}, token=gateway["token"]
        )

        blocked = await graphql_data(
            first.url, BLOCK, {"rules": [{"pattern": "scraper*"}]}, token=admin
        )
        await asyncio.sleep(1)  # "from one second after it commits"
        after = await graphql_data(
            second.url, CLIENT_REPORT, {"e": address}, token=gateway["token"]
        )
        await graphql_data(first.url, BLOCK, {"rules": []}, token=admin)
        await asyncio.sleep(1)
        again = await graphql_data(
            second.url, CLIENT_REPORT, {"e": address}, token=gateway["token"]
        )

    assert before["recordProtocolLogin"] == {"allowed": True, "refusal": None}
    assert blocked["setClientAccessPolicy"] == {"userErrors": []}
    assert after["recordProtocolLogin"] == {"allowed": False, "refusal": "CLIENT_NOT_ALLOWED"}
    assert again["recordProtocolLogin"] == {"allowed": True, "refusal": None}
