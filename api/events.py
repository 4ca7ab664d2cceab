"""Publish/subscribe for live events: in-process by default, through Redis pub/sub when configured.

Services publish after their transaction commits. Every server process keeps one `Hub`: the
subscriptions open on that process, each with its own bounded queue, by topic and audience (a
domain, or one gateway for the commands addressed to it). With Redis, each domain's events go to
the domain's own channel, and a process listens, on one connection, to the channels of the
domains its subscriptions watch, so a dashboard or gateway on any process sees what any other
caused and no process decodes events nobody there watches; on a Redis Cluster the same channels
are shard channels (`ShardedEventBus`), each on the node that owns its slot; without Redis,
publishing feeds the local hub directly (the embedded, single-process setup).

An event's payload is a dataclass (api/services/event_payloads.py names one per topic). Events
travel as JSON in both modes, read back into the payload class of their topic, so what a
subscriber sees does not depend on the mode. One `Event` object reaches every local subscriber
of its audience; `memo` lets the GraphQL layer convert and render it once for all of them
(api/graphql/streams.py).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, cast

import orjson
from pydantic import TypeAdapter, ValidationError
from redis.asyncio import RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterPubSub
from redis.exceptions import RedisClusterException, RedisError

from api.errors import FellBehind
from api.metrics import Metrics
from api.redis_client import EVENTS, REDIS_CONNECTIONS, Fallbacks, RedisClient, connect
from api.settings import Settings

log = logging.getLogger(__name__)

__all__ = [
    "REDIS_CONNECTIONS",
    "Event",
    "EventBus",
    "RedisEventBus",
    "ShardedEventBus",
    "Topic",
    "event_bus",
]


class Topic(StrEnum):
    LOGINS = "logins"
    ACCOUNT_CHANGES = "account-changes"
    SESSION_CHANGES = "session-changes"
    USAGE = "usage"
    # Addressed to one gateway (its token's id), not to a domain.
    SESSION_COMMANDS = "session-commands"
    # Signed-in accounts of a domain removed or changed in role: to every process (audience 0).
    PRINCIPALS = "principals"
    # A domain's client access policy changed: to every process (audience 0).
    ACCESS_POLICY = "access-policy"


# The audience of every domain's usage (domain ids start at 1): what the system administrators'
# console follows (mapiEwsDomainUsageUpdates).
EVERY_DOMAIN = 0


@dataclass(slots=True, eq=False)
class Event:
    topic: Topic
    # Whom it is for: a domain's id; for SESSION_COMMANDS, the gateway token's id.
    audience: int
    payload: Any
    # Forms derived from `payload` on this process, shared by every local subscriber.
    memo: dict[Any, Any] = field(default_factory=dict)


class Subscriber:
    """One subscription's queue. When it is full the subscriber is cut off rather than slowing
    delivery to the others or growing without bound: its queue is emptied and it ends with
    FellBehind at its next read.

    A deque and, while the subscriber waits, one future: an asyncio.Queue would do the same
    with four deques and an Event, some 3 KB for each of thousands of dashboards (docs/
    performance.md, "Compiled plans and 5,000 dashboards")."""

    __slots__ = ("_events", "_waiter", "behind", "hub", "size")

    def __init__(self, hub: Hub, size: int) -> None:
        self.hub = hub
        self.size = size
        self._events: collections.deque[Event] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self.behind = False

    def offer(self, event: Event) -> None:
        if self.behind:
            self.hub.metrics.events_dropped.inc()
            return
        if len(self._events) >= self.size:
            self.behind = True
            self.hub.metrics.events_dropped.inc(len(self._events) + 1)
            self._events.clear()
            self.hub.metrics.fell_behind.inc()
            self._events.append(_BEHIND)
        else:
            self._events.append(event)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Subscriber:
        return self

    async def __anext__(self) -> Event:
        while not self._events:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        event = self._events.popleft()
        if event is _BEHIND:
            raise FellBehind(
                "This subscription fell behind and missed events; subscribe again and reload."
            )
        return event


_BEHIND = Event(Topic.LOGINS, 0, None)
# Commands a gateway's subscription holds before it falls behind (see Subscription).
GATEWAY_QUEUE_SIZE = 100_000


Listener = Callable[[Event], None]


class Hub:
    """The subscriptions open on this process, by (topic, audience), and the process's own
    listeners (called as each event arrives; not subscriptions: no queue, not counted)."""

    def __init__(self, queue_size: int, metrics: Metrics) -> None:
        self.queue_size = queue_size
        self.metrics = metrics
        self._subscribers: dict[tuple[Topic, int], set[Subscriber]] = {}
        self._listeners: dict[tuple[Topic, int], list[Listener]] = {}

    @property
    def delivered(self) -> int:
        return int(self.metrics.value("mapi_ews_events_delivered_total"))

    @property
    def dropped(self) -> int:
        return int(self.metrics.value("mapi_ews_events_dropped_total"))

    @property
    def cut_off(self) -> int:
        return int(self.metrics.value("mapi_ews_subscriptions_fell_behind_total"))

    def wants(self, topic: Topic, audience: int) -> bool:
        key = (topic, audience)
        return key in self._subscribers or key in self._listeners

    def idle(self) -> bool:
        return not self._subscribers and not self._listeners

    def listen(self, topic: Topic, audience: int, listener: Listener) -> None:
        self._listeners.setdefault((topic, audience), []).append(listener)

    def deliver(self, event: Event) -> None:
        key = (event.topic, event.audience)
        for listener in self._listeners.get(key, ()):
            try:
                listener(event)
            except Exception:
                log.exception("a listener of %s failed", event.topic)
        group = self._subscribers.get(key, ())
        for subscriber in group:
            subscriber.offer(event)
        self.metrics.events_delivered.inc(len(group))

    def subscribe(self, topic: Topic, audience: int) -> Subscription:
        return Subscription(self, topic, audience)

    def add(self, key: tuple[Topic, int], subscriber: Subscriber) -> None:
        self._subscribers.setdefault(key, set()).add(subscriber)
        self.metrics.open_subscriptions.inc()

    def remove(self, key: tuple[Topic, int], subscriber: Subscriber) -> None:
        self.metrics.open_subscriptions.dec()
        group = self._subscribers.get(key)
        if group is not None:
            group.discard(subscriber)
            if not group:
                del self._subscribers[key]

    def subscriber_count(self) -> int:
        return sum(len(group) for group in self._subscribers.values())


class Subscription:
    """`async with hub.subscribe(topic, audience) as subscriber`: in the hub for as long as the
    block runs. A class rather than a generator-based context manager: thousands of open
    subscriptions each keep theirs, and a suspended generator costs a frame more."""

    __slots__ = ("hub", "key", "subscriber")

    def __init__(self, hub: Hub, topic: Topic, audience: int) -> None:
        self.hub = hub
        self.key = (topic, audience)
        size = hub.queue_size
        if topic is Topic.SESSION_COMMANDS:
            # A gateway's commands: one per account whose sessions it holds, so one change
            # (a policy that cuts off thousands of sessions) is thousands at once; a gateway is
            # one trusted subscriber per front end, and each command is small. Dropping them
            # would only delay them to its backlog.
            size = max(size, GATEWAY_QUEUE_SIZE)
        self.subscriber = Subscriber(hub, size)

    async def __aenter__(self) -> Subscriber:
        self.hub.add(self.key, self.subscriber)
        return self.subscriber

    async def __aexit__(self, *_: object) -> None:
        self.hub.remove(self.key, self.subscriber)


class _RedisSubscription(Subscription):
    """In the hub first, then on the channel: an event that arrives as soon as Redis confirms
    is not missed."""

    __slots__ = ("bus", "channel")

    def __init__(self, bus: RedisEventBus, topic: Topic, audience: int) -> None:
        super().__init__(bus.hub, topic, audience)
        self.bus = bus
        self.channel = bus.channel_of(topic, audience)

    async def __aenter__(self) -> Subscriber:
        subscriber = await super().__aenter__()
        try:
            await self.bus.join(self.channel)
        except BaseException:
            await super().__aexit__()
            raise
        return subscriber

    async def __aexit__(self, *_: object) -> None:
        try:
            await self.bus.leave(self.channel)
        finally:
            await super().__aexit__()


def _without_oldest(events: list[Event], count: int) -> list[Event]:
    """`events` less `count` of them: the oldest that are not gateways' commands first."""
    dashboards = sum(1 for event in events if event.topic is not Topic.SESSION_COMMANDS)
    spare, commands = min(count, dashboards), count - min(count, dashboards)
    kept: list[Event] = []
    for event in events:
        if event.topic is Topic.SESSION_COMMANDS:
            if commands:
                commands -= 1
                continue
        elif spare:
            spare -= 1
            continue
        kept.append(event)
    return kept


