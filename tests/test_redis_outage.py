"""A server whose Redis restarts: queries and mutations go on, /readyz says so, and the open
subscriptions receive events again once Redis is back, without restarting anything."""

import asyncio
from pathlib import Path

import httpx

from tests.servers import RedisProcess, Server, graphql_data, metric, running_server
from tests.ws import websocket

LOGIN = 'mutation { login(input: {username: "admin@example.com", password: "demo-password"}) { accessToken } }'
ROOT = (
    'mutation { login(input: {username: "sysadmin", password: "demo-password"}) { accessToken } }'
)
GATEWAY = 'mutation { createGatewayToken(input: {name: "mapi-1"}) { token } }'
ENABLED = "{ mapiEwsAccounts(first: 1) { edges { node { emailAddress } } } }"
REPORT = "mutation($e: String!) { recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI}) { allowed } }"
DISABLE = (
    "mutation($u: [String!]!) { disableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
LOGINS = "subscription { mapiEwsLoginUpdates { username allowed } }"


async def until(server: Server, name: str, value: int) -> None:
    async with asyncio.timeout(20):
        while await metric(server.url, name) != value:
            await asyncio.sleep(0.05)


async def ready(server: Server) -> int:
    return (await readiness(server))[0]


async def readiness(server: Server) -> tuple[int, dict[str, object]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{server.url}/readyz")
        return answer.status_code, answer.json()


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
        admin = (await graphql_data(server.url, LOGIN))["login"]["accessToken"]
        root = (await graphql_data(server.url, ROOT))["login"]["accessToken"]
        gateway = (await graphql_data(server.url, GATEWAY, token=root))["createGatewayToken"][
            "token"
        ]
        address = (await graphql_data(server.url, ENABLED, token=admin))["mapiEwsAccounts"][
            "edges"
        ][0]["node"]["emailAddress"]

        async with websocket(server.url, token=admin) as ws:
            await ws.init()
            await ws.subscribe("logins", LOGINS)
            await until(server, "open_subscriptions", 1)
            await graphql_data(server.url, REPORT, {"e": address}, token=gateway)
            before = await ws.receive()

            redis.stop()
            await until(server, "redis_listening", 0)
            during = await graphql_data(server.url, REPORT, {"e": address}, token=gateway)
            # Queries, sign-ins (throttled in this process alone meanwhile) and mutations too.
            listed = await graphql_data(server.url, ENABLED, token=admin)
            signed_in = (await graphql_data(server.url, LOGIN))["login"]["accessToken"]
            disabled = await graphql_data(
                server.url, DISABLE, {"u": [address.split("@")[0]]}, token=signed_in
            )
            not_ready, said = await readiness(server)
            budgets_alone = await metric(server.url, 'redis_fallback{use="budgets"}')

            redis.start()
            await until(server, "redis_listening", 1)
            await graphql_data(server.url, REPORT, {"e": address}, token=gateway)
            after = await ws.receive(10)
            # Each use is served by Redis again at its next call.
            await graphql_data(server.url, ENABLED, token=admin)
            await graphql_data(server.url, LOGIN)

        assert before["payload"]["data"]["mapiEwsLoginUpdates"]["allowed"] is True
        assert during == {"recordProtocolLogin": {"allowed": True}}  # committed all the same
        assert listed["mapiEwsAccounts"]["edges"][0]["node"]["emailAddress"] == address
        assert disabled == {"disableMapiEws": {"userErrors": []}}
        assert not_ready == 503
        # Never silently: what it served alone, in /readyz, /metrics and one line each.
        assert said["redis"] == "down"
        assert {"budgets", "sign-in-throttle", "events"} <= set(said["fallbacks"])  # type: ignore[arg-type]
        assert budgets_alone == 1
        assert server.output().count("Redis cannot serve budgets") == 1
        assert server.output().count("Redis serves budgets again") == 1
        assert await readiness(server) == (200, {"status": "ok", "database": "up", "redis": "up"})
        assert await metric(server.url, 'redis_fallback{use="budgets"}') == 0
        assert after["payload"]["data"]["mapiEwsLoginUpdates"]["username"] == address.split("@")[0]
        # The report and the disable (its account change, the usage after it for the domain's
        # dashboards and for the consoles that follow every domain) in the gap reached no
        # dashboard: counted.
        assert await metric(server.url, "events_publish_failures_total") == 4
