"""Each caller's budget of query cost: a leaky bucket, as Shopify's Admin API keeps one.

A bucket holds at most `maximum` points and refills at `restore_rate` points a second. An
operation is charged its requested cost before it runs, and refused with THROTTLED, nothing
run, when the bucket holds less; once it has run, the bucket is settled to its actual cost (the
difference refunded, or charged when the answer held more than was asked for). Every answer
says what it cost and what is left (`extensions.cost`, Shopify's shape).

A bucket belongs to a principal (its role and id) or, without a token, to a client address.
With Redis, one Lua script refills, checks and charges a bucket atomically on Redis's clock, so
every process spends the same budget; without Redis, and while Redis does not answer, each
process keeps its own buckets.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from api.auth.principal import Principal
from api.errors import AppError, ErrorCode
from api.metrics import Metrics
from api.settings import CostLimit

log = logging.getLogger(__name__)

ANONYMOUS = "ANONYMOUS"
_MEMORY_LIMIT = 100_000  # buckets kept per process; the least recently used go first (full)

# KEYS[1]: the bucket; ARGV: maximum, restore rate, points, and "charge" (refused when short)
# or "settle" (always applied, never below 0). Returns {1 or 0 (refused), points left}.
_SPEND = """
local now = redis.call('TIME')
now = tonumber(now[1]) + tonumber(now[2]) / 1000000
local maximum = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local points = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'a', 't')
local available = maximum
if state[1] then
  available = math.min(maximum, tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * rate)
end
if ARGV[4] == 'charge' and available < points then
  return {0, tostring(available)}
end
available = math.max(0, math.min(maximum, available - points))
redis.call('HSET', KEYS[1], 'a', tostring(available), 't', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((maximum - available) / rate * 1000) + 1000)
return {1, tostring(available)}
"""


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

    def spend(
        self, key: str, limit: CostLimit, points: int, *, refusable: bool
    ) -> tuple[bool, float]:
        now = time.monotonic()
        available, then = self.buckets.get(key, (float(limit.maximum), now))
        available = min(limit.maximum, available + max(0.0, now - then) * limit.restore_rate)
        if refusable and available < points:
            return False, available
        available = max(0.0, min(float(limit.maximum), available - points))
        self.buckets[key] = (available, now)
        self.buckets.move_to_end(key)
        while len(self.buckets) > _MEMORY_LIMIT:
            self.buckets.popitem(last=False)
        return True, available


class Budget:
    def __init__(
        self,
        limits: dict[str, CostLimit | None],
        *,
        redis: Redis | None = None,
        prefix: str = "mapi-ews",
        metrics: Metrics | None = None,
    ) -> None:
        self.limits = limits
        self.metrics = metrics or Metrics()
        self.memory = MemoryBuckets()
        self.prefix = f"{prefix}:cost:"
        self._script: Any = redis.register_script(_SPEND) if redis is not None else None
        self._redis_failing = False

    def start(self, requested: int, principal: Principal | None, address: str | None) -> Charge:
        """The charge an operation would make, not yet made."""
        if principal is None:
            role, key = ANONYMOUS, f"{ANONYMOUS}:{address or '-'}"
        else:
            role, key = str(principal.role), f"{principal.role}:{principal.subject_id}"
        return Charge(requested, role, key, self.limits.get(role))

    async def charge(self, charge: Charge) -> None:
        """Takes the requested cost from the bucket, or raises Throttled having taken none."""
        limit = charge.limit
        if limit is None:
            return
        allowed, available = await self._spend(charge.key, limit, charge.requested, refusable=True)
        charge.available = available
        if not allowed:
            self.metrics.throttled.labels(role=charge.role).inc()
            raise Throttled(charge.requested, available, limit)

    async def settle(self, charge: Charge, actual: int) -> None:
        """The operation ran and cost `actual`: the bucket pays that instead of the request."""
        charge.actual = actual
        limit = charge.limit
        if limit is None or charge.available is None or actual == charge.requested:
            return
        points = actual - charge.requested
        _, charge.available = await self._spend(charge.key, limit, points, refusable=False)

    async def _spend(
        self, key: str, limit: CostLimit, points: int, *, refusable: bool
    ) -> tuple[bool, float]:
        if self._script is not None:
            mode = "charge" if refusable else "settle"
            try:
                allowed, available = await self._script(
                    keys=[self.prefix + key],
                    args=[limit.maximum, limit.restore_rate, points, mode],
                )
            except RedisError as error:
                if not self._redis_failing:
                    log.warning("Redis does not answer: cost budgets kept per process: %r", error)
                self._redis_failing = True
            else:
                if self._redis_failing:
                    log.info("Redis answers again: cost budgets are shared again")
                self._redis_failing = False
                return bool(allowed), float(available)
        return self.memory.spend(key, limit, points, refusable=refusable)
