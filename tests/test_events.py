"""api/events.py: local fan-out, bounded queues, and Redis pub/sub across buses (real Redis)."""

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from starlette.applications import Starlette

from api.app import GC_THRESHOLDS
from api.errors import FellBehind
from api.events import REDIS_CONNECTIONS, Event, EventBus, RedisEventBus, Topic
from api.models import MailProtocol
from api.services.domains import Usage
from api.services.event_payloads import PAYLOADS, AccountSnapshot, LoginReported, MapiEwsChanged
from api.transport.executor import PlainFieldExecutor
from tests.conftest import REDIS_URL, Factory, run_subscription, started
from tests.servers import RedisProcess, free_port

needs_redis = pytest.mark.redis


def login(domain_id: int, n: int) -> Event:
    return Event(Topic.LOGINS, domain_id, {"n": n})


async def drain(subscriber: AsyncIterator[Event], count: int) -> list[int]:
    received = []
    async with asyncio.timeout(5):
        async for event in subscriber:
            received.append(event.payload["n"])
            if len(received) == count:
                break
    return received


async def test_the_local_bus_delivers_to_subscribers_of_the_domain_only() -> None:
    bus = EventBus(queue_size=10)
    async with bus.subscribe(Topic.LOGINS, 1) as mine, bus.subscribe(Topic.LOGINS, 2) as theirs:
        await bus.publish([login(2, 0), login(1, 1), login(1, 2)])

        assert await drain(mine, 2) == [1, 2]
        assert await drain(theirs, 1) == [0]
    assert bus.hub.subscriber_count() == 0
    assert (bus.published, bus.hub.delivered) == (3, 3)


async def test_every_local_subscriber_gets_the_same_event_object() -> None:
    bus = EventBus(queue_size=10)
    async with bus.subscribe(Topic.LOGINS, 1) as a, bus.subscribe(Topic.LOGINS, 1) as b:
        await bus.publish([login(1, 7)])

        first, second = await anext(a), await anext(b)

    assert first is second  # so it is converted and rendered once (api.graphql.streams)


async def test_a_slow_subscriber_is_cut_off_without_holding_up_the_others() -> None:
    bus = EventBus(queue_size=3)
    async with bus.subscribe(Topic.LOGINS, 1) as slow, bus.subscribe(Topic.LOGINS, 1) as fast:
        for n in range(5):
            await bus.publish([login(1, n)])
            assert (await anext(fast)).payload["n"] == n

        with pytest.raises(FellBehind, match="subscribe again"):
            await anext(slow)

    assert bus.hub.cut_off == 1
    assert bus.hub.dropped == 5  # the three it held when it overflowed, and the two after


async def test_a_gateway_takes_a_burst_of_commands_far_past_a_dashboards_queue() -> None:
    """A policy that cuts off thousands of sessions sends one command per account: a gateway's
    subscription holds them (GATEWAY_QUEUE_SIZE) where a dashboard's would fall behind."""
    bus = EventBus(queue_size=3)
    async with bus.subscribe(Topic.SESSION_COMMANDS, 7) as gateway:
        await bus.publish([Event(Topic.SESSION_COMMANDS, 7, {"n": n}) for n in range(5000)])
        received = [(await anext(gateway)).payload["n"] for _ in range(5000)]

    assert received == list(range(5000))
    assert bus.hub.cut_off == 0


@needs_redis
async def test_events_published_on_one_process_reach_subscribers_on_another(channel: str) -> None:
    assert REDIS_URL is not None
    one = RedisEventBus(10, url=REDIS_URL, channel=channel)
    other = RedisEventBus(10, url=REDIS_URL, channel=channel)
    async with started(one), started(other), other.subscribe(Topic.LOGINS, 1) as subscriber:
        await one.publish([login(1, 1), login(9, 2)])
        await one.publish([login(1, 3)])

        assert await drain(subscriber, 2) == [1, 3]
    assert other.hub.delivered == 2  # domain 9 has no subscriber there: decoded, not queued


REPORTED = LoginReported(
    id=7,
    domain="example.com",
    username="alice",
    protocol=MailProtocol.MAPI,
    occurred_at=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
    client_address="198.51.100.4",
    client_name="Microsoft Outlook 16.0",
    allowed=True,
    account=AccountSnapshot(
        id=3,
        username="alice",
        domain="example.com",
        name="Alice",
        is_domain_admin=False,
        mapi_ews_enabled=True,
        mapi_ews_enabled_at=datetime(2026, 11, 1, tzinfo=UTC),
        last_login=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        last_login_protocol=MailProtocol.MAPI,
        last_mapi_login=datetime(2026, 12, 1, 9, 30, tzinfo=UTC),
        last_ews_login=None,
        active_session_count=2,
    ),
)
CHANGED = MapiEwsChanged(
    enabled=False,
    account=REPORTED.account,  # type: ignore[arg-type]
    actor="admin@example.com",
    occurred_at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
    usage=Usage(domain="example.com", enabled=4, limit=5),
)


