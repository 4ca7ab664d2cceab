"""Password guessing is throttled, per username and per client address.

Each sign-in attempt is counted as a failure *before* the password is checked (so a burst of
parallel guesses cannot all slip through between check and count); a success then forgives it.
Up to `free` failures cost nothing; after that each attempt must wait 1, 2, 4 ... seconds (at most
`max_backoff`) after the previous one; at `lock` failures the name (or address) is locked for
`lock_seconds`. Counts are forgotten `lock_seconds` after the last failure.

Unknown usernames are counted exactly like existing ones, and a throttled attempt is refused
before any password check, with the same answer: nothing tells whether the user exists.

With Redis configured the counts are shared by every server process (one Lua script checks and
counts both keys atomically; on a Redis Cluster, one script for each key); otherwise, and while
Redis does not answer, each process counts on its own.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from redis.asyncio import RedisCluster
from redis.exceptions import RedisError

from api.metrics import Metrics
from api.redis_client import SIGN_IN_THROTTLE, Fallbacks, Limited, RedisClient
from api.settings import Settings

log = logging.getLogger(__name__)

_MEMORY_LIMIT = 100_000  # remembered names and addresses per process; the oldest go first


@dataclass(frozen=True, slots=True)
class Limits:
    free: int
    lock: int


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    username: Limits
    address: Limits
    lock_seconds: int
    max_backoff: int

    @classmethod
    def of(cls, settings: Settings) -> ThrottlePolicy:
        return cls(
            username=Limits(settings.login_free_failures, settings.login_lock_failures),
            address=Limits(
                settings.login_address_free_failures, settings.login_address_lock_failures
            ),
            lock_seconds=settings.login_lock_seconds,
            max_backoff=settings.login_max_backoff_seconds,
        )


def _wait(failures: int, last: float, now: float, limits: Limits, policy: ThrottlePolicy) -> float:
    if failures >= limits.lock:
        return last + policy.lock_seconds - now
    if failures >= limits.free:
        return last + min(1 << (failures - limits.free), policy.max_backoff) - now
    return 0.0


def _keys(username: str, address: str | None) -> list[tuple[str, bool]]:
    """(key, is_username) pairs; a username is hashed so any length makes a short key."""
    name = hashlib.sha256(username.strip().lower()[:400].encode()).hexdigest()[:32]
    keys = [(f"u:{name}", True)]
    if address:
        keys.append((f"a:{address}", False))
    return keys


class MemoryCounts:
    def __init__(self, policy: ThrottlePolicy) -> None:
        self.policy = policy
        self.counts: OrderedDict[str, tuple[int, float]] = OrderedDict()

    def _get(self, key: str, now: float) -> tuple[int, float]:
        failures, last = self.counts.get(key, (0, 0.0))
        if failures and now - last > self.policy.lock_seconds:
            self.counts.pop(key, None)
            return 0, 0.0
        return failures, last

    def attempt(self, keys: list[tuple[str, bool]], now: float) -> float:
        policy = self.policy
        counts = [(key, *self._get(key, now), is_name) for key, is_name in keys]
        wait = max(
            _wait(failures, last, now, policy.username if is_name else policy.address, policy)
            for _, failures, last, is_name in counts
        )
        if wait > 0:
            return wait
        for key, failures, _, _ in counts:
            self.counts[key] = (failures + 1, now)
            self.counts.move_to_end(key)
        while len(self.counts) > _MEMORY_LIMIT:
            self.counts.popitem(last=False)
        return 0.0

    def forgive(self, keys: list[tuple[str, bool]]) -> None:
        for key, is_name in keys:
            failures, last = self.counts.get(key, (0, 0.0))
            if is_name or failures <= 1:
                self.counts.pop(key, None)
            else:
                self.counts[key] = (failures - 1, last)


# KEYS: the keys; ARGV: now, lock_seconds, max_backoff, then free and lock for each key.
# Returns 0 after counting the attempt on every key, or the seconds to wait (nothing counted).
_ATTEMPT = """
local now = tonumber(ARGV[1])
local lock_seconds = tonumber(ARGV[2])
local max_backoff = tonumber(ARGV[3])
local wait = 0
for i, key in ipairs(KEYS) do
  local free = tonumber(ARGV[2 + 2 * i])
  local lock = tonumber(ARGV[3 + 2 * i])
  local failures = tonumber(redis.call('HGET', key, 'f') or '0')
  local last = tonumber(redis.call('HGET', key, 'l') or '0')
  local w = 0
  if failures >= lock then
    w = last + lock_seconds - now
  elseif failures >= free then
    w = last + math.min(2 ^ (failures - free), max_backoff) - now
  end
  if w > wait then wait = w end