def _encode(events: Sequence[Event]) -> bytes:
    return orjson.dumps([[e.topic.value, e.audience, e.payload] for e in events])


class Codec:
    """Reads a message's payloads back into the class of their topic (a topic without one keeps
    its plain JSON). Only the events this process has subscribers for are read."""

    def __init__(self, payloads: Mapping[Topic, type]) -> None:
        self._readers: dict[Topic, TypeAdapter[Any]] = {
            topic: TypeAdapter(kind) for topic, kind in payloads.items()
        }

    def decode(self, raw: bytes, hub: Hub) -> list[Event]:
        events = []
        for name, audience, data in orjson.loads(raw):
            topic = Topic(name)
            if hub.wants(topic, audience):
                reader = self._readers.get(topic)
                events.append(
                    Event(topic, audience, reader.validate_python(data) if reader else data)
                )
        return events


class EventBus:
    """In-process fan-out: what is published reaches this process's subscribers only."""

    def __init__(
        self,
        queue_size: int,
        metrics: Metrics | None = None,
        payloads: Mapping[Topic, type] | None = None,
    ) -> None:
        self.metrics = metrics = metrics or Metrics()
        self.hub = Hub(queue_size, metrics)
        # What the process serves alone because Redis cannot (nothing, without Redis).
        self.fallbacks = Fallbacks(metrics)
        self.codec = Codec(payloads or {})
        # Called when events may have been missed: the bus is back after losing Redis.
        self.after_outage: list[Callable[[], None]] = []

    @property
    def published(self) -> int:
        return int(self.metrics.value("mapi_ews_events_published_total"))

    @property
    def publish_failures(self) -> int:
        return int(self.metrics.value("mapi_ews_events_publish_failures_total"))

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def publish(self, events: Sequence[Event]) -> None:
        """Hand committed events to subscribers. Never raises: the change they describe is
        already committed, so a failure here is logged and counted, not reported to the caller."""
        if not events:
            return
        self.metrics.events_published.inc(len(events))
        wanted = [e for e in events if self.hub.wants(e.topic, e.audience)]
        if not wanted:
            return
        for event in self.codec.decode(_encode(wanted), self.hub):
            self.hub.deliver(event)

    def subscribe(self, topic: Topic, audience: int) -> Subscription:
        return self.hub.subscribe(topic, audience)

    async def listen(self, topic: Topic, audience: int, listener: Listener) -> None:
        """Call `listener` with each such event, whichever process published it, for as long as
        the process runs (the process's own use, not a client's subscription)."""
        self.hub.listen(topic, audience, listener)


