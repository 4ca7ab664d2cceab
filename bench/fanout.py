"""Fan-out: 10,000 dashboards subscribed to mapiEwsLoginUpdates on one worker.

For each report, the time from the report's HTTP response to each dashboard's receipt of the
event, and the worker's resident memory before and after the dashboards connect. The baseline,
in the same run: the same clients on a plain WebSocket route of the same server that
writes one pre-encoded message of the same size to every socket (bench/server.py), which is the
floor of uvicorn and the websockets library on this machine.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import httpx
import orjson

from bench.common import DOMAIN, RunningServer, Seeded, save, server
from bench.dashboards import Dashboard, connect, nexts

SUBSCRIBERS = int(os.environ.get("BENCH_SUBSCRIBERS", "10000"))
# The load generator's processes (BENCH_FANOUT_PROCESSES), apart from the measuring one.
PROCESSES = int(os.environ.get("BENCH_FANOUT_PROCESSES", "2"))
TARGET_P99_MS, TARGET_MB = 250, 300
REPORTS = int(os.environ.get("BENCH_REPORTS", "20"))
SUBSCRIPTION = (
    "subscription { mapiEwsLoginUpdates { id username emailAddress protocol occurredAt allowed "
    "account { username name lastLogin lastLoginProtocol mapiEwsEnabled } } }"
)
REPORT = (
    "mutation($e: String!) "
    "{ recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI}) { allowed } }"
)


class Dashboards:
    """SUBSCRIBERS dashboards (bench/dashboards.py) spread over PROCESSES load-generating
    processes of their own, so that reading 10,000 sockets does not share the measuring
    process's core; each notes when every message arrives (time.monotonic, one clock for the
    whole machine)."""

    def __init__(self, url: str, token: str | None) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.processes: list[BaseProcess] = []
        shares = [
            SUBSCRIBERS // PROCESSES + (i < SUBSCRIBERS % PROCESSES) for i in range(PROCESSES)
        ]
        for share in shares:
            ours, theirs = context.Pipe()
            # Daemons: a measurement that fails leaves no generator waiting for orders.
            process = context.Process(
                target=_generator, args=(theirs, url, token, share), daemon=True
            )
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    async def _ask(self, message: object) -> list[Any]:
        def one(pipe: Connection) -> Any:
            pipe.send(message)
            if not pipe.poll(60):
                raise TimeoutError(f"a load generator did not answer {message!r}")
            answer = pipe.recv()
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return list(await asyncio.gather(*(asyncio.to_thread(one, pipe) for pipe in self.pipes)))

    async def open(self) -> None:
        await self._ask(("open",))

    async def wait_for(self, username: str, count: int) -> list[float]:
        """When each dashboard received the `count`th event, which must be `username`'s."""
        answers = await self._ask(("wait", username, count))
        return [at for arrivals in answers for at in arrivals]

    async def close(self) -> None:
        await self._ask(("close",))
        for process in self.processes:
            process.join(10)


def _generator(pipe: Connection, url: str, token: str | None, count: int) -> None:
    """A load-generating process: `count` dashboards, driven by the measuring process."""
    asyncio.run(_generate(pipe, url, token, count))


async def _generate(pipe: Connection, url: str, token: str | None, count: int) -> None:
    connections: list[Dashboard] = []

    async def one() -> None:
        dashboard = await connect(url)
        if token is not None:  # the app: graphql-transport-ws's handshake and a subscription
            init = {"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}
            dashboard.send(init)
            ack = await dashboard.receive()
            assert ack == {"type": "connection_ack"}, ack
            dashboard.arrivals.clear()
            dashboard.send({"id": "1", "type": "subscribe", "payload": {"query": SUBSCRIPTION}})
        connections.append(dashboard)

    async def arrivals(username: str, nth: int) -> list[float]:
        async with asyncio.timeout(30):
            while nexts(connections) < nth * count:
                await asyncio.sleep(0.005)
        times = []
        for dashboard in connections:
            events = [(at, text) for at, text in dashboard.arrivals if b'"next"' in text]
            at, text = events[nth - 1]
            payload = orjson.loads(text)["payload"]["data"]["mapiEwsLoginUpdates"]
            assert payload["username"] == username, payload
            times.append(at)
        return times

    while True:
        try:
            message = await asyncio.to_thread(pipe.recv)
        except EOFError:  # the measuring process is gone
            return
        try:
            if message[0] == "open":
                for batch in range(0, count, 100):
                    await asyncio.gather(*(one() for _ in range(min(100, count - batch))))
                pipe.send(len(connections))
            elif message[0] == "wait":
                pipe.send(await arrivals(message[1], message[2]))
            else:
                for dashboard in connections:
                    dashboard.close()
                pipe.send(len(connections))
                return
        except Exception as error:  # handed to the measuring process, raised there
            pipe.send(error)
            return


async def _measure(dashboards: Dashboards, send: Callable[[int], Awaitable[None]]) -> list[float]:
    latencies: list[float] = []
    for k in range(REPORTS):
        username = f"user{2 * k + 2:05d}"
        await send(k)
        responded = time.monotonic()
        arrivals = await dashboards.wait_for(username, k + 1)
        latencies += [max(arrived - responded, 0.0) * 1000 for arrived in arrivals]
        await asyncio.sleep(0.3)
    return latencies


def _figures(latencies: list[float], rss: tuple[float, float]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1],
        "max_ms": ordered[-1],
        "rss_before_mb": rss[0],
        "rss_growth_mb": rss[1] - rss[0],
    }