@needs_redis
async def test_a_process_receives_only_the_domains_its_subscribers_watch(channel: str) -> None:
    """Per-domain fan-out: no process receives, let alone decodes, a domain's events unless one
    of its subscriptions watches that domain."""
    assert REDIS_URL is not None
    publisher = RedisEventBus(10, url=REDIS_URL, channel=channel)
    one = RedisEventBus(10, url=REDIS_URL, channel=channel)
    two = RedisEventBus(10, url=REDIS_URL, channel=channel)
    async with started(publisher), started(one), started(two):
        async with (
            one.subscribe(Topic.LOGINS, 1) as first,
            two.subscribe(Topic.LOGINS, 2) as second,
            two.subscribe(Topic.ACCOUNT_CHANGES, 2),
        ):
            for n in range(3):
                await publisher.publish([login(1, n), login(2, n), login(3, n)])
                assert await drain(first, 1) == [n]
                assert await drain(second, 1) == [n]
            assert one.listened() == {one.channel_of(Topic.LOGINS, 1)}
            assert two.listened() == {two.channel_of(Topic.LOGINS, 2)}
        # One message per publish for the domain watched there; none for domain 3, or the other's.
        assert one.metrics.value("mapi_ews_redis_messages_received_total") == 3
        assert two.metrics.value("mapi_ews_redis_messages_received_total") == 3
        assert one.listened() == two.listened() == set()

        # Unsubscribed: nothing more reaches them, while a new subscriber hears at once.
        async with one.subscribe(Topic.LOGINS, 3) as third:
            await publisher.publish([login(1, 9), login(2, 9), login(3, 9)])
            assert await drain(third, 1) == [9]
        assert one.metrics.value("mapi_ews_redis_messages_received_total") == 4
        assert two.metrics.value("mapi_ews_redis_messages_received_total") == 3


@needs_redis
async def test_an_opened_subscription_misses_nothing_published_after_it(channel: str) -> None:
    """A subscription is open once Redis confirmed its channel: an event published right after
    reaches it, every time."""
    assert REDIS_URL is not None
    publisher = RedisEventBus(10, url=REDIS_URL, channel=channel)
    listener = RedisEventBus(10, url=REDIS_URL, channel=channel)
    async with started(publisher), started(listener):
        for domain in range(100, 130):
            async with listener.subscribe(Topic.LOGINS, domain) as subscriber:
                await publisher.publish([login(domain, domain)])
                assert await drain(subscriber, 1) == [domain]


@needs_redis
async def test_typed_events_arrive_on_another_process_as_the_dataclass_that_was_published(
    channel: str,
) -> None:
    assert REDIS_URL is not None
    one = RedisEventBus(10, url=REDIS_URL, channel=channel, payloads=PAYLOADS)
    other = RedisEventBus(10, url=REDIS_URL, channel=channel, payloads=PAYLOADS)
    async with (
        started(one),
        started(other),
        other.subscribe(Topic.LOGINS, 1) as logins,
        other.subscribe(Topic.ACCOUNT_CHANGES, 1) as changes,
    ):
        await one.publish([Event(Topic.LOGINS, 1, REPORTED)])
        await one.publish([Event(Topic.ACCOUNT_CHANGES, 1, CHANGED)])

        async with asyncio.timeout(5):
            login_event, change_event = await anext(logins), await anext(changes)

    assert login_event.payload == REPORTED
    assert change_event.payload == CHANGED


async def test_typed_events_stay_the_same_in_process() -> None:
    bus = EventBus(10, payloads=PAYLOADS)
    async with bus.subscribe(Topic.ACCOUNT_CHANGES, 1) as changes:
        await bus.publish([Event(Topic.ACCOUNT_CHANGES, 1, CHANGED)])

        assert (await anext(changes)).payload == CHANGED


@needs_redis
async def test_a_foreign_message_on_the_channel_is_ignored(channel: str) -> None:
    assert REDIS_URL is not None
    bus = RedisEventBus(10, url=REDIS_URL, channel=channel, payloads=PAYLOADS)
    async with started(bus), bus.subscribe(Topic.LOGINS, 1) as subscriber:
        domain = bus.channel_of(Topic.LOGINS, 1)
        await bus.redis.publish(domain, b"not json")
        await bus.redis.publish(domain, b'[["logins", 1, {"id": "not an event"}]]')
        await bus.publish([Event(Topic.LOGINS, 1, REPORTED)])

        async with asyncio.timeout(5):
            assert (await anext(subscriber)).payload == REPORTED


@needs_redis
async def test_a_restarted_redis_is_reconnected_to_without_restarting(
    private_redis: tuple[str, RedisProcess], channel: str
) -> None:
    url, redis = private_redis
    publisher = RedisEventBus(10, url=url, channel=channel)
    listener = RedisEventBus(10, url=url, channel=channel)
    for _ in range(50):  # the server takes a moment to accept connections
        with contextlib.suppress(Exception):
            await publisher.redis.ping()
            break
        await asyncio.sleep(0.1)
    async with (
        started(publisher),
        started(listener),
        listener.subscribe(Topic.LOGINS, 1) as subscriber,
    ):
        await publisher.publish([login(1, 1)])
        assert await drain(subscriber, 1) == [1]

        redis.stop()
        await publisher.publish([login(1, 2)])  # lost: nobody can hear it, and it is counted
        await publisher.flush()
        assert publisher.publish_failures == 1
        for _ in range(100):
            if not listener.listening.is_set():
                break
            await asyncio.sleep(0.05)
        assert not listener.listening.is_set()
        redis.start()
        await asyncio.wait_for(listener.listening.wait(), 15)
        await publisher.publish([login(1, 3)])

        assert await drain(subscriber, 1) == [3]


