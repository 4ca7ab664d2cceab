"""How many subscriptions each principal holds at once, across all its connections and, with
Redis, across all processes (MAPI_EWS_MAX_SUBSCRIPTIONS_PER_PRINCIPAL).

With Redis a principal's subscriptions are the members of one sorted set, each scored with the
moment it lapses; one Lua script forgets the lapsed, counts, and adds a new one only under the
limit, atomically on Redis's clock. Each process renews the members it holds every third of
their lifetime, so a process that dies frees its principals' places within LEASE_SECONDS. Without
Redis, and while Redis does not answer, each process counts its own.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import Counter
from contextlib import suppress

from redis.exceptions import RedisError

from api.metrics import Metrics
from api.redis_client import SUBSCRIPTION_PLACES, Fallbacks, Limited, RedisClient

log = logging.getLogger(__name__)

# A place not renewed for this long is free again (its process is gone).
LEASE_SECONDS = 90
# KEYS[1]: the principal's set; ARGV: the limit, the new member, the lease. {1} taken, {0} full.
_TAKE = """
local now = tonumber(redis.call('TIME')[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


class SubscriptionPlaces:
    def __init__(
        self,
        maximum: int,
        *,
        redis: RedisClient | None = None,
        prefix: str = "mapi-ews",
        fallbacks: Fallbacks | None = None,
    ) -> None:
        self.maximum = maximum
        self.redis = redis
        self.fallbacks = fallbacks or Fallbacks(Metrics())
        self.prefix = f"{prefix}:subscriptions:"
        self._process = uuid.uuid4().hex
        self._numbers = itertools.count()
        self._take = Limited(redis, _TAKE) if redis is not None else None
        # This process's places, member -> (holder, whether Redis counts it), and the places
        # counted here alone, by holder.
        self._held: dict[str, tuple[str, bool]] = {}
        self._local: Counter[str] = Counter()

    async def take(self, owner: str) -> str | None:
        """A place for one more subscription of `owner` (release it when it ends), or None
        when `owner` holds the limit already."""
        member = f"{self._process}:{next(self._numbers)}"
        if self._take is not None:
            try:
                taken = await self._take(
                    [self.prefix + owner], [self.maximum, member, LEASE_SECONDS]
                )
            except RedisError as error:
                self.fallbacks.failed(SUBSCRIPTION_PLACES, error)
            else:
                self.fallbacks.served(SUBSCRIPTION_PLACES)
                if not taken:
                    return None
                self._held[member] = (owner, True)
                return member
        if self._local[owner] >= self.maximum:
            return None
        self._local[owner] += 1
        self._held[member] = (owner, False)
        return member

    def held(self) -> int:
        """The places this process holds now, for all principals."""
        return len(self._held)

    async def release(self, member: str) -> None:
        owner, shared = self._held.pop(member, ("", False))
        if not owner:
            return
        if not shared:
            self._local[owner] -= 1
            if self._local[owner] <= 0:
                del self._local[owner]
        elif self.redis is not None:
            with suppress(RedisError):
                await self.redis.zrem(self.prefix + owner, member)

    async def run(self) -> None:
        """Renews this process's places in Redis every third of their lease (the app's
        lifespan runs it)."""
        if self.redis is None:
            return
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            shared = [
                (member, owner) for member, (owner, in_redis) in self._held.items() if in_redis
            ]
            if shared:
                await self.renew(shared)

    async def renew(self, shared: list[tuple[str, str]]) -> None:
        if self.redis is None:
            return
        until = time.time() + LEASE_SECONDS
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                # Added again if missing: a Redis that restarted counts them again.
                for member, owner in shared:
                    pipe.zadd(self.prefix + owner, {member: until})
                    pipe.expire(self.prefix + owner, LEASE_SECONDS)
                await pipe.execute()
        except RedisError as error:
            self.fallbacks.failed(SUBSCRIPTION_PLACES, error)
