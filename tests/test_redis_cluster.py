"""A Redis Cluster in place of one Redis (MAPI_EWS_REDIS_CLUSTER=true), on a real local cluster of
three primaries: each domain's events on a shard channel of the node that owns its slot, the
budgets, sign-in counts and subscription places shared through it, the wrong kind of Redis
refused, and a node that goes away and comes back. The server processes' side (two of them,
knowing the cluster by different nodes) runs in test_scale_out, test_gateway_commands and
test_cost_limits, parametrized over one Redis and the cluster."""

from __future__ import annotations

import asyncio
import contextlib
import gc

import pytest
from redis.asyncio import Redis, RedisCluster

from api.auth.principal import Principal, Role
from api.auth.throttle import Limits, SignInThrottle, ThrottlePolicy, _keys
from api.events import Event, ShardedEventBus, Topic
from api.redis_client import ConfigurationError, check, check_kind, connect
from api.settings import CostLimit
from api.transport.budget import Budget, Throttled
from api.transport.subscriptions import SubscriptionPlaces
from tests.conftest import REDIS_URL, started
from tests.servers import RedisClusterProcesses

pytestmark = pytest.mark.redis

WATCHED = range(1, 13)
UNWATCHED = range(13, 25)


def login(domain_id: int, n: int) -> Event:
    return Event(Topic.LOGINS, domain_id, {"n": n})


async def on_each_node(cluster: RedisClusterProcesses, *command: str) -> dict[int, object]:
    answers = {}
    for port in cluster.ports:
        node = Redis(port=port)
        try:
            answers[port] = await node.execute_command(*command)
        finally:
            await node.aclose()
    return answers


async def spublish_calls(cluster: RedisClusterProcesses) -> dict[int, int]:
    stats = await on_each_node(cluster, "INFO", "commandstats")
    return {
        port: int(info.get("cmdstat_spublish", {}).get("calls", 0))  # type: ignore[union-attr]
        for port, info in stats.items()
    }


async def test_each_domain_travels_on_a_shard_channel_of_the_node_that_owns_it(
    redis_cluster: RedisClusterProcesses, channel: str
) -> None:
    first, second = redis_cluster.urls[:2]
    publisher = ShardedEventBus(10, url=second, channel=channel)
    listener = ShardedEventBus(10, url=first, channel=channel)
    async with started(publisher), started(listener), contextlib.AsyncExitStack() as stack:
        subscribers = {
            domain: await stack.enter_async_context(listener.subscribe(Topic.LOGINS, domain))
            for domain in WATCHED
        }
        before = await spublish_calls(redis_cluster)
        await publisher.publish([login(domain, domain) for domain in (*WATCHED, *UNWATCHED)])
        await publisher.flush()
        async with asyncio.timeout(5):
            received = {domain: (await anext(s)).payload["n"] for domain, s in subscribers.items()}
        after = await spublish_calls(redis_cluster)

        # What the listener's process receives: its dashboards' domains, nothing else.
        assert received == {domain: domain for domain in WATCHED}
        assert listener.metrics.value("mapi_ews_redis_messages_received_total") == len(WATCHED)

        # Each domain's channel is a shard channel, subscribed on the node that owns its slot,
        # and published there alone: every node carries its own share of the domains.
        cluster = listener.redis
        assert isinstance(cluster, RedisCluster)
        owner = {
            domain: cluster.get_node_from_key(listener.channel_of(Topic.LOGINS, domain)).port
            for domain in (*WATCHED, *UNWATCHED)
        }
        pattern = f"{channel}:domain:*"
        sharded = await on_each_node(redis_cluster, "PUBSUB", "SHARDCHANNELS", pattern)
        for port, names in sharded.items():
            assert sorted(names) == sorted(  # type: ignore[arg-type]
                listener.channel_of(Topic.LOGINS, d).encode() for d in WATCHED if owner[d] == port
            )
        classic = await on_each_node(redis_cluster, "PUBSUB", "CHANNELS", f"{channel}*")
        assert all(names == [] for names in classic.values())
        published = {port: after[port] - before[port] for port in redis_cluster.ports}
        expected = {
            port: sum(1 for port_of in owner.values() if port_of == port)
            for port in redis_cluster.ports
        }
        assert published == expected
        assert len([port for port, count in expected.items() if count]) > 1