class RedisEventBus(EventBus):
    """Fan-out across processes through Redis pub/sub, one channel per domain.

    Each domain's events go to its own channel (`<channel>:domain:<id>`), and commands for
    gateways to one more (`<channel>:gateways`). A process subscribes to a channel while a local
    subscription needs it, and unsubscribes when the last one ends, so it receives and decodes
    only the events of domains it has dashboards for (README, Scaling out). A subscription counts
    as open once Redis has confirmed its channel, so nothing published after that is missed.

    Publishing hands events to one sender task, which sends whatever has gathered as one PUBLISH
    per channel, pipelined: under load a request never waits for Redis, and a burst costs one
    round trip. One connection per process listens and feeds the local hub; when Redis goes away
    both reconnect by themselves, with backoff, and the listener subscribes again to every
    channel its subscriptions need. Pub/sub keeps nothing: events published while a process is
    cut off from Redis do not reach its subscribers (the login history and the account lists,
    read over queries, still have them) and are counted as publish failures. A channel that
    Redis confirms again, after the connection was lost and made again inside redis-py, counts
    as an outage ended as well: `after_outage` is told once for all such confirmations."""

    MAX_BATCH = 500
    # Events waiting for Redis (while it is unreachable, or in one burst: a policy that cuts off
    # 10,000 sessions publishes 10,000 session changes and a command per account) are capped:
    # past this the oldest dashboard events are dropped and counted, so an outage cannot grow
    # memory without end; gateways' commands go last (a dropped one waits in the backlog).
    MAX_PENDING = 10_000
    # How long a new subscription waits for Redis to confirm its channel before it opens anyway
    # (it is subscribed again when the listener reconnects).
    CONFIRM_SECONDS = 2.0

    def __init__(
        self,
        queue_size: int,
        *,
        url: str,
        channel: str,
        cluster: bool = False,
        metrics: Metrics | None = None,
        payloads: Mapping[Topic, type] | None = None,
    ) -> None:
        super().__init__(queue_size, metrics, payloads)
        self.channel = channel
        self.redis: RedisClient = connect(url, cluster=cluster)
        self.listening = asyncio.Event()
        self._pending: list[Event] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        # The channels local subscriptions need (how many each), and Redis's confirmations.
        self._wanted: dict[str, int] = {}
        self._confirmed: dict[str, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None
        # Nobody publishes here: it keeps the listener subscribed while no channel is needed.
        self._own = f"{channel}:process:{uuid.uuid4().hex}"
        # Lost Redis since the listener last listened; the return being told (once).
        self._lost = False
        self._outage_told: asyncio.Future[None] | None = None

    def channel_of(self, topic: Topic, audience: int) -> str:
        if topic is Topic.SESSION_COMMANDS:
            return f"{self.channel}:gateways"
        if topic is Topic.PRINCIPALS:
            return f"{self.channel}:principals"
        if topic is Topic.ACCESS_POLICY:
            return f"{self.channel}:access-policy"
        return f"{self.channel}:domain:{audience}"

    def listened(self) -> set[str]:
        """The channels this process is subscribed to for its subscriptions."""
        return set(self._wanted)

    def subscribe(self, topic: Topic, audience: int) -> Subscription:
        return _RedisSubscription(self, topic, audience)

    async def listen(self, topic: Topic, audience: int, listener: Listener) -> None:
        await super().listen(topic, audience, listener)
        await self.join(self.channel_of(topic, audience))

    async def join(self, channel: str) -> None:
        count = self._wanted.get(channel, 0)
        self._wanted[channel] = count + 1
        if count == 0:
            self._confirmed[channel] = asyncio.get_running_loop().create_future()
            await self._command(True, channel)
        confirmed = self._confirmed.get(channel)
        if confirmed is not None and not confirmed.done() and self.listening.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(confirmed), self.CONFIRM_SECONDS)

    async def leave(self, channel: str) -> None:
        count = self._wanted.get(channel, 0) - 1
        if count > 0:
            self._wanted[channel] = count
            return
        self._wanted.pop(channel, None)
        self._confirmed.pop(channel, None)
        await self._command(False, channel)

    async def _command(self, subscribe: bool, channel: str) -> bool:
        """Subscribes to or leaves `channel` on the listener's connection, if it is up; if not,
        the listener subscribes to what is wanted when it reconnects. False: it was not sent."""
        pubsub = self._pubsub
        if pubsub is None or not self.listening.is_set():
            return False
        name = self.SUBSCRIBE if subscribe else self.UNSUBSCRIBE
        try:
            await getattr(pubsub, name)(channel)
        except (RedisError, OSError):
            log.warning("could not %s %s; the listener will on reconnecting", name, channel)
            return False
        return True

    # The pub/sub commands and the kinds of message they bring: classic here, sharded on a
    # cluster (ShardedEventBus).
    SUBSCRIBE, UNSUBSCRIBE, CONFIRMED, MESSAGE = "subscribe", "unsubscribe", "subscribe", "message"

    def _new_pubsub(self) -> PubSub:
        return self.redis.pubsub()

    async def _next_message(self, pubsub: Any) -> dict[str, Any] | None:
        message: dict[str, Any] | None = await pubsub.get_message(timeout=None)
        return message

    def _queue_publish(self, pipe: Any, channel: str, data: bytes) -> None:
        pipe.publish(channel, data)

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
            # One change's events are kept whole, however many: only older ones make room.
            overflow = len(self._pending) - max(self.MAX_PENDING, len(events))
            if overflow > 0:
                older = self._pending[: len(self._pending) - len(events)]
                self._pending = _without_oldest(older, overflow) + list(events)
                self.metrics.events_publish_failures.inc(overflow)
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
                by_channel: dict[str, list[Event]] = {}
                for event in batch:
                    by_channel.setdefault(self.channel_of(event.topic, event.audience), []).append(
                        event
                    )
                try:
                    async with self.redis.pipeline(transaction=False) as pipe:
                        for channel, events in by_channel.items():
                            self._queue_publish(pipe, channel, _encode(events))
                        await pipe.execute()
                except (RedisError, OSError) as error:
                    self.metrics.events_publish_failures.inc(len(batch))
                    self.fallbacks.failed(EVENTS, error)
                else:
                    self.metrics.events_published.inc(len(batch))
                    self.fallbacks.served(EVENTS)
            self._idle.set()

    async def _listen(self) -> None:
        delay = 0.1
        while True:
            pubsub = self._new_pubsub()
            try:
                self._pubsub = pubsub
                # One SUBSCRIBE: Redis confirms its channels in order, all of them subscribed by
                # the time the first confirmation (this process's own channel) arrives.
                asked = set(self._wanted)
                await getattr(pubsub, self.SUBSCRIBE)(self._own, *asked)
                while True:
                    message = await self._next_message(pubsub)
                    if message is None:
                        continue
                    kind = _text(message["type"])
                    if kind == self.CONFIRMED:
                        await self._confirmed_channel(pubsub, _text(message["channel"]), asked)
                        delay = 0.1
                        continue
                    if kind != self.MESSAGE or self.hub.idle():
                        continue
                    self.metrics.redis_messages.inc()
                    try:
                        events = self.codec.decode(message["data"], self.hub)
                    except (ValueError, TypeError, KeyError, ValidationError):
                        log.warning("ignored a message on %s that is not ours", message["channel"])
                        continue
                    for event in events:
                        self.hub.deliver(event)
            except (RedisError, OSError):
                if self.listening.is_set():
                    log.warning("lost the Redis subscription; retrying")
                self.listening.clear()
                self._lost = True
                self.metrics.redis_listening.set(0)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                self._pubsub = None
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def _confirmed_channel(self, pubsub: Any, channel: str, asked: set[str]) -> None:
        if channel == self._own and not self.listening.is_set():
            await self._listening(pubsub, asked)
            return
        confirmed = self._confirmed.get(channel)
        if channel == self._own or (confirmed is not None and confirmed.done()):
            # Confirmed again: the connection to Redis (or to the node of a cluster that holds
            # the channel) was lost and made again, and events published meanwhile were missed.
            self._back_after_outage()
        elif confirmed is not None:
            confirmed.set_result(None)

    async def _listening(self, pubsub: Any, asked: set[str]) -> None:
        """Connected: channels wanted while it was connecting are subscribed now."""
        self.listening.set()
        self.metrics.redis_listening.set(1)
        if self._lost:
            log.info("listening to Redis again")
            self._back_after_outage()
        missed = set(self._wanted) - asked
        if missed:
            await getattr(pubsub, self.SUBSCRIBE)(*missed)

    def _back_after_outage(self) -> None:
        """Tell what may have missed events, once for all the confirmations of one return."""
        self._lost = False
        if self._outage_told is not None and not self._outage_told.done():
            return
        self._outage_told = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(self.CONFIRM_SECONDS / 4, self._tell_outage)

    def _tell_outage(self) -> None:
        if self._outage_told is not None and not self._outage_told.done():
            self._outage_told.set_result(None)
        for missed_events in self.after_outage:
            missed_events()