async def _graphql(seeded: Seeded, server: RunningServer) -> dict[str, float]:
    base = server.url
    ws_url = base.replace("http://", "ws://") + "/graphql"

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        headers = {"Authorization": f"Bearer {seeded.gateway_token}"}

        async def report(k: int) -> None:
            body = {"query": REPORT, "variables": {"e": f"user{2 * k + 2:05d}@{DOMAIN}"}}
            answer = (await http.post("/graphql", json=body, headers=headers)).json()
            assert answer["data"] == {"recordProtocolLogin": {"allowed": True}}, answer

        await report(REPORTS)  # warm the path once, no dashboards yet
        before = server.rss_mb()
        dashboards = Dashboards(ws_url, seeded.admin_token)
        await dashboards.open()
        try:
            async with asyncio.timeout(60):
                while await _open_subscriptions(http) < SUBSCRIBERS:
                    await asyncio.sleep(0.1)
        except TimeoutError:
            raise RuntimeError(
                f"{await _open_subscriptions(http)} of {SUBSCRIBERS} subscriptions open after 60 s"
            ) from None
        latencies = await _measure(dashboards, report)
        after = server.rss_mb()
        await dashboards.close()
    return _figures(latencies, (before, after))


async def _open_subscriptions(http: httpx.AsyncClient) -> int:
    text = (await http.get("/metrics")).text
    line = next(li for li in text.splitlines() if li.startswith("mapi_ews_open_subscriptions "))
    return int(float(line.split()[1]))


async def _baseline(server: RunningServer) -> dict[str, float]:
    base = server.url
    ws_url = base.replace("http://", "ws://") + "/baseline/ws"

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        before = server.rss_mb()
        dashboards = Dashboards(ws_url, None)
        await dashboards.open()
        async with asyncio.timeout(60):
            while (await http.get("/baseline/ws/count")).json()["sockets"] < SUBSCRIBERS:
                await asyncio.sleep(0.1)

        async def broadcast(k: int) -> None:
            # About the size of the GraphQL event above.
            event = {"username": f"user{2 * k + 2:05d}", "padding": "x" * 300}
            message = {
                "id": "1",
                "type": "next",
                "payload": {"data": {"mapiEwsLoginUpdates": event}},
            }
            await http.post("/baseline/ws/broadcast", content=orjson.dumps(message))

        latencies = await _measure(dashboards, broadcast)
        after = server.rss_mb()
        await dashboards.close()
    return _figures(latencies, (before, after))


def run(env: dict[str, str], seeded: Seeded) -> dict[str, object]:
    """Each side on a server process of its own, so neither's memory counts for the other."""
    with server(env) as plain:
        baseline = asyncio.run(_baseline(plain))
    # One administrator's token stands for the many watching the domain: the cap on one
    # principal's subscriptions (100, against one principal's abuse) is raised to let it.
    with server({**env, "MAPI_EWS_MAX_SUBSCRIPTIONS_PER_PRINCIPAL": str(SUBSCRIBERS)}) as app:
        graphql = asyncio.run(_graphql(seeded, app))
    results = {"baseline": baseline, "graphql": graphql}
    print(
        f"\nFan-out: {SUBSCRIBERS} dashboards on one worker, {REPORTS} reports; time from the "
        "report's response to each delivery; worker memory growth for the dashboards"
    )
    print(f"{'':<10} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'RSS +MB':>8}")
    for label, figures in results.items():
        print(
            f"{label:<10} {figures['p50_ms']:>8.1f} {figures['p99_ms']:>8.1f} "
            f"{figures['max_ms']:>8.1f} {figures['rss_growth_mb']:>8.1f}"
        )
    ratio = graphql["p99_ms"] / max(baseline["p99_ms"], 0.001)
    print(
        f"graphql p99 {graphql['p99_ms']:.0f} ms (target under {TARGET_P99_MS} for 10,000), "
        f"{ratio:.1f}x the baseline's; memory +{graphql['rss_growth_mb']:.0f} MB, "
        f"{graphql['rss_before_mb'] + graphql['rss_growth_mb']:.0f} MB in all (target under "
        f"{TARGET_MB} for 10,000)"
    )
    data = {"results": results, "p99_ratio": ratio}
    save("fanout", data)
    return data