async def test_a_subscription_ends_its_shard_channel_when_it_leaves(
    redis_cluster: RedisClusterProcesses, channel: str
) -> None:
    bus = ShardedEventBus(10, url=redis_cluster.urls[2], channel=channel)
    async with started(bus):
        async with bus.subscribe(Topic.LOGINS, 5), bus.subscribe(Topic.ACCOUNT_CHANGES, 5):
            assert bus.listened() == {bus.channel_of(Topic.LOGINS, 5)}
            await bus.publish([login(5, 1)])
        assert bus.listened() == set()
        pattern = f"{channel}:domain:*"
        async with asyncio.timeout(5):
            while any(
                (await on_each_node(redis_cluster, "PUBSUB", "SHARDCHANNELS", pattern)).values()
            ):
                await asyncio.sleep(0.05)


async def test_budgets_are_spent_once_across_processes_that_know_different_nodes(
    redis_cluster: RedisClusterProcesses, channel: str
) -> None:
    limits: dict[str, CostLimit | None] = {"DOMAIN_ADMIN": CostLimit(100, 0.001)}
    clients = [connect(url, cluster=True) for url in redis_cluster.urls[:2]]
    one, other = (Budget(limits, redis=client, prefix=channel) for client in clients)
    try:
        # Several principals, so their buckets sit on different nodes.
        for subject in range(1, 7):
            principal = Principal(role=Role.DOMAIN_ADMIN, subject_id=subject, username="a")
            for budget in (one, other, one):
                await budget.charge(budget.start(30, principal, None))
            with pytest.raises(Throttled):
                await other.charge(other.start(30, principal, None))
        assert one.fallbacks.uses() == other.fallbacks.uses() == []
    finally:
        for client in clients:
            await client.aclose()


async def test_sign_in_guesses_are_counted_once_across_the_cluster(
    redis_cluster: RedisClusterProcesses, channel: str
) -> None:
    policy = ThrottlePolicy(
        username=Limits(free=2, lock=5),
        address=Limits(free=1, lock=5),
        lock_seconds=60,
        max_backoff=60,
    )
    clients = [connect(url, cluster=True) for url in redis_cluster.urls[1:]]
    one, other = (SignInThrottle(policy, redis=client, prefix=channel) for client in clients)
    try:
        # The username's failures add up whichever process counts them (no address).
        assert [await t.attempt("alice", None) for t in (one, other)] == [0, 0]
        assert await one.attempt("alice", None) > 0

        # An address refused gives back the count its username took on the way: the key of
        # the username and the key of the address live in different slots.
        assert await other.attempt("bob", "198.51.100.7") == 0
        assert await one.attempt("carol", "198.51.100.7") > 0
        carol = f"{channel}:login:{_keys('carol', None)[0][0]}"
        assert await clients[0].hget(carol, "f") == b"0"

        # A success forgives the username there.
        await other.succeeded("alice", None)
        assert await one.attempt("alice", None) == 0
        assert one.fallbacks.uses() == other.fallbacks.uses() == []
    finally:
        for client in clients:
            await client.aclose()


async def test_subscription_places_are_counted_across_the_cluster(
    redis_cluster: RedisClusterProcesses, channel: str
) -> None:
    clients = [connect(url, cluster=True) for url in (redis_cluster.urls[0], redis_cluster.urls[2])]
    one, other = (SubscriptionPlaces(3, redis=client, prefix=channel) for client in clients)
    try:
        taken = [await one.take("p"), await one.take("p"), await other.take("p")]
        assert all(taken)
        assert await other.take("p") is None
        assert await one.take("p") is None
        await one.release(str(taken[0]))
        assert await other.take("p") is not None
    finally:
        for client in clients:
            await client.aclose()


async def test_the_wrong_kind_of_redis_is_refused_with_what_to_set(
    redis_cluster: RedisClusterProcesses,
) -> None:
    plain_on_a_node = connect(redis_cluster.urls[0], cluster=False)
    try:
        with pytest.raises(ConfigurationError, match="set MAPI_EWS_REDIS_CLUSTER=true"):
            await check_kind(plain_on_a_node)
    finally:
        await plain_on_a_node.aclose()
    assert REDIS_URL is not None
    cluster_on_a_plain = connect(REDIS_URL, cluster=True)
    try:
        with pytest.raises(ConfigurationError, match="unset MAPI_EWS_REDIS_CLUSTER"):
            await check_kind(cluster_on_a_plain)
    finally:
        await cluster_on_a_plain.aclose()


