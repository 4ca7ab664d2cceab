"""Each caller's budget of query cost: a leaky bucket, as Shopify's Admin API keeps one.

A bucket holds at most `maximum` points and refills at `restore_rate` points a second. An
operation is charged its requested cost before it runs, and refused with THROTTLED, nothing
run, when the bucket holds less; once it has run, it is settled to its actual cost, never more
than it asked for, and the difference refunded. Every answer says what it cost and what is left
(`extensions.cost`, Shopify's shape).

A bucket belongs to a principal (its role and id) or, without a token, to a client address.
With Redis, one Lua script refills, checks and charges a bucket atomically on Redis's clock, so
every process spends the same budget; a refund rides on the process's next charge of the same
bucket, or goes within REFUND_SECONDS, so a request costs one round trip (each costs some 100 µs
of a worker's CPU in redis-py). Without Redis, and while Redis does not answer, each process keeps
its own buckets.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from api.auth.principal import ANONYMOUS, Principal, caller_key
from api.errors import AppError, ErrorCode
from api.metrics import Metrics
from api.redis_client import BUDGETS, Fallbacks, Limited, RedisClient
from api.settings import CostLimit

log = logging.getLogger(__name__)

_MEMORY_LIMIT = 100_000  # buckets kept per process; the least recently used go first (full)

# KEYS[1]: the bucket; ARGV: maximum, restore rate, points given back, points to take. The bucket
# refills to now and takes back what it is given, then takes the points if it holds them.
# Returns {1, points left} or {0, points left} (refused: nothing taken).
_SPEND = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local maximum = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'a', 't')
local available = maximum
if state[1] then
  available = tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate
end
available = math.min(maximum, available + tonumber(ARGV[3]))
local taken = 1
if available >= tonumber(ARGV[4]) then
  available = available - tonumber(ARGV[4])
else
  taken = 0
end
redis.call('HSET', KEYS[1], 'a', tostring(available), 't', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((maximum - available) / rate * 1000) + 1000)
return {taken, tostring(available)}
"""
# Refunds owed to Redis's buckets go with the process's next charge of the same bucket, or at
# the latest after this many seconds, all in one round trip.
REFUND_SECONDS = 1.0


class Throttled(AppError):
    code = ErrorCode.THROTTLED

    def __init__(self, requested: int, available: float, limit: CostLimit) -> None:
        self.retry_after = max(1, math.ceil((requested - available) / limit.restore_rate))
        super().__init__(
            f"Throttled: this operation costs {requested} and {int(available)} of your budget "
            f"of {limit.maximum} is left; it refills at {limit.restore_rate:g} a second. Try "
            f"again in {self.retry_after} s."
        )


@dataclass(slots=True)
class Charge:
    """One operation's spending: requested before it ran, actual once known."""

    requested: int
    role: str
    key: str
    limit: CostLimit | None  # None: no limit applies (gateways, by default)
    available: float | None = None
    actual: int | None = None

    def extensions(self) -> dict[str, Any]:
        """`extensions.cost`, in Shopify's shape; no throttleStatus where no limit applies."""
        cost: dict[str, Any] = {
            "requestedQueryCost": self.requested,
            "actualQueryCost": self.actual,
        }
        if self.limit is not None and self.available is not None:
            cost["throttleStatus"] = {
                "maximumAvailable": float(self.limit.maximum),
                "currentlyAvailable": int(self.available),
                "restoreRate": float(self.limit.restore_rate),
            }
        return cost


class MemoryBuckets:
    """One process's buckets (monotonic clock), the least recently used forgotten first."""

    def __init__(self) -> None:
        self.buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def spend(self, key: str, limit: CostLimit, back: int, take: int) -> tuple[bool, float]:
        now = time.monotonic()
        available, then = self.buckets.get(key, (float(limit.maximum), now))
        available = available + max(0.0, now - then) * limit.restore_rate
        available = min(float(limit.maximum), available + back)
        taken = available >= take
        if taken:
            available -= take
        self.buckets[key] = (available, now)
        self.buckets.move_to_end(key)
        while len(self.buckets) > _MEMORY_LIMIT:
            self.buckets.popitem(last=False)
        return taken, available


