"""MAPI/EWS use over time: a domain's days, every domain's month (billing), and live usage."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import date
from typing import Annotated, Any

import strawberry

from api.auth.principal import Role
from api.events import Topic
from api.graphql.context import Info, tenant_of
from api.graphql.directives import auth
from api.graphql.streams import follow, follow_every_domain
from api.graphql.types import Connection, MapiEwsUsage, connection_of, usage_of
from api.services import domains, usage
from api.services.paging import PageRequest


@strawberry.type(description="One day (UTC) of a domain's MAPI/EWS allowance in use.")
class MapiEwsUsageDay:
    date: date
    peak_enabled: int = strawberry.field(
        description="Most accounts that had MAPI/EWS at any moment of the day."
    )
    enabled_at_end: int = strawberry.field(
        description="Accounts with MAPI/EWS at the end of the day (now, for today)."
    )
    limit: int | None = strawberry.field(
        description="The allowance at the end of the day; null: no limit."
    )


def day_of(day: usage.DayUse) -> MapiEwsUsageDay:
    return MapiEwsUsageDay(
        date=day.day,
        peak_enabled=day.peak_enabled,
        enabled_at_end=day.enabled_at_end,
        limit=day.allowance,
    )


@strawberry.type(
    description="A domain's MAPI/EWS use over one calendar month (UTC): what a host bills."
)
class MapiEwsMonthlyUsage:
    domain: str
    month: str = strawberry.field(description="YYYY-MM.")
    peak_enabled: int
    enabled_at_end: int
    limit: int | None


def month_of(used: usage.MonthUse) -> MapiEwsMonthlyUsage:
    return MapiEwsMonthlyUsage(
        domain=used.domain,
        month=used.month,
        peak_enabled=used.peak_enabled,
        enabled_at_end=used.enabled_at_end,
        limit=used.allowance,
    )


@strawberry.type
class UsageQuery:
    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="Each day from `from` to `to` (at most 366 days) of the domain's MAPI/EWS "
        "allowance in use.",
    )
    async def mapi_ews_usage_history(
        self,
        info: Info,
        from_: Annotated[date, strawberry.argument(name="from")],
        to: date,
        domain: str | None = None,
    ) -> list[MapiEwsUsageDay]:
        days = await usage.history(domain_id=tenant_of(info).domain_id, start=from_, end=to)
        return [day_of(day) for day in days]

    @strawberry.field(
        extensions=auth(Role.SYSTEM_ADMIN),
        description="Every domain's MAPI/EWS use in one month (YYYY-MM), by domain name: for "
        "billing. The same as CSV: GET /reports/mapi-ews-usage.csv?month=YYYY-MM with a system "
        "administrator's token.",
    )
    async def mapi_ews_usage_report(
        self, info: Info, month: str, first: int | None = None, after: str | None = None
    ) -> Connection[MapiEwsMonthlyUsage]:
        settings = info.context.settings
        page, used = await usage.report(
            month=month,
            request=PageRequest(first=first, after=after),
            default_size=settings.page_size_default,
            max_size=settings.page_size_max,
        )
        return connection_of(page, (month_of(item) for item in used), page.count)


def usage_reported(used: domains.Usage, _: dict[Any, Any]) -> MapiEwsUsage:
    return usage_of(used)


@strawberry.type
class UsageSubscription:
    @strawberry.subscription(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="The domain's usage whenever it changes: enables, disables and a new limit.",
    )
    async def mapi_ews_usage_updates(
        self, info: Info, domain: str | None = None
    ) -> AsyncGenerator[MapiEwsUsage, None]:
        updates = follow(info, Topic.USAGE, usage_reported)
        del info  # not kept while the subscription lasts (api.graphql.streams.follow)
        async for used in updates:
            yield used

    @strawberry.subscription(
        extensions=auth(Role.SYSTEM_ADMIN),
        description="Every domain's usage whenever it changes (enables, disables, a new limit) "
        "and each domain created, changed or removed (its usage as it was): what the system "
        "administrators' console follows, from any server process.",
    )
    async def mapi_ews_domain_usage_updates(self, info: Info) -> AsyncGenerator[MapiEwsUsage, None]:
        updates = follow_every_domain(info, Topic.USAGE, usage_reported)
        del info
        async for used in updates:
            yield used