# While a node is away, redis-py's connection attempts to it leave a socket it never closes
# (an unclosed StreamWriter, found at collection); noted for the team, not ours to fix here.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_node_that_goes_away_and_comes_back(channel: str) -> None:
    """Readiness says the cluster is down while a primary is; when it is back, the listener's
    connection to it subscribes its channels again, events flow, and what may have missed
    events is told (as after losing one Redis)."""
    cluster = RedisClusterProcesses()
    cluster.start()
    bus = ShardedEventBus(10, url=cluster.urls[0], channel=channel)
    told = asyncio.Event()
    bus.after_outage.append(told.set)
    publisher = ShardedEventBus(10, url=cluster.urls[1], channel=channel)
    try:
        async with started(bus), started(publisher), contextlib.AsyncExitStack() as stack:
            assert isinstance(bus.redis, RedisCluster)
            doomed, late = [
                d
                for d in range(1, 200)
                if bus.redis.get_node_from_key(bus.channel_of(Topic.LOGINS, d)).port
                == cluster.ports[2]
            ][:2]
            subscriber = await stack.enter_async_context(bus.subscribe(Topic.LOGINS, doomed))
            assert await check(bus.redis)

            cluster.stop_node(cluster.ports[2])
            async with asyncio.timeout(15):
                while await _safe_check(bus.redis):
                    await asyncio.sleep(0.2)
            # A dashboard that opens while its domain's node is away is subscribed when it is back.
            opened_late = await stack.enter_async_context(bus.subscribe(Topic.LOGINS, late))

            cluster.start_node(cluster.ports[2])
            cluster.wait_until_ok()
            async with asyncio.timeout(20):
                await told.wait()
                while not await _safe_check(bus.redis):
                    await asyncio.sleep(0.2)
                for domain, waiting in ((doomed, subscriber), (late, opened_late)):
                    while True:
                        await publisher.publish([login(domain, domain)])
                        await publisher.flush()
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(0.5):
                                assert (await anext(waiting)).payload["n"] == domain
                                break
    finally:
        cluster.stop()
        # redis-py's unclosed sockets (above) are reported when collected: here, where they are
        # expected, not at some later test's start on this worker.
        gc.collect()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_dashboard_that_leaves_while_its_node_is_away_is_unsubscribed_when_it_is_back(
    channel: str,
) -> None:
    """redis-py subscribes its channels again as it reconnects, a channel left while its node
    was away too: without a SUNSUBSCRIBE once the node is back, the node would send this process
    that domain's events for as long as the connection lasts."""
    cluster = RedisClusterProcesses()
    cluster.start()
    bus = ShardedEventBus(10, url=cluster.urls[0], channel=channel)
    away = cluster.ports[2]
    node = Redis(port=away)
    try:
        async with started(bus):
            assert isinstance(bus.redis, RedisCluster)
            domain = next(
                d
                for d in range(1, 200)
                if bus.redis.get_node_from_key(bus.channel_of(Topic.LOGINS, d)).port == away
            )
            name = bus.channel_of(Topic.LOGINS, domain)

            async def subscribers() -> int:
                counts = await node.execute_command("PUBSUB", "SHARDNUMSUB", name)
                return int(counts[1])

            async with bus.subscribe(Topic.LOGINS, domain):
                assert await subscribers() == 1
                cluster.stop_node(away)
                async with asyncio.timeout(15):
                    while bus.metrics.value("mapi_ews_redis_listening") == 1:
                        await asyncio.sleep(0.1)
            # Left while the node is away.

            cluster.start_node(away)
            cluster.wait_until_ok()
            async with asyncio.timeout(20):
                # Listening again: the reader has reconnected, and redis-py has subscribed the
                # connection's channels again.
                while bus.metrics.value("mapi_ews_redis_listening") != 1:
                    await asyncio.sleep(0.1)
                while await subscribers() != 0:
                    await asyncio.sleep(0.2)
    finally:
        await node.aclose()
        cluster.stop()
        gc.collect()


async def _safe_check(client: RedisCluster | Redis) -> bool:
    try:
        return await asyncio.wait_for(check(client), 3)
    except Exception:
        return False
