"""A disable reaches the gateway holding the account's sessions: over real sockets to real
servers, across processes, after the gateway was away and after Redis restarted; and the
reference gateway (simulate-gateway) closes exactly what it is told to."""

import asyncio
import itertools
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import RedisShape, migrated_postgres
from tests.servers import (
    ROOT,
    RedisProcess,
    Server,
    SimulatedGateway,
    graphql_data,
    metric,
    running_server,
    simulated_gateway,
)
from tests.ws import GraphQLWebSocket, websocket

LOGIN = 'mutation($u: String!) { login(input: {username: $u, password: "demo-password"}) { accessToken } }'
CREATE_GATEWAY = "mutation($n: String!) { createGatewayToken(input: {name: $n}) { token } }"
ENABLED = "{ mapiEwsAccounts(first: 100) { edges { node { username emailAddress activeSessionCount } } } }"
PICK = "{ accounts(mapiEwsEnabled: false, first: 100) { edges { node { username } } } }"
ENABLE = (
    "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
DISABLE = "mutation($u: [String!]!) { disableMapiEws(input: {usernames: $u}) { sessionsEnding userErrors { code } } }"
REPORT = """
mutation($e: String!, $s: String!) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI, sessionId: $s, clientName: "Outlook"}) {
    allowed
  }
}
"""
END = "mutation($ids: [String!]!) { endProtocolSessions(input: {sessionIds: $ids}) { ended } }"
TOUCH = "mutation($ids: [String!]!) { touchProtocolSessions(input: {sessionIds: $ids}) { touched endNow } }"
SESSIONS = "{ mapiEwsSessions(first: 100) { totalCount edges { node { sessionId username } } } }"
COMMANDS = "subscription { protocolSessionCommands { endSessionIds emailAddress reason issuedAt } }"
SESSION_CHANGES = "subscription { mapiEwsSessionChanges { kind reason session { sessionId } } }"

_names = itertools.count(1)


@dataclass
class Demo:
    server: Server
    admin: str
    root: str

    @property
    def url(self) -> str:
        return self.server.url

    async def call(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str
    ) -> dict[str, Any]:
        return await graphql_data(self.url, query, variables, token=token)

    async def gateway(self) -> str:
        """A gateway token of its own for one test."""
        name = f"gateway-{next(_names)}"
        created = await self.call(CREATE_GATEWAY, {"n": name}, token=self.root)
        return str(created["createGatewayToken"]["token"])

    async def enabled(self) -> list[str]:
        edges = (await self.call(ENABLED, token=self.admin))["mapiEwsAccounts"]["edges"]
        return [e["node"]["emailAddress"] for e in edges]


async def sign_in(url: str, username: str) -> str:
    return str((await graphql_data(url, LOGIN, {"u": username}))["login"]["accessToken"])


async def demo_on(server: Server) -> Demo:
    return Demo(
        server,
        await sign_in(server.url, "admin@example.com"),
        await sign_in(server.url, "sysadmin"),
    )


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("commands")
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{folder / 'demo.sqlite3'}"}
    with running_server(env, folder / "server.log", "--demo") as server:
        yield server


@pytest.fixture
async def demo(demo_server: Server) -> Demo:
    return await demo_on(demo_server)


async def listen(ws: GraphQLWebSocket, server: Server, token: str, query: str = COMMANDS) -> None:
    """Init with `token` and subscribe; returns once the server has the subscription open."""
    before = await metric(server.url, "open_subscriptions")
    assert await ws.init({"Authorization": f"Bearer {token}"}) == {"type": "connection_ack"}
    await ws.subscribe("commands", query)
    async with asyncio.timeout(10):
        while await metric(server.url, "open_subscriptions") < before + 1:
            await asyncio.sleep(0.02)


def command_of(message: dict[str, Any]) -> dict[str, Any]:
    assert message["type"] == "next", message
    command: dict[str, Any] = message["payload"]["data"]["protocolSessionCommands"]
    return command


async def test_a_disable_reaches_the_subscribed_gateway_within_a_second(demo: Demo) -> None:
    gateway = await demo.gateway()
    address, other = (await demo.enabled())[:2]
    username = address.split("@")[0]
    for session_id, email in (("s-1", address), ("s-2", address), ("s-3", other)):
        opened = await demo.call(REPORT, {"e": email, "s": session_id}, token=gateway)
        assert opened["recordProtocolLogin"]["allowed"] is True
    async with websocket(demo.url) as ws:
        await listen(ws, demo.server, gateway)

        disabled = await demo.call(DISABLE, {"u": [username]}, token=demo.admin)
        answered = time.monotonic()
        command = command_of(await ws.receive(5))
        delay = time.monotonic() - answered
    # As the module found it: the account enabled, no session left open.
    await demo.call(ENABLE, {"u": [username]}, token=demo.admin)
    await demo.call(END, {"ids": ["s-3"]}, token=gateway)

    assert disabled["disableMapiEws"] == {"sessionsEnding": 2, "userErrors": []}
    assert sorted(command["endSessionIds"]) == ["s-1", "s-2"]
    assert (command["emailAddress"], command["reason"]) == (address, "MAPI_EWS_DISABLED")
    assert delay < 1.0, f"the command took {delay:.3f} s"


async def test_a_gateway_that_was_away_receives_the_backlog_when_it_subscribes(demo: Demo) -> None:
    gateway = await demo.gateway()
    address = (await demo.enabled())[2]
    username = address.split("@")[0]
    await demo.call(REPORT, {"e": address, "s": "away-1"}, token=gateway)
    await demo.call(DISABLE, {"u": [username]}, token=demo.admin)  # nobody is listening
    await demo.call(ENABLE, {"u": [username]}, token=demo.admin)

    async with websocket(demo.url) as ws:
        assert await ws.init({"Authorization": f"Bearer {gateway}"}) == {"type": "connection_ack"}
        await ws.subscribe("commands", COMMANDS)
        backlog = command_of(await ws.receive(5))
    touched = await demo.call(TOUCH, {"ids": ["away-1"]}, token=gateway)

    assert (backlog["endSessionIds"], backlog["reason"]) == (["away-1"], "MAPI_EWS_DISABLED")
    assert touched["touchProtocolSessions"] == {"touched": 0, "endNow": ["away-1"]}


async def test_a_gateway_receives_only_its_own_commands(demo: Demo) -> None:
    mine, theirs = await demo.gateway(), await demo.gateway()
    address = (await demo.enabled())[3]
    username = address.split("@")[0]
    await demo.call(REPORT, {"e": address, "s": "theirs-1"}, token=theirs)
    async with websocket(demo.url) as mine_ws, websocket(demo.url) as theirs_ws:
        await listen(mine_ws, demo.server, mine)
        await listen(theirs_ws, demo.server, theirs)
        await demo.call(DISABLE, {"u": [username]}, token=demo.admin)
        received = command_of(await theirs_ws.receive(5))
        with pytest.raises(TimeoutError):
            await mine_ws.receive(0.5)
    await demo.call(ENABLE, {"u": [username]}, token=demo.admin)

    assert received["endSessionIds"] == ["theirs-1"]


async def test_an_unconfirmed_session_expires_and_dashboards_see_it_end(tmp_path: Path) -> None:
    env = {
        "MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'expiry.sqlite3'}",
        "MAPI_EWS_SESSION_TTL_SECONDS": "1",
        "MAPI_EWS_SESSION_SWEEP_SECONDS": "0.2",
    }
    with running_server(env, tmp_path / "server.log", "--demo") as server:
        demo = await demo_on(server)
        gateway = await demo.gateway()
        address = (await demo.enabled())[0]
        async with websocket(server.url) as dashboard:
            await listen(dashboard, server, demo.admin, SESSION_CHANGES)
            await demo.call(REPORT, {"e": address, "s": "quiet-1"}, token=gateway)
            started = await dashboard.receive(5)
            ended = await dashboard.receive(5)  # nobody confirms it: it expires
        touched = await demo.call(TOUCH, {"ids": ["quiet-1"]}, token=gateway)
        listed = await demo.call(SESSIONS, token=demo.admin)

    change = started["payload"]["data"]["mapiEwsSessionChanges"]
    assert change == {"kind": "STARTED", "reason": None, "session": {"sessionId": "quiet-1"}}
    change = ended["payload"]["data"]["mapiEwsSessionChanges"]
    assert change == {"kind": "ENDED", "reason": "EXPIRED", "session": {"sessionId": "quiet-1"}}
    assert touched["touchProtocolSessions"] == {"touched": 0, "endNow": ["quiet-1"]}
    assert listed["mapiEwsSessions"]["totalCount"] == 0


async def test_a_command_lost_while_redis_restarted_is_in_the_backlog(
    tmp_path: Path, private_redis: tuple[str, RedisProcess]
) -> None:
    url, redis = private_redis
    env = {
        "MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'redis.sqlite3'}",
        "MAPI_EWS_REDIS_URL": url,
    }
    with running_server(env, tmp_path / "server.log", "--demo") as server:
        demo = await demo_on(server)
        gateway = await demo.gateway()
        address = (await demo.enabled())[0]
        await demo.call(REPORT, {"e": address, "s": "kept-1"}, token=gateway)
        async with websocket(server.url) as ws:
            await listen(ws, server, gateway)
            redis.stop()
            async with asyncio.timeout(20):
                while await metric(server.url, "redis_listening") != 0:
                    await asyncio.sleep(0.05)
            failures = await metric(server.url, "events_publish_failures_total")
            disabled = await demo.call(DISABLE, {"u": [address.split("@")[0]]}, token=demo.admin)
            async with asyncio.timeout(20):  # the command is lost, not merely late
                while await metric(server.url, "events_publish_failures_total") == failures:
                    await asyncio.sleep(0.05)
            redis.start()
            async with asyncio.timeout(20):
                while await metric(server.url, "redis_listening") != 1:
                    await asyncio.sleep(0.05)
            with pytest.raises(TimeoutError):
                await ws.receive(0.5)  # the command was published into the gap
            await ws.complete("commands")
            await ws.subscribe("again", COMMANDS)
            backlog = await ws.receive(5)

    assert disabled["disableMapiEws"]["sessionsEnding"] == 1
    assert backlog["id"] == "again"
    assert command_of(backlog)["endSessionIds"] == ["kept-1"]


@pytest.mark.postgres
@pytest.mark.redis
async def test_a_disable_through_one_process_reaches_a_gateway_on_another(
    tmp_path: Path, redis_shape: RedisShape
) -> None:
    async with migrated_postgres() as database:
        shape = redis_shape.with_(database)
        with (
            running_server(shape.first, tmp_path / "a.log", "--demo") as first,
            running_server(shape.second, tmp_path / "b.log") as second,
        ):
            on_first = await demo_on(first)
            admin_on_second = await sign_in(second.url, "admin@example.com")
            gateway = await on_first.gateway()
            address = (await on_first.enabled())[0]
            await graphql_data(second.url, REPORT, {"e": address, "s": "far-1"}, token=gateway)
            async with websocket(first.url) as ws:
                await listen(ws, first, gateway)
                await graphql_data(
                    second.url, DISABLE, {"u": [address.split("@")[0]]}, token=admin_on_second
                )
                answered = time.monotonic()
                command = command_of(await ws.receive(5))
                delay = time.monotonic() - answered

    assert command["endSessionIds"] == ["far-1"]
    assert delay < 1.0, f"the command took {delay:.3f} s"


@pytest.fixture
async def simulated(
    demo: Demo, tmp_path: Path
) -> AsyncIterator[tuple[SimulatedGateway, list[str]]]:
    """simulate-gateway holding 50 sessions over 20 accounts of the demo."""
    enabled = await demo.enabled()
    more = [
        e["node"]["username"]
        for e in (await demo.call(PICK, token=demo.admin))["accounts"]["edges"]
        if e["node"]["username"] != "admin"
    ][: 20 - len(enabled)]
    if more:
        await demo.call(ENABLE, {"u": more}, token=demo.admin)
    accounts = (await demo.enabled())[:20]
    options = ("--sessions", "50", "--touch-seconds", "30")
    async with simulated_gateway(
        demo.url, await demo.gateway(), tmp_path, accounts, *options
    ) as gw:
        yield gw, accounts


async def test_simulate_gateway_closes_exactly_the_disabled_accounts_sessions_within_a_second(
    demo: Demo, simulated: tuple[SimulatedGateway, list[str]]
) -> None:
    simulator, accounts = simulated
    await simulator.until("listening")
    holding = (await simulator.until("holding"))[0]
    opened = await simulator.until("opened", 50)
    disabled = [address.split("@")[0] for address in accounts[:5]]
    expected = {line["sessionId"] for line in opened if line["emailAddress"] in accounts[:5]}

    answer = await demo.call(DISABLE, {"u": disabled}, token=demo.admin)
    answered = time.monotonic()
    closed = await simulator.until("closed", len(expected))
    await simulator.until("ended", 5)
    listed = await demo.call(SESSIONS, token=demo.admin)
    tab = (await demo.call(ENABLED, token=demo.admin))["mapiEwsAccounts"]["edges"]

    simulator.process.terminate()
    await simulator.until("stopped")
    await demo.call(ENABLE, {"u": disabled}, token=demo.admin)
    after_stop = await demo.call(SESSIONS, token=demo.admin)

    assert holding["sessions"] == 50
    assert answer["disableMapiEws"] == {"sessionsEnding": len(expected), "userErrors": []}
    assert len(expected) == 15  # 50 sessions over 20 accounts: 3 for each of the first ten
    assert {line["sessionId"] for line in closed} == expected
    assert {line["reason"] for line in closed} == {"MAPI_EWS_DISABLED"}
    assert simulator.last("closed") - answered < 1.0
    still_open = {e["node"]["sessionId"] for e in listed["mapiEwsSessions"]["edges"]}
    assert still_open == {line["sessionId"] for line in opened} - expected
    counts = {e["node"]["emailAddress"]: e["node"]["activeSessionCount"] for e in tab}
    assert all(address not in counts for address in accounts[:5])  # disabled: not in the tab
    assert sum(counts[address] for address in accounts[5:]) == 35
    assert after_stop["mapiEwsSessions"]["totalCount"] == 0  # it closed the rest on the way out


async def test_simulate_gateway_reads_its_token_from_the_environment_never_the_command_line(
    demo: Demo,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", "simulate-gateway", "--url", demo.url, "--duration", "0.5",
        "--json", (await demo.enabled())[0],
        cwd=ROOT, env={**os.environ, "MAPI_EWS_GATEWAY_TOKEN": await demo.gateway()},
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 20)
    missing = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "api", "simulate-gateway", "someone@example.com",
        cwd=ROOT, env={k: v for k, v in os.environ.items() if k != "MAPI_EWS_GATEWAY_TOKEN"},
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, refused = await asyncio.wait_for(missing.communicate(), 20)

    steps = [orjson.loads(line)["step"] for line in output.splitlines()]
    assert steps == ["listening", "opened", "holding", "closed", "ended", "stopped"]
    assert missing.returncode != 0
    assert b"no gateway token in $MAPI_EWS_GATEWAY_TOKEN" in refused
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{demo.url}/healthz")).status_code == 200


POLICY = """
mutation($rules: [ClientAccessRuleInput!]!) {
  setClientAccessPolicy(input: {mode: BLOCK_LISTED, rules: $rules}) { sessionsEnding userErrors { code } }
}
"""


async def test_blocking_a_client_closes_its_sessions_in_simulate_gateway_within_a_second(
    demo: Demo, tmp_path: Path
) -> None:
    accounts = (await demo.enabled())[:4]
    clients = ("--client-name", "Scraper 1.0", "--client-name", "Microsoft Outlook 16.0.17928")
    options = ("--sessions", "8", "--protocol", "EWS", "--touch-seconds", "30", *clients)
    try:
        async with simulated_gateway(
            demo.url, await demo.gateway(), tmp_path, accounts, *options
        ) as simulator:
            await simulator.until("listening")
            opened = await simulator.until("opened", 8)
            scraping = {line["sessionId"] for line in opened if line["clientName"] == "Scraper 1.0"}

            answer = await demo.call(POLICY, {"rules": [{"pattern": "scraper*"}]}, token=demo.admin)
            answered = time.monotonic()
            closed = await simulator.until("closed", len(scraping))
            late = simulator.last("closed") - answered
        async with simulated_gateway(
            demo.url, await demo.gateway(), tmp_path, accounts[:1], "--client-name", "Scraper 2"
        ) as refused_one:
            refused = (await refused_one.until("refused"))[0]
    finally:
        await demo.call(POLICY, {"rules": []}, token=demo.admin)

    assert len(scraping) == 4
    assert answer["setClientAccessPolicy"] == {"sessionsEnding": 4, "userErrors": []}
    assert {line["sessionId"] for line in closed} == scraping
    assert {line["reason"] for line in closed} == {"ACCESS_POLICY"}
    assert late < 1.0, f"the sessions closed {late:.3f} s after the answer"
    assert (refused["clientName"], refused["refusal"]) == ("Scraper 2", "CLIENT_NOT_ALLOWED")