class ShardedEventBus(RedisEventBus):
    """The same bus on a Redis Cluster, each channel a shard channel (SPUBLISH, SSUBSCRIBE).

    A shard channel lives on the node that owns its slot, and its messages go to that node's
    subscribers only, where classic PUBLISH is copied to every node: a node carries only the
    domains whose channels it owns. redis-py's ClusterPubSub keeps one connection per node that
    holds a channel this process listens to and routes SSUBSCRIBE by slot; a connection lost is
    made again on the next read, subscribing its channels again (which the bus sees as
    confirmations of channels already confirmed: an outage ended).

    Its own reader polls the nodes in turn, each for a slice of a timeout: some 3.5% of a core
    for an idle process, and up to the slice's length of delay for a message. Here each node's
    connection has a reader task of its own instead, blocked on its socket until a message
    comes (as the one-Redis bus is), all feeding one queue: no cost while idle, no delay. A
    reader whose node does not answer retries with backoff and asks for the cluster's slots
    again (at most every REPAIR_SECONDS), so that channels whose slots moved (a failover) are
    subscribed on their new node; redis-py then moves them."""

    SUBSCRIBE, UNSUBSCRIBE, CONFIRMED, MESSAGE = (
        "ssubscribe",
        "sunsubscribe",
        "ssubscribe",
        "smessage",
    )
    # How often the set of node connections is looked at while nothing arrives.
    CHECK_SECONDS = 1.0
    REPAIR_SECONDS = 5.0

    def __init__(
        self,
        queue_size: int,
        *,
        url: str,
        channel: str,
        metrics: Metrics | None = None,
        payloads: Mapping[Topic, type] | None = None,
    ) -> None:
        super().__init__(
            queue_size, url=url, channel=channel, cluster=True, metrics=metrics, payloads=payloads
        )
        self.cluster = cast(RedisCluster, self.redis)
        self._messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._readers: dict[str, asyncio.Task[None]] = {}
        # Nodes whose connection fails now; the last request for the cluster's slots.
        self._down: set[str] = set()
        self._repaired = 0.0
        # Channels wanted whose SSUBSCRIBE could not be sent (their node was away), and channels
        # left whose SUNSUBSCRIBE could not be: redis-py would subscribe them again as it
        # reconnects, and their node would send this process their domain's events for ever.
        self._unsent: set[str] = set()
        self._unleft: set[str] = set()
        self._sent_again = 0.0

    def _new_pubsub(self) -> ClusterPubSub:
        for reader in self._readers.values():
            reader.cancel()
        self._readers = {}
        self._messages = asyncio.Queue()
        self._down.clear()
        self._unsent.clear()  # a new connection subscribes everything wanted, and nothing else
        self._unleft.clear()
        return self.cluster.pubsub()

    async def _command(self, subscribe: bool, channel: str) -> bool:
        sent = False if self._node_away(channel) else await super()._command(subscribe, channel)
        if subscribe and not sent and self._pubsub is not None:
            # Its node did not answer: redis-py keeps no record of a channel it could not
            # send, so nothing would subscribe it when the node is back. Tried again below.
            self._unsent.add(channel)
        if not subscribe and not sent and self._pubsub is not None:
            self._unleft.add(channel)
        if isinstance(self._pubsub, ClusterPubSub):
            self._read_every_node(self._pubsub)
        return sent

    async def _next_message(self, pubsub: Any) -> dict[str, Any] | None:
        self._read_every_node(pubsub)
        if self._unsent or self._unleft:
            await self._send_again(pubsub)
        try:
            return await asyncio.wait_for(self._messages.get(), self.CHECK_SECONDS)
        except TimeoutError:
            return None

    async def stop(self) -> None:
        readers = list(self._readers.values())
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await super().stop()

    async def _send_again(self, pubsub: ClusterPubSub) -> None:
        """Every CHECK_SECONDS, SSUBSCRIBE the wanted channels and SUNSUBSCRIBE the left ones
        whose node did not answer then, each once its node is back."""
        now = asyncio.get_running_loop().time()
        if now - self._sent_again < self.CHECK_SECONDS:
            return
        self._sent_again = now
        for pending, subscribe in ((self._unsent, True), (self._unleft, False)):
            for channel in list(pending):
                if (channel in self._wanted) is not subscribe:
                    pending.discard(channel)  # wanted again, or left again, since
                    continue
                if self._node_away(channel):
                    continue
                command = pubsub.ssubscribe if subscribe else pubsub.sunsubscribe
                try:
                    await command(channel)
                except (RedisError, OSError):
                    continue
                pending.discard(channel)

    def _node_away(self, channel: str) -> bool:
        """Whether `channel`'s node is one its reader has lost. That reader reconnects it, reading
        the handshake on the node's one connection; a command sent on it meanwhile would connect
        and read too, which asyncio's streams refuse (RuntimeError). Sent once it is back."""
        if not self._down:
            return False
        try:
            node = self.cluster.get_node_from_key(channel)
        except RedisClusterException:
            return True
        return node is None or node.name in self._down

    def _read_every_node(self, pubsub: ClusterPubSub) -> None:
        """A reader for each node connection of `pubsub` that has none (a node that holds one of
        its channels now), and none left for a connection it dropped."""
        for name, node_pubsub in list(pubsub.node_pubsub_mapping.items()):
            reader = self._readers.get(name)
            if reader is None or reader.done():
                self._readers[name] = asyncio.create_task(
                    self._read_node(pubsub, name, node_pubsub), name=f"redis-shard-reader {name}"
                )

    async def _read_node(self, pubsub: ClusterPubSub, name: str, node_pubsub: PubSub) -> None:
        delay = 0.1
        while pubsub.node_pubsub_mapping.get(name) is node_pubsub:
            node = self.cluster.get_node(node_name=name)
            if node is None:
                return
            if node_pubsub.connection is None:  # its first SSUBSCRIBE is on its way
                await asyncio.sleep(0.01)
                continue
            try:
                message = await pubsub.get_sharded_message(target_node=node, timeout=None)
            except (RedisError, OSError) as error:
                if pubsub.node_pubsub_mapping.get(name) is not node_pubsub:
                    return  # dropped: its channels moved, or it holds none
                self._node_down(name, error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                await self._repair_topology()
                continue
            delay = 0.1
            if name in self._down:
                self._down.discard(name)
                if not self._down:
                    self.metrics.redis_listening.set(1)
            if message is not None:
                self._messages.put_nowait(message)

    def _node_down(self, name: str, error: BaseException) -> None:
        if name not in self._down:
            log.warning(
                "lost the Redis Cluster node %s of this process's channels: %r", name, error
            )
            self._down.add(name)
            self.metrics.redis_listening.set(0)

    async def _repair_topology(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self._repaired < self.REPAIR_SECONDS:
            return
        self._repaired = now
        with contextlib.suppress(RedisError, OSError):
            await self.cluster.nodes_manager.initialize()

    def _queue_publish(self, pipe: Any, channel: str, data: bytes) -> None:
        pipe.spublish(channel, data)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def event_bus(
    settings: Settings,
    *,
    metrics: Metrics | None = None,
    payloads: Mapping[Topic, type] | None = None,
) -> EventBus:
    """The bus the settings ask for: in-process, through one Redis, or through a cluster."""
    size, url, channel = (
        settings.subscription_queue_size,
        settings.redis_url,
        settings.redis_channel,
    )
    if url and settings.redis_cluster:
        return ShardedEventBus(size, url=url, channel=channel, metrics=metrics, payloads=payloads)
    if url:
        return RedisEventBus(size, url=url, channel=channel, metrics=metrics, payloads=payloads)
    return EventBus(size, metrics, payloads)
