"""Publish/subscribe for live events: in-process by default, through Redis pub/sub when configured.

Services publish after their transaction commits. Every server process keeps one `Hub`: the
subscriptions open on that process, each with its own bounded queue, by topic and domain. With
Redis, a process publishes to one channel and feeds its hub from one subscriber connection, so a
dashboard on any process sees what any other caused; without it, publishing feeds the local hub
directly (the embedded, single-process setup).

Events travel as JSON in both modes, so what a subscriber sees does not depend on the mode.
One `Event` object reaches every local subscriber of its domain; `memo` lets the GraphQL layer
convert and render it once for all of them (see api/graphql/live.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from api.errors import FellBehind

log = logging.getLogger(__name__)


class Topic(StrEnum):
    LOGINS = "logins"
    ACCOUNT_CHANGES = "account-changes"


@dataclass(slots=True, eq=False)
class Event:
    topic: Topic
    domain_id: int
    data: dict[str, Any]
    # Forms derived from `data` on this process, shared by every local subscriber.
    memo: dict[Any, Any] = field(default_factory=dict)


class Subscriber:
    """One subscription's queue. When it is full the subscriber is cut off rather than slowing
    delivery to the others or growing without bound: its queue is emptied and it ends with
    FellBehind at its next read."""

    __slots__ = ("_queue", "behind", "hub")

    def __init__(self, hub: Hub, size: int) -> None:
        self.hub = hub
        self._queue: asyncio.Queue[Event] = asyncio.Queue(size)
        self.behind = False

    def offer(self, event: Event) -> None:
        if self.behind:
            self.hub.dropped += 1
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.behind = True
            self.hub.dropped += self._queue.qsize() + 1
            while not self._queue.empty():
                self._queue.get_nowait()
            self.hub.cut_off += 1
            self._queue.put_nowait(_BEHIND)

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> Event:
        event = await self._queue.get()
        if event is _BEHIND:
            raise FellBehind(
                "This subscription fell behind and missed events; subscribe again and reload."
            )
        return event


_BEHIND = Event(Topic.LOGINS, 0, {})


class Hub:
    """The subscriptions open on this process, by (topic, domain id)."""

    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._subscribers: dict[tuple[Topic, int], set[Subscriber]] = {}
        self.delivered = 0
        self.dropped = 0
        self.cut_off = 0

    def wants(self, topic: Topic, domain_id: int) -> bool:
        return (topic, domain_id) in self._subscribers

    def idle(self) -> bool:
        return not self._subscribers

    def deliver(self, event: Event) -> None:
        for subscriber in self._subscribers.get((event.topic, event.domain_id), ()):
            subscriber.offer(event)
            self.delivered += 1

    @contextlib.asynccontextmanager
    async def subscribe(self, topic: Topic, domain_id: int) -> AsyncIterator[Subscriber]:
        key = (topic, domain_id)
        subscriber = Subscriber(self, self.queue_size)
        self._subscribers.setdefault(key, set()).add(subscriber)
        try:
            yield subscriber
        finally:
            group = self._subscribers.get(key)
            if group is not None:
                group.discard(subscriber)
                if not group:
                    del self._subscribers[key]

    def subscriber_count(self) -> int:
        return sum(len(group) for group in self._subscribers.values())


def _encode(events: Sequence[Event]) -> bytes:
    return orjson.dumps([[e.topic.value, e.domain_id, e.data] for e in events])


def _decode(raw: bytes, hub: Hub) -> list[Event]:
    """The events of one message that this process has subscribers for."""
    return [
        Event(Topic(topic), domain_id, data)
        for topic, domain_id, data in orjson.loads(raw)
        if hub.wants(Topic(topic), domain_id)
    ]


class EventBus:
    """In-process fan-out: what is published reaches this process's subscribers only."""

    def __init__(self, queue_size: int) -> None:
        self.hub = Hub(queue_size)
        self.published = 0
        self.publish_failures = 0

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, events: Sequence[Event]) -> None:
        """Hand committed events to subscribers. Never raises: the change they describe is
        already committed, so a failure here is logged and counted, not reported to the caller."""
        if not events:
            return
        self.published += len(events)
        if self.hub.idle():
            return
        for event in _decode(_encode(events), self.hub):
            self.hub.deliver(event)

    def subscribe(
        self, topic: Topic, domain_id: int
    ) -> contextlib.AbstractAsyncContextManager[Subscriber]:
        return self.hub.subscribe(topic, domain_id)


class RedisEventBus(EventBus):
    """Fan-out across processes through one Redis pub/sub channel.

    Publishing hands events to one sender task, which sends whatever has gathered as a single
    PUBLISH: under load a request never waits for Redis, and a burst costs one message, not one
    per event. One connection per process listens and feeds the local hub; when Redis goes away
    both reconnect by themselves, with backoff. Pub/sub keeps nothing: events published while a
    process is cut off from Redis do not reach its subscribers (the login history and the
    account lists, read over queries, still have them) and are counted as publish failures."""

    MAX_BATCH = 500
    # Events waiting for Redis (while it is unreachable) are capped: past this the oldest are
    # dropped and counted, so an outage cannot grow memory without end.
    MAX_PENDING = 10_000

    def __init__(self, queue_size: int, *, url: str, channel: str) -> None:
        super().__init__(queue_size)
        self.channel = channel
        # A command on a connection that Redis closed (it restarted) is retried on a new one;
        # redis-py retries only the errors listed in retry_on_error, and lists none by default.
        self.redis: Redis = Redis.from_url(
            url,
            socket_connect_timeout=2,
            socket_timeout=5,
            health_check_interval=15,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=2),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
        )
        self.listening = asyncio.Event()
        self._pending: list[Event] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen(), name="redis-event-listener"),
            asyncio.create_task(self._send(), name="redis-event-sender"),
        ]

    async def stop(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.flush(), 5)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.redis.aclose()

    async def publish(self, events: Sequence[Event]) -> None:
        if events:
            self._pending.extend(events)
            overflow = len(self._pending) - self.MAX_PENDING
            if overflow > 0:
                del self._pending[:overflow]
                self.publish_failures += overflow
            self._idle.clear()
            self._wake.set()

    async def flush(self) -> None:
        """Wait until everything handed to publish() was sent (or failed)."""
        await self._idle.wait()

    async def _send(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self.MAX_BATCH]
                del self._pending[: self.MAX_BATCH]
                try:
                    await self.redis.publish(self.channel, _encode(batch))
                except (RedisError, OSError):
                    self.publish_failures += len(batch)
                    log.warning("could not publish %d event(s) to Redis", len(batch), exc_info=True)
                else:
                    self.published += len(batch)
            self._idle.set()

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.listening.set()
                if delay > 0.1:
                    log.info("listening to Redis again")
                delay = 0.1
                while True:
                    message = await pubsub.get_message(timeout=None)
                    if message is None or message["type"] != "message" or self.hub.idle():
                        continue
                    try:
                        events = _decode(message["data"], self.hub)
                    except (ValueError, TypeError, KeyError):
                        log.warning("ignored a message on %s that is not ours", self.channel)
                        continue
                    for event in events:
                        self.hub.deliver(event)
            except (RedisError, OSError):
                self.listening.clear()
                log.warning("lost the Redis subscription; retrying in %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]


def event_bus(*, redis_url: str | None, channel: str, queue_size: int) -> EventBus:
    if redis_url:
        return RedisEventBus(queue_size, url=redis_url, channel=channel)
    return EventBus(queue_size)
