"""Faults survived, each under bounded load sent to 127.0.0.1 only: PostgreSQL killed and
restarted, a client that goes away in the middle of a request."""

import asyncio
import re
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.servers import PostgresProcess, Server, free_port, metric, run_cli, running_server

REPORT = """
mutation($e: String!, $at: DateTime!) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI, occurredAt: $at, clientAddress: "192.0.2.1"}) {
    allowed userErrors { code }
  }
}
"""


def errors_in(log: str) -> list[str]:
    """The server's log lines at ERROR or above (plain or JSON lines)."""
    return [
        line
        for line in log.splitlines()
        if line.startswith(("ERROR", "CRITICAL")) or '"level": "ERROR"' in line
    ]


@pytest.fixture
def postgres() -> Iterator[PostgresProcess]:
    try:
        cluster = PostgresProcess(free_port())
    except FileNotFoundError as missing:
        pytest.skip(f"{missing} is not installed")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


class Load:
    """Reports logins one after another from `workers` clients, each with its own occurredAt
    (a millisecond apart), and remembers which were acknowledged and how the rest failed."""

    def __init__(self, server: Server, token: str, address: str) -> None:
        self.server, self.token, self.address = server, token, address
        self.base = datetime.now(UTC) - timedelta(days=1)
        self.next = 0
        self.acknowledged: list[datetime] = []
        self.failures: Counter[str] = Counter()
        self.running = True

    async def worker(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(timeout=10) as http:
            while self.running:
                at = self.base + timedelta(milliseconds=self.next)
                self.next += 1
                variables = {"e": self.address, "at": at.isoformat()}
                try:
                    response = await http.post(
                        f"{self.server.url}/graphql",
                        json={"query": REPORT, "variables": variables},
                        headers=headers,
                    )
                    body = response.json()
                except (httpx.HTTPError, ValueError) as error:
                    self.failures[f"transport: {type(error).__name__}"] += 1
                    continue
                if body.get("data") and body["data"]["recordProtocolLogin"]["allowed"]:
                    self.acknowledged.append(at)
                else:
                    for error in body.get("errors", []):
                        self.failures[error["extensions"]["code"]] += 1
                    await asyncio.sleep(0.05)

    async def until(self, count: int, within: float) -> None:
        async with asyncio.timeout(within):
            while len(self.acknowledged) < count:
                await asyncio.sleep(0.02)


async def _ready(server: Server) -> int:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"{server.url}/readyz")).status_code


async def _until_ready(server: Server, status: int, within: float) -> None:
    async with asyncio.timeout(within):
        while await _ready(server) != status:
            await asyncio.sleep(0.1)


@pytest.fixture
async def demo_on(
    postgres: PostgresProcess, tmp_path: Path
) -> AsyncIterator[tuple[Server, str, str]]:
    env = {"MAPI_EWS_DATABASE_URL": postgres.url, "MAPI_EWS_DATABASE_POOL_SIZE": "4"}
    await run_cli("migrate", env=env)
    with running_server(env, tmp_path / "server.log", "--demo") as server:
        printed = server.output()
        token = re.search(r"Bearer (mgw_[A-Za-z0-9_-]+)", printed)
        address = re.search(r'emailAddress: \\"([^\\"]+)\\"', printed)
        assert token and address, printed
        yield server, token.group(1), address.group(1)


async def test_postgresql_killed_under_load_fails_clearly_recovers_and_loses_nothing(
    postgres: PostgresProcess, demo_on: tuple[Server, str, str]
) -> None:
    server, token, address = demo_on
    load = Load(server, token, address)
    workers = [asyncio.create_task(load.worker()) for _ in range(2)]
    try:
        await load.until(40, within=30)

        postgres.kill()
        await _until_ready(server, 503, within=10)
        before_restart = len(load.acknowledged)
        failures_seen = sum(load.failures.values())
        await asyncio.sleep(1.5)  # requests keep coming into the gap
        gap_failures = sum(load.failures.values()) - failures_seen
        postgres.start()
        await _until_ready(server, 200, within=30)
        await load.until(before_restart + 40, within=30)
    finally:
        load.running = False
        await asyncio.gather(*workers)

    # Requests in the gap failed with a clear, coded error, and nothing else went wrong.
    assert gap_failures > 0
    assert set(load.failures) == {"SERVICE_UNAVAILABLE"}, load.failures
    # Every acknowledged report is in the database, counted on the event it repeats: committed
    # means kept.
    connection = await asyncpg.connect(postgres.url)
    try:
        stored = await connection.fetch(
            "SELECT occurred_at, last_occurred_at, count FROM login_event "
            "WHERE client_address = '192.0.2.1'"
        )
    finally:
        await connection.close()
    missing = [
        at
        for at in load.acknowledged
        if not any(row["occurred_at"] <= at <= row["last_occurred_at"] for row in stored)
    ]
    assert missing == []
    assert sum(row["count"] for row in stored) >= len(load.acknowledged)
    # /metrics counted each of those errors by its code.
    unavailable = await metric(server.url, 'graphql_errors_total{code="SERVICE_UNAVAILABLE"}')
    assert unavailable == load.failures["SERVICE_UNAVAILABLE"]
    assert len(load.acknowledged) >= 80
    log = server.output()
    assert "the database is unavailable" in log
    assert errors_in(log) == []


async def test_a_client_that_disconnects_mid_request_leaves_the_server_well(
    tmp_path: Path,
) -> None:
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}"}
    with running_server(env, tmp_path / "server.log", "--demo") as server:
        host, port = "127.0.0.1", int(server.url.rsplit(":", 1)[1])
        body = b'{"query": "{ viewer { username } }"}'
        for cut in (
            # Headers promise a body that never comes.
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n" + body[:10],
            # Half the headers.
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Ty",
            # A whole request, and gone before the answer.
            b"POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body,
        ):
            for _ in range(20):
                with socket.create_connection((host, port)) as raw:
                    raw.sendall(cut)
        # A WebSocket upgrade abandoned half-way.
        with socket.create_connection((host, port)) as raw:
            raw.sendall(b"GET /graphql HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")

        deadline = time.monotonic() + 5
        async with httpx.AsyncClient() as http:
            health = await http.get(f"{server.url}/healthz")
            answer = await http.post(f"{server.url}/graphql", json={"query": "{ __typename }"})
        assert time.monotonic() < deadline
        log: Any = server.output()

    assert health.status_code == 200
    assert answer.json()["data"] == {"__typename": "Query"}
    assert errors_in(log) == []
    assert "Traceback" not in log
