"""The process's Redis, one server or a Redis Cluster, and how it says what Redis cannot do.

One client per process, made here from MAPI_EWS_REDIS_URL (and MAPI_EWS_REDIS_CLUSTER): the
events, the budgets of query cost, the sign-in throttle and the subscription places all use it.
Each of those keeps a key per principal and touches one key per command or script, so they work
on a cluster as on one server; the event bus picks sharded pub/sub on a cluster (api/events.py).

When Redis cannot do what a use asks (it does not answer, or it refuses), that use carries on
inside the process, as docs/operations.md says for each, and never silently: `Fallbacks` logs one
line when such an episode begins and one when it ends, sets `mapi_ews_redis_fallback{use}`, and
`/readyz` lists the uses that are falling back.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.metrics import Metrics

log = logging.getLogger(__name__)

RedisClient = Redis | RedisCluster

# Commands each process has in flight to Redis at most (budgets, throttles, places, publishing);
# more wait for one to finish, as thousands of dashboards subscribing at once each charge theirs.
REDIS_CONNECTIONS = 50

# The uses that fall back to the process when Redis cannot serve them, and what that means.
BUDGETS = "budgets"
SIGN_IN_THROTTLE = "sign-in-throttle"
SUBSCRIPTION_PLACES = "subscription-places"
EVENTS = "events"
CONSEQUENCES = {
    BUDGETS: "query cost budgets are kept per process",
    SIGN_IN_THROTTLE: "password guessing is counted per process",
    SUBSCRIPTION_PLACES: "subscriptions per principal are counted per process",
    EVENTS: "events published now reach no other process",
}


class ConfigurationError(RuntimeError):
    """The Redis that the settings name is not the kind they say."""


def connect(url: str, *, cluster: bool) -> RedisClient:
    """A client for `url`: a Redis Cluster known by that node when `cluster`, else one server.

    A command on a connection that Redis closed (it restarted) is retried on a new one: redis-py
    retries only the errors listed in retry_on_error, and lists none by default."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2,
        "socket_timeout": 5,
        "health_check_interval": 15,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError],
    }
    if cluster:
        # Connections per node; Limited below keeps a process's commands in flight under it.
        return RedisCluster.from_url(url, max_connections=REDIS_CONNECTIONS, **options)
    # Redis-py's default pool refuses a command outright (MaxConnectionsError) once all its
    # connections are in flight; a blocking one makes the next wait for a connection instead.
    pool = BlockingConnectionPool.from_url(
        url, max_connections=REDIS_CONNECTIONS, timeout=5, **options
    )
    return Redis.from_pool(pool)


async def check_kind(client: RedisClient) -> None:
    """Raises ConfigurationError when the server is not the kind the settings say: a cluster
    node named without MAPI_EWS_REDIS_CLUSTER=true would answer MOVED to most keys, a plain
    server named with it cannot serve as a cluster. A Redis that does not answer yet is left to
    the fallbacks (the process starts, and says so)."""
    try:
        if isinstance(client, RedisCluster):
            await client.initialize()
        else:
            info = await client.info("cluster")
            if info.get("cluster_enabled"):
                raise ConfigurationError(
                    "MAPI_EWS_REDIS_URL names a node of a Redis Cluster: set "
                    "MAPI_EWS_REDIS_CLUSTER=true"
                )
    except RedisClusterException as error:
        if "cluster mode is not enabled" in str(error).lower():
            raise ConfigurationError(
                "MAPI_EWS_REDIS_CLUSTER=true, but MAPI_EWS_REDIS_URL names a Redis that is not "
                "a cluster node: unset MAPI_EWS_REDIS_CLUSTER"
            ) from None
        log.warning("the Redis Cluster does not answer yet: %r", error)
    except RedisError as error:
        log.warning("Redis does not answer yet: %r", error)


async def check(client: RedisClient) -> bool:
    """Whether Redis serves: the server answers; on a cluster, every primary answers and the
    cluster covers all its slots."""
    if isinstance(client, RedisCluster):
        info = await client.cluster_info(target_nodes=RedisCluster.RANDOM)
        if info.get("cluster_state") != "ok":
            return False
        answers = await client.ping(target_nodes=RedisCluster.PRIMARIES)
        return bool(answers) and (
            all(answers.values()) if isinstance(answers, dict) else bool(answers)
        )
    return bool(await client.ping())


class Limited:
    """A Lua script of the process's Redis, with at most REDIS_CONNECTIONS calls in flight.

    One server's blocking pool already makes a surplus call wait; a cluster client's nodes
    refuse it (MaxConnectionsError), so the wait is here, the same for both."""

    def __init__(self, client: RedisClient, source: str) -> None:
        self._script = client.register_script(source)

    async def __call__(
        self, keys: Sequence[str], args: Sequence[Any], client: Any | None = None
    ) -> Any:
        if client is not None:  # queued on a pipeline: sent when it runs
            return await self._script(keys=list(keys), args=list(args), client=client)
        async with _gate():
            return await self._script(keys=list(keys), args=list(args))


# One limit per event loop (a process has one; tests run several, one after another).
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary()
)


def _gate() -> asyncio.Semaphore:
    loop = asyncio.get_running_loop()
    gate = _gates.get(loop)
    if gate is None:
        gate = _gates[loop] = asyncio.Semaphore(REDIS_CONNECTIONS)
    return gate


class Fallbacks:
    """The uses of Redis that this process serves alone now, because Redis could not."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.failing: dict[str, str] = {}
        for use in CONSEQUENCES:
            metrics.redis_fallback.labels(use=use).set(0)

    def failed(self, use: str, error: BaseException) -> None:
        """Redis could not serve `use`: one warning for the episode, the gauge at 1."""
        if use in self.failing:
            return
        self.failing[use] = type(error).__name__
        self.metrics.redis_fallback.labels(use=use).set(1)
        log.warning("Redis cannot serve %s (%r): %s", use, error, CONSEQUENCES[use])

    def served(self, use: str) -> None:
        """Redis served `use` again: one line that the episode is over."""
        if self.failing.pop(use, None) is None:
            return
        self.metrics.redis_fallback.labels(use=use).set(0)
        log.info("Redis serves %s again", use)

    def uses(self) -> list[str]:
        return sorted(self.failing)
