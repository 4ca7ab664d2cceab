"""Subscriptions: logins and MAPI/EWS changes of a domain, as they happen, from any process.

@auth and the domain rule run when a subscription starts, exactly as for a query. Each event
reaches a subscriber as one object shared by every subscriber on this process (converted once
from the wire form); the pipeline then renders it once per distinct question
(api/transport/pipeline.py). The subscription leaves the hub in `finally`, whether the client
completed it, disconnected, or fell behind.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeVar

import strawberry

from api.auth.principal import Role
from api.events import Event, EventBus, Topic
from api.graphql.activity import MapiEwsLoginEvent, login_event_reported
from api.graphql.context import Info, tenant_of
from api.graphql.directives import auth
from api.graphql.types import Account, MapiEwsUsage, account_of, usage_of
from api.services.event_payloads import MapiEwsChanged

T = TypeVar("T")
P = TypeVar("P")


@strawberry.enum(name="MapiEwsChangeKind")
class MapiEwsChangeKind(StrEnum):
    ENABLED = "ENABLED"
    DISABLED = "DISABLED"


@strawberry.type(description="MAPI/EWS was enabled or disabled for an account.")
class MapiEwsAccountChange:
    kind: MapiEwsChangeKind
    account: Account
    actor: str = strawberry.field(description="Username of whoever made the change.")
    occurred_at: datetime
    usage: MapiEwsUsage
    render_memo: strawberry.Private[dict[Any, Any] | None] = None


def change_reported(change: MapiEwsChanged, memo: dict[Any, Any]) -> MapiEwsAccountChange:
    return MapiEwsAccountChange(
        kind=MapiEwsChangeKind.ENABLED if change.enabled else MapiEwsChangeKind.DISABLED,
        account=account_of(change.account, change.account.domain),
        actor=change.actor,
        occurred_at=change.occurred_at,
        usage=usage_of(change.usage),
        render_memo=memo,
    )


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


async def _follow(
    bus: EventBus, domain_id: int, topic: Topic, convert: Callable[[P, dict[Any, Any]], T]
) -> AsyncGenerator[T, None]:
    async with bus.subscribe(topic, domain_id) as events:
        async for event in events:
            yield shared(event, convert)


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="Every MAPI/EWS login reported in a domain, allowed or refused, as it "
        "happens, from any server process.",
    )
    async def mapi_ews_login_updates(
        self, info: Info, domain: str | None = None
    ) -> AsyncGenerator[MapiEwsLoginEvent, None]:
        events = follow(info, Topic.LOGINS, login_event_reported)
        del info  # not kept while the subscription lasts (follow)
        async for event in events:
            yield event

    @strawberry.subscription(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="Every enable and disable in a domain, as it happens, from any server process.",
    )
    async def mapi_ews_account_changes(
        self, info: Info, domain: str | None = None
    ) -> AsyncGenerator[MapiEwsAccountChange, None]:
        changes = follow(info, Topic.ACCOUNT_CHANGES, change_reported)
        del info  # not kept while the subscription lasts (follow)
        async for change in changes:
            yield change