class Budget:
    """The buckets: in Redis when there is one (each charge one round trip, its refund carried
    by the next), else in this process. `run` gives back the refunds owed to Redis."""

    def __init__(
        self,
        limits: dict[str, CostLimit | None],
        *,
        redis: RedisClient | None = None,
        prefix: str = "mapi-ews",
        metrics: Metrics | None = None,
        fallbacks: Fallbacks | None = None,
    ) -> None:
        self.limits = limits
        self.metrics = metrics = metrics or Metrics()
        self.fallbacks = fallbacks or Fallbacks(metrics)
        self.memory = MemoryBuckets()
        self.prefix = f"{prefix}:cost:"
        self.redis = redis
        self._script = Limited(redis, _SPEND) if redis is not None else None
        # Points owed back to Redis's buckets, by key, with each bucket's limit.
        self._owed: dict[str, tuple[CostLimit, int]] = {}

    def start(self, requested: int, principal: Principal | None, address: str | None) -> Charge:
        """The charge an operation would make, not yet made."""
        role = ANONYMOUS if principal is None else str(principal.role)
        return Charge(requested, role, caller_key(principal, address), self.limits.get(role))

    async def charge(self, charge: Charge) -> None:
        """Takes the requested cost from the bucket, or raises Throttled having taken none."""
        limit = charge.limit
        if limit is None:
            return
        _, back = self._owed.pop(charge.key, (limit, 0))
        allowed, available = await self._spend(charge.key, limit, back, charge.requested)
        charge.available = available
        if not allowed:
            self.metrics.throttled.labels(role=charge.role).inc()
            raise Throttled(charge.requested, available, limit)

    async def settle(self, charge: Charge, actual: int) -> None:
        """The operation ran and cost `actual` (at most what it asked for: a client can count on
        never paying more): the difference goes back to the bucket."""
        charge.actual = actual = min(actual, charge.requested)
        limit = charge.limit
        if limit is None or charge.available is None or actual == charge.requested:
            return
        back = charge.requested - actual
        if self._script is None or BUDGETS in self.fallbacks.failing:
            _, charge.available = self.memory.spend(charge.key, limit, back, 0)
            return
        _, owed = self._owed.get(charge.key, (limit, 0))
        self._owed[charge.key] = (limit, owed + back)
        charge.available = min(float(limit.maximum), charge.available + back)

    async def run(self) -> None:
        """Gives back the refunds owed to Redis every REFUND_SECONDS (the app's lifespan runs
        it; cancelled, it gives back what is still owed). Without Redis nothing is owed."""
        if self.redis is None:
            return
        try:
            while True:
                await asyncio.sleep(REFUND_SECONDS)
                await self.give_back()
        finally:
            with suppress(RedisError, asyncio.CancelledError):
                await self.give_back()

    async def give_back(self) -> None:
        owed, self._owed = self._owed, {}
        if not owed or self.redis is None or self._script is None:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, (limit, back) in owed.items():
                    args = [limit.maximum, limit.restore_rate, back, 0]
                    await self._script([self.prefix + key], args, client=pipe)
                await pipe.execute()
        except RedisError as error:
            # Lost with the episode the fallback tells of; the buckets refill all the same.
            self.fallbacks.failed(BUDGETS, error)

    async def _spend(self, key: str, limit: CostLimit, back: int, take: int) -> tuple[bool, float]:
        if self._script is not None:
            try:
                taken, available = await self._script(
                    [self.prefix + key], [limit.maximum, limit.restore_rate, back, take]
                )
            except RedisError as error:
                self.fallbacks.failed(BUDGETS, error)
            else:
                self.fallbacks.served(BUDGETS)
                return bool(taken), float(available)
        return self.memory.spend(key, limit, back, take)
