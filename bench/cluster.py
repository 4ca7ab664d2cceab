"""`python -m bench cluster`: what a Redis Cluster carries for 100 server processes and 10,000
domains, measured on a local cluster of three primaries (started here, stopped after).

100 event buses stand for 100 server processes, in 4 worker processes of 25; each has 20
dashboards, each watching one domain picked at random from 10,000 (2,000 dashboards in all).
Then 50,000 events of about 400 bytes, each for a random domain of the 10,000, are published
through 4 more buses, as the processes that took the reports would. Counted, with the nodes'
own INFO (bytes in and out, SPUBLISH/PUBLISH calls) and each bus's received-messages counter:

- sharded: the shipped bus on the cluster (ShardedEventBus: SPUBLISH/SSUBSCRIBE);
- classic, the baseline in the same run: the one-Redis bus (RedisEventBus: PUBLISH/SUBSCRIBE,
  a channel per domain) pointed at the same cluster, each process at one node in turn, as
  a deployment without MAPI_EWS_REDIS_CLUSTER would be. Classic PUBLISH is copied to every node.

Environment: BENCH_CLUSTER_EVENTS (50000), BENCH_CLUSTER_PROCESSES (100), BENCH_CLUSTER_DOMAINS
(10000).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import time
import uuid
from typing import Any

from redis.asyncio import Redis

from api.events import Event, RedisEventBus, ShardedEventBus, Topic
from bench.common import save
from tests.servers import RedisClusterProcesses

EVENTS = int(os.environ.get("BENCH_CLUSTER_EVENTS", "50000"))
PROCESSES = int(os.environ.get("BENCH_CLUSTER_PROCESSES", "100"))
DOMAINS = int(os.environ.get("BENCH_CLUSTER_DOMAINS", "10000"))
WORKERS = 4
WATCHED = 20  # dashboards per process, one domain each
PUBLISHERS = 4
PAYLOAD = "x" * 330  # with the envelope, about 400 bytes an event


def _bus(kind: str, url: str, channel: str) -> RedisEventBus:
    if kind == "sharded":
        return ShardedEventBus(WATCHED * 4, url=url, channel=channel)
    return RedisEventBus(WATCHED * 4, url=url, channel=channel)


def _worker(*args: Any) -> None:
    """One subscribing process (multiprocessing's target): _processes's arguments."""
    asyncio.run(_processes(*args))


async def _processes(
    kind: str,
    urls: list[str],
    channel: str,
    first: int,
    count: int,
    ready: Any,
    done: Any,
    out: Any,
) -> None:
    rng = random.Random(first)
    buses = [_bus(kind, urls[(first + n) % len(urls)], channel) for n in range(count)]
    held = []
    for bus in buses:
        await bus.start()
        await asyncio.wait_for(bus.listening.wait(), 30)
        for domain in rng.sample(range(1, DOMAINS + 1), WATCHED):
            subscription = bus.subscribe(Topic.LOGINS, domain)
            held.append((subscription, await subscription.__aenter__()))
    ready.set()
    while not done.is_set():
        # Drain what arrives, as dashboards would.
        for _, subscriber in held:
            while subscriber._events:
                subscriber._events.popleft()
        await asyncio.sleep(0.05)
    received = [bus.metrics.value("mapi_ews_redis_messages_received_total") for bus in buses]
    delivered = [bus.hub.delivered for bus in buses]
    for subscription, _ in held:
        await subscription.__aexit__()
    for bus in buses:
        await bus.stop()
    out.put({"received": received, "delivered": delivered})


async def _node_stats(ports: list[int]) -> dict[int, dict[str, int]]:
    stats = {}
    for port in ports:
        node = Redis(port=port)
        try:
            info = await node.info("all")
            bus = await node.cluster("INFO")
        finally:
            await node.aclose()
        stats[port] = {
            "in": int(info["total_net_input_bytes"]),
            "out": int(info["total_net_output_bytes"]),
            # Messages copied to the other nodes over the cluster bus (classic PUBLISH).
            "bus": int(bus.get("cluster_stats_messages_publish_sent", 0)),
            "from_bus": int(bus.get("cluster_stats_messages_publish_received", 0)),
            "publish": int(info.get("cmdstat_publish", {}).get("calls", 0))
            + int(info.get("cmdstat_spublish", {}).get("calls", 0)),
        }
    return stats


async def _publish(
    kind: str, urls: list[str], channel: str, ports: list[int]
) -> tuple[float, dict[int, dict[str, int]], dict[int, dict[str, int]]]:
    """Publishes the events: the CPU time it took this process (the 100 subscribing buses
    poll in other processes, on the same cores, so wall time would measure them too), and the
    nodes' counters before (publishers connected: a cluster client's first command fetches
    the command table, some 100 kB) and after."""
    rng = random.Random(7)
    buses = [_bus(kind, urls[n % len(urls)], channel) for n in range(PUBLISHERS)]
    for bus in buses:
        await bus.start()
        await bus.publish([Event(Topic.LOGINS, DOMAINS + 1, {"n": -1})])
        await bus.flush()
    before = await _node_stats(ports)
    started = time.process_time()
    for start in range(0, EVENTS, 100):
        batch = [
            Event(Topic.LOGINS, rng.randint(1, DOMAINS), {"n": n, "padding": PAYLOAD})
            for n in range(start, min(start + 100, EVENTS))
        ]
        await buses[(start // 100) % PUBLISHERS].publish(batch)
        if start % 5000 == 0:
            for bus in buses:
                await bus.flush()
    for bus in buses:
        await bus.flush()
    elapsed = time.process_time() - started
    await asyncio.sleep(2)  # the last deliveries
    after = await _node_stats(ports)
    for bus in buses:
        await bus.stop()
    return elapsed, before, after


def _measure(kind: str, cluster: RedisClusterProcesses) -> dict[str, Any]:
    channel = f"bench:{uuid.uuid4().hex}"
    context = multiprocessing.get_context("spawn")
    ready = [context.Event() for _ in range(WORKERS)]
    done = context.Event()
    out = context.Queue()
    share = PROCESSES // WORKERS
    workers = [
        context.Process(
            target=_worker,
            args=(kind, cluster.urls, channel, n * share, share, ready[n], done, out),
        )
        for n in range(WORKERS)
    ]
    for worker in workers:
        worker.start()
    for event in ready:
        if not event.wait(300):
            raise RuntimeError("the subscribing processes did not get ready")
    elapsed, before, after = asyncio.run(_publish(kind, cluster.urls, channel, cluster.ports))
    done.set()
    reports = [out.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(60)
    received = [r for report in reports for r in report["received"]]
    nodes = {
        port: {
            key: after[port][key] - before[port][key]
            for key in ("in", "out", "publish", "bus", "from_bus")
        }
        for port in cluster.ports
    }
    return {
        "kind": kind,
        "publish_cpu_seconds": round(elapsed, 2),
        "nodes": nodes,
        "messages_per_process": {
            "mean": sum(received) / len(received),
            "max": max(received),
            "min": min(received),
        },
        "messages_all_processes": sum(received),
    }


def _print(result: dict[str, Any]) -> None:
    per = 10_000 / EVENTS
    cpu = result["publish_cpu_seconds"]
    print(f"  {result['kind']}: published {EVENTS:,} events with {cpu} s of the publisher's CPU")
    for port, node in result["nodes"].items():
        print(
            f"    node {port}: {(node['publish'] + node['from_bus']) * per:,.0f} events handled "
            f"({node['publish'] * per:,.0f} from clients), "
            f"{node['in'] * per / 1e6:.2f} MB in, {node['out'] * per / 1e6:.2f} MB out, "
            f"{node['bus'] * per:,.0f} copied over the cluster bus, per 10,000 events"
        )
    messages = result["messages_per_process"]
    print(
        f"    per process: {messages['mean'] * per:,.1f} messages per 10,000 events "
        f"(min {messages['min'] * per:,.1f}, max {messages['max'] * per:,.1f})"
    )


def run() -> None:
    print(
        f"cluster: {PROCESSES} processes x {WATCHED} dashboards over {DOMAINS:,} domains, "
        f"{EVENTS:,} events, a local cluster of three primaries",
        flush=True,
    )
    cluster = RedisClusterProcesses()
    cluster.start()
    try:
        results = [_measure(kind, cluster) for kind in ("classic", "sharded")]
    finally:
        cluster.stop()
    for result in results:
        _print(result)
    classic, sharded = results

    def handled(result: dict[str, Any]) -> int:
        return max(node["publish"] + node["from_bus"] for node in result["nodes"].values())

    print(
        "  the busiest node's events handled, sharded / classic: "
        f"{handled(sharded) / handled(classic):.2f}; publishing CPU, sharded / classic: "
        f"{sharded['publish_cpu_seconds'] / classic['publish_cpu_seconds']:.2f}"
    )
    save("cluster", {"events": EVENTS, "processes": PROCESSES, "results": results})