async def test_a_subscription_that_falls_behind_ends_with_a_fell_behind_error(
    app: Starlette, make: Factory
) -> None:
    domain = await make.domain("example.com")
    admin = await make.account(domain, "admin", admin=True)
    bus = EventBus(queue_size=2)
    principal = await app.state.authenticator.principal(await make.token_for(admin))
    stream = run_subscription(
        app, "subscription { mapiEwsLoginUpdates { id } }", principal=principal, events=bus
    )
    first = asyncio.ensure_future(anext(stream))
    async with asyncio.timeout(5):
        while not bus.hub.subscriber_count():
            await asyncio.sleep(0.01)

    # The dashboard reads nothing while three events arrive for its queue of two.
    await bus.publish([Event(Topic.LOGINS, domain.id, {"n": n}) for n in range(3)])
    result = await asyncio.wait_for(first, 5)
    await stream.aclose()

    assert result.data is None
    assert [(e.message, e.extensions) for e in result.errors or []] == [
        (
            "This subscription fell behind and missed events; subscribe again and reload.",
            {"code": "FELL_BEHIND"},
        )
    ]
    assert bus.hub.subscriber_count() == 0


async def test_events_waiting_for_an_unreachable_redis_are_capped_and_counted() -> None:
    bus = RedisEventBus(10, url=f"redis://127.0.0.1:{free_port()}/0", channel="unused")
    try:
        await bus.publish([login(1, n) for n in range(bus.MAX_PENDING - 5)])
        await bus.publish([login(1, n) for n in range(10)])

        assert bus.publish_failures == 5  # the oldest five, dropped to keep memory bounded
        await bus.publish([login(1, -1)])
        assert bus.publish_failures == 6
    finally:
        await bus.redis.aclose()


async def test_one_change_is_published_whole_and_gateway_commands_are_dropped_last() -> None:
    """A cut-off of 10,000 sessions publishes more than the cap at once: kept whole; older
    dashboard events make room before any gateway command does."""
    bus = RedisEventBus(10, url=f"redis://127.0.0.1:{free_port()}/0", channel="unused")
    try:
        command = Event(Topic.SESSION_COMMANDS, 7, {"n": "command"})
        older = [login(1, n) for n in range(bus.MAX_PENDING - 50)]
        await bus.publish([command])
        await bus.publish(older)
        await bus.publish(burst := [login(2, n) for n in range(5000)])

        assert bus.publish_failures == 4951  # the oldest logins made room, not the command
        assert bus._pending == [command, *older[4951:], *burst]

        await bus.publish(whole := [login(3, n) for n in range(bus.MAX_PENDING + 50)])

        assert bus._pending == whole  # past the cap on its own: one change is kept whole
    finally:
        await bus.redis.aclose()


async def test_an_open_subscription_keeps_no_executor_and_no_queue_of_asyncio(
    app: Starlette, make: Factory
) -> None:
    """What 5,000 open dashboards cost in memory (docs/performance.md, "Compiled plans and
    5,000 dashboards"): each event
    is rendered by an executor of its own, so a waiting subscription holds none."""
    domain = await make.domain("example.com")
    admin = await make.account(domain, "admin", admin=True)
    principal = await app.state.authenticator.principal(await make.token_for(admin))
    bus = app.state.events
    streams = [
        run_subscription(app, "subscription { mapiEwsLoginUpdates { id } }", principal=principal)
        for _ in range(3)
    ]
    pending = [asyncio.ensure_future(anext(stream)) for stream in streams]
    async with asyncio.timeout(5):
        while bus.hub.subscriber_count() < 3:
            await asyncio.sleep(0.01)
    gc.collect()

    alive = [kind.__name__ for kind in map(type, gc.get_objects()) if kind in WATCHED]

    for waiting in pending:
        waiting.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for stream in streams:
        await stream.aclose()
    assert alive == []


WATCHED = (PlainFieldExecutor, asyncio.Queue)


async def test_a_serving_process_raises_the_collectors_thresholds(app: Starlette) -> None:
    assert gc.get_threshold() == GC_THRESHOLDS


@needs_redis
async def test_a_burst_of_redis_commands_past_the_pool_waits_for_a_connection(
    channel: str,
) -> None:
    """Thousands of dashboards subscribing at once are each charged their cost in Redis: more
    commands in flight than the process has connections wait their turn, none is refused."""
    assert REDIS_URL is not None
    bus = RedisEventBus(10, url=REDIS_URL, channel=channel)
    async with started(bus):
        answers = await asyncio.gather(
            *(bus.redis.execute_command("PING") for _ in range(4 * REDIS_CONNECTIONS))
        )

        assert answers == [True] * (4 * REDIS_CONNECTIONS)
