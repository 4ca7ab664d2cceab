"""A server whose Redis restarts: queries and mutations go on, /readyz says so, and the open
subscriptions receive events again once Redis is back, without restarting anything."""

import asyncio
from pathlib import Path
from typing import Any

import httpx

from tests.servers import RedisProcess, Server, running_server
from tests.ws import websocket

LOGIN = 'mutation { login(input: {username: "admin@example.com", password: "demo-password"}) { accessToken } }'
ROOT = (
    'mutation { login(input: {username: "sysadmin", password: "demo-password"}) { accessToken } }'
)
GATEWAY = 'mutation { createGatewayToken(input: {name: "mapi-1"}) { token } }'
ENABLED = "{ mapiEwsAccounts(first: 1) { edges { node { emailAddress } } } }"
REPORT = "mutation($e: String!) { recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI}) { allowed } }"
LOGINS = "subscription { mapiEwsLoginUpdates { username allowed } }"


async def call(
    server: Server, query: str, variables: dict[str, Any] | None = None, token: str | None = None
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{server.url}/graphql",
            json={"query": query, "variables": variables or {}},
            headers=headers,
        )
    body: dict[str, Any] = response.json()
    assert "errors" not in body, body
    return body["data"]  # type: ignore[no-any-return]


async def gauge(server: Server, name: str) -> int:
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{server.url}/metrics")).text
    line = next(li for li in text.splitlines() if li.startswith(f"mapi_ews_{name} "))
    return int(float(line.split()[1]))


async def until(server: Server, name: str, value: int) -> None:
    async with asyncio.timeout(20):
        while await gauge(server, name) != value:
            await asyncio.sleep(0.05)


async def ready(server: Server) -> int:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"{server.url}/readyz")).status_code


async def test_subscriptions_resume_after_redis_restarts_and_requests_never_stop(
    tmp_path: Path, private_redis: tuple[str, RedisProcess]
) -> None:
    url, redis = private_redis
    env = {
        "MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'outage.sqlite3'}",
        "MAPI_EWS_REDIS_URL": url,
    }
    with running_server(env, tmp_path / "server.log", "--demo") as server:
        await until(server, "redis_listening", 1)
        admin = (await call(server, LOGIN))["login"]["accessToken"]
        root = (await call(server, ROOT))["login"]["accessToken"]
        gateway = (await call(server, GATEWAY, token=root))["createGatewayToken"]["token"]
        address = (await call(server, ENABLED, token=admin))["mapiEwsAccounts"]["edges"][0]["node"][
            "emailAddress"
        ]

        async with websocket(server.url, token=admin) as ws:
            await ws.init()
            await ws.subscribe("logins", LOGINS)
            await until(server, "open_subscriptions", 1)
            await call(server, REPORT, {"e": address}, token=gateway)
            before = await ws.receive()

            redis.stop()
            await until(server, "redis_listening", 0)
            during = await call(server, REPORT, {"e": address}, token=gateway)
            not_ready = await ready(server)

            redis.start()
            await until(server, "redis_listening", 1)
            await call(server, REPORT, {"e": address}, token=gateway)
            after = await ws.receive(10)

        assert before["payload"]["data"]["mapiEwsLoginUpdates"]["allowed"] is True
        assert during == {"recordProtocolLogin": {"allowed": True}}  # committed all the same
        assert not_ready == 503
        assert await ready(server) == 200
        assert after["payload"]["data"]["mapiEwsLoginUpdates"]["username"] == address.split("@")[0]
        assert await gauge(server, "events_publish_failures_total") == 1  # the one in the gap
