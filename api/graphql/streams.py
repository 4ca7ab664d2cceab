"""How a subscription follows the event bus: a domain's events of one topic, as GraphQL objects.

@auth and the domain rule run when a subscription starts, exactly as for a query. Each event
reaches a subscriber as one object shared by every subscriber on this process (converted once
from the wire form); the pipeline then renders it once per distinct question
(api/transport/pipeline.py). The subscription leaves the hub in `finally`, whether the client
completed it, disconnected, or fell behind. Each area declares its own subscriptions with
`follow`: logins (activity.py), MAPI/EWS changes (seats.py), sessions (protocol_sessions.py),
usage (usage.py).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from typing import Any, TypeVar

from api.events import EVERY_DOMAIN, Event, EventBus, Topic
from api.graphql.context import Info, tenant_of

T = TypeVar("T")
P = TypeVar("P")


def shared(event: Event, convert: Callable[[P, dict[Any, Any]], T]) -> T:
    """The event as a GraphQL object, converted by its first subscriber on this process."""
    converted: T | None = event.memo.get(convert)
    if converted is None:
        converted = event.memo[convert] = convert(event.payload, event.memo)
    return converted


def follow(
    info: Info, topic: Topic, convert: Callable[[P, dict[Any, Any]], T]
) -> AsyncGenerator[T, None]:
    """The domain's events of `topic`, as GraphQL objects, until the subscription ends.

    What it needs of `info` is read now: a subscription's generators must not keep `info`,
    whose executor would then live as long as the subscription (1.6 KB for each of thousands
    of dashboards; each event is rendered by an executor of its own). Resolvers drop it too."""
    return _follow(info.context.events, tenant_of(info).domain_id, topic, convert)


def follow_every_domain(
    info: Info, topic: Topic, convert: Callable[[P, dict[Any, Any]], T]
) -> AsyncGenerator[T, None]:
    """Every domain's events of `topic` (those published for EVERY_DOMAIN), as `follow` does."""
    return _follow(info.context.events, EVERY_DOMAIN, topic, convert)


async def _follow(
    bus: EventBus, domain_id: int, topic: Topic, convert: Callable[[P, dict[Any, Any]], T]
) -> AsyncGenerator[T, None]:
    async with bus.subscribe(topic, domain_id) as events:
        async for event in events:
            yield shared(event, convert)