end
if wait > 0 then return tostring(wait) end
for _, key in ipairs(KEYS) do
  redis.call('HINCRBY', key, 'f', 1)
  redis.call('HSET', key, 'l', ARGV[1])
  redis.call('EXPIRE', key, lock_seconds)
end
return '0'
"""


class SignInThrottle:
    def __init__(
        self,
        policy: ThrottlePolicy,
        *,
        redis: RedisClient | None = None,
        prefix: str = "mapi-ews",
        metrics: Metrics | None = None,
        fallbacks: Fallbacks | None = None,
    ) -> None:
        self.policy = policy
        self.metrics = metrics = metrics or Metrics()
        self.fallbacks = fallbacks or Fallbacks(metrics)
        self.memory = MemoryCounts(policy)
        self.redis = redis
        self.prefix = f"{prefix}:login:"
        self._script = Limited(redis, _ATTEMPT) if redis is not None else None

    async def attempt(self, username: str, address: str | None) -> int:
        """0 when the attempt may go ahead (it is counted as a failure until forgiven), else
        the whole seconds to wait before the next one."""
        keys = _keys(username, address)
        now = time.time()
        wait = None
        if self._script is not None and self.redis is not None:
            try:
                wait = await self._shared_attempt(self.redis, self._script, keys, now)
            except RedisError as error:
                self.fallbacks.failed(SIGN_IN_THROTTLE, error)
            else:
                self.fallbacks.served(SIGN_IN_THROTTLE)
        if wait is None:
            wait = self.memory.attempt(keys, now)
        if wait > 0:
            self.metrics.login_attempts.labels(outcome="throttled").inc()
            return max(1, math.ceil(wait))
        return 0

    async def _shared_attempt(
        self, redis: RedisClient, script: Limited, keys: list[tuple[str, bool]], now: float
    ) -> float:
        """On one Redis, one script checks and counts the username and the address at once.
        On a cluster a script may touch the keys of one slot only, and the two are two
        principals' keys in two slots: each is checked and counted by its own call, the
        username's first, and an attempt that the address then refuses gives the username's
        count back (for that moment it counted once more, never less)."""
        groups = [[key] for key in keys] if isinstance(redis, RedisCluster) else [keys]
        counted: list[str] = []
        for group in groups:
            args: list[Any] = [now, self.policy.lock_seconds, self.policy.max_backoff]
            for _, is_name in group:
                limits = self.policy.username if is_name else self.policy.address
                args += [limits.free, limits.lock]
            names = [self.prefix + key for key, _ in group]
            wait = float(await script(names, args))
            if wait > 0:
                if counted:
                    async with redis.pipeline(transaction=False) as pipe:
                        for name in counted:
                            pipe.hincrby(name, "f", -1)
                        await pipe.execute()
                return wait
            counted += names
        return 0.0

    def failed(self) -> None:
        self.metrics.login_attempts.labels(outcome="failed").inc()

    async def succeeded(self, username: str, address: str | None) -> None:
        self.metrics.login_attempts.labels(outcome="succeeded").inc()
        keys = _keys(username, address)
        self.memory.forgive(keys)
        if self.redis is None:
            return
        try:
            # Each key on its own (on a cluster they are in two slots).
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, is_name in keys:
                    if is_name:
                        pipe.delete(self.prefix + key)
                    else:
                        pipe.hincrby(self.prefix + key, "f", -1)
                await pipe.execute()
        except RedisError as error:
            # Not forgiven there: the count lapses lock_seconds after the last failure.
            self.fallbacks.failed(SIGN_IN_THROTTLE, error)
