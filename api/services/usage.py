"""MAPI/EWS use over time: each UTC day's peak and end, per domain, exact however many changes a
day saw, and the monthly figures a host bills from.

Every change of a domain's MAPI/EWS set (enable, disable, reclaim), of its limit, and its
creation writes the day's row in its own transaction, under the domain's lock it already holds
(`record`): the peak is the most accounts enabled at any moment of the day, since the count
only moves at a change and each change sees the count before and after it. Reading carries the
previous day's end forward over days without a row; days before the domain existed count 0.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.functions import Max
from tortoise.queryset import QuerySet

from api.db import is_sqlite
from api.errors import BadUserInput
from api.models import Domain, UsageDay
from api.services.paging import Page, PageRequest, SortSpec, Window, as_models, paginate, window

MAX_DAYS = 366
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_UPSERT = (
    "INSERT INTO mapi_ews_usage_day (domain_id, day, peak_enabled, enabled_at_end, allowance) "
    "VALUES ({p}1, {p}2, {p}3, {p}4, {p}5) ON CONFLICT (domain_id, day) DO UPDATE SET "
    "peak_enabled = {greatest}(mapi_ews_usage_day.peak_enabled, EXCLUDED.peak_enabled), "
    "enabled_at_end = EXCLUDED.enabled_at_end, allowance = EXCLUDED.allowance"
)
_PG_UPSERT = _UPSERT.format(p="$", greatest="GREATEST")
_SQLITE_UPSERT = _UPSERT.format(p="?", greatest="max")


async def record(
    conn: BaseDBAsyncClient,
    *,
    domain_id: int,
    before: int,
    after: int,
    allowance: int | None,
    at: datetime,
) -> None:
    """Inside a change's transaction, under its domain's lock: the day of `at` saw the count go
    from `before` to `after`, with `allowance` the limit after the change."""
    values = [domain_id, at.astimezone(UTC).date(), max(before, after), after, allowance]
    await conn.execute_query(_SQLITE_UPSERT if is_sqlite(conn) else _PG_UPSERT, values)


@dataclass(frozen=True, slots=True)
class DayUse:
    day: date
    peak_enabled: int
    enabled_at_end: int
    allowance: int | None


def _carry(
    rows: Iterable[UsageDay], start: date, end: date, opening: DayUse | None
) -> list[DayUse]:
    """Each day from start to end, rows where there are, the previous day's end elsewhere."""
    by_day = {row.day: row for row in rows}
    days, current = [], opening
    day = start
    while day <= end:
        row = by_day.get(day)
        if row is not None:
            current = DayUse(day, row.peak_enabled, row.enabled_at_end, row.allowance)
        elif current is not None:
            current = DayUse(day, current.enabled_at_end, current.enabled_at_end, current.allowance)
        days.append(current or DayUse(day, 0, 0, None))
        day += timedelta(days=1)
    return days


async def _opening(domain_id: int, before: date) -> DayUse | None:
    """The domain's use as the last day before `before` ended; None if it had none yet."""
    row = await UsageDay.filter(domain_id=domain_id, day__lt=before).order_by("-day").first()
    return (
        None
        if row is None
        else DayUse(row.day, row.enabled_at_end, row.enabled_at_end, row.allowance)
    )


def _date(value: date | str) -> date:
    """An aggregate's date (SQLite returns its text)."""
    return value if isinstance(value, date) else date.fromisoformat(value)


def today() -> date:
    return datetime.now(UTC).date()


async def history(*, domain_id: int, start: date, end: date) -> list[DayUse]:
    """Each UTC day from `start` to `end` (at most 366, none after today) of the domain's use."""
    if start > end:
        raise BadUserInput("`from` must not be after `to`.")
    if (end - start).days + 1 > MAX_DAYS:
        raise BadUserInput(f"At most {MAX_DAYS} days at once.")
    end = min(end, today())
    if start > end:
        return []
    rows = await UsageDay.filter(domain_id=domain_id, day__gte=start, day__lte=end)
    return _carry(rows, start, end, await _opening(domain_id, start))


def parse_month(value: str) -> tuple[date, date]:
    """The first and last day of a month written YYYY-MM, this month or one before it."""
    match = _MONTH.fullmatch(value.strip())
    if match is None or not 1 <= int(match.group(2)) <= 12:
        raise BadUserInput(f"{value[:20]!r} is not a month: write it YYYY-MM, e.g. 2026-11.")
    first = date(int(match.group(1)), int(match.group(2)), 1)
    now = datetime.now(UTC).date()
    if first > now.replace(day=1):
        raise BadUserInput(
            f"{first:%Y-%m} has not begun: the report covers months up to the current one "
            f"({now:%Y-%m}), which it gives so far."
        )
    following = date(first.year + first.month // 12, first.month % 12 + 1, 1)
    return first, following - timedelta(days=1)


@dataclass(frozen=True, slots=True)
class MonthUse:
    domain: str
    month: str
    peak_enabled: int
    enabled_at_end: int
    allowance: int | None


async def month_of(domains: Sequence[Domain], month: str) -> list[MonthUse]:
    """Each domain's peak and end over the month, in the order given: three reads whatever the
    number of domains (the month's peaks, its last rows, and the days before it)."""
    first, last = parse_month(month)
    last = min(last, max(first, today()))
    ids = [domain.id for domain in domains]
    if not ids:
        return []
    in_month = UsageDay.filter(domain_id__in=ids, day__gte=first, day__lte=last)
    peaks = dict(
        await in_month.group_by("domain_id")
        .annotate(peak=Max("peak_enabled"))
        .values_list("domain_id", "peak")
    )
    ends = {row.domain_id: row for row in await _last_rows(ids, first=first, last=last)}
    openings = {
        row.domain_id: row
        for row in await _last_rows(ids, first=None, last=first - timedelta(days=1))
    }
    used = []
    for domain in domains:
        opening, end = openings.get(domain.id), ends.get(domain.id)
        start_count = opening.enabled_at_end if opening else 0
        closing = end or opening
        used.append(
            MonthUse(
                domain=domain.name,
                month=month.strip(),
                peak_enabled=max(start_count, int(peaks.get(domain.id) or 0)),
                enabled_at_end=closing.enabled_at_end if closing else 0,
                allowance=closing.allowance if closing else domain.max_mapi_ews_accounts,
            )
        )
    return used


async def _last_rows(ids: list[int], *, first: date | None, last: date) -> list[UsageDay]:
    """Each domain's latest row between `first` (None: ever) and `last`."""
    window = UsageDay.filter(domain_id__in=ids, day__lte=last)
    if first is not None:
        window = window.filter(day__gte=first)
    grouped = window.group_by("domain_id").annotate(latest=Max("day"))
    latest = {
        int(domain_id): _date(day)
        for domain_id, day in await grouped.values_list("domain_id", "latest")
    }
    if not latest:
        return []
    candidates = await UsageDay.filter(domain_id__in=list(latest), day__in=set(latest.values()))
    return [row for row in candidates if latest.get(row.domain_id) == row.day]


_BY_NAME = SortSpec(column="name")


def _existing_in(month: str) -> QuerySet[Domain]:
    """The domains created before the month ended and not removed before it began: a removed
    domain is billed for every month it existed in, its last one in part."""
    first, last = parse_month(month)
    before = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    began = datetime.combine(first, datetime.min.time(), tzinfo=UTC)
    return Domain.filter(
        Q(removed_at__isnull=True) | Q(removed_at__gte=began), created_at__lt=before
    )


async def report(
    *, month: str, request: PageRequest, default_size: int, max_size: int
) -> tuple[Page[Domain], list[MonthUse]]:
    """A page of the domains that existed in the month, by name, with their use over it and
    the number of such domains (totalCount)."""
    page = await paginate(
        _existing_in(month),
        as_models,
        spec=_BY_NAME,
        request=request,
        default_size=default_size,
        max_size=max_size,
    )
    return page, await month_of(page.items, month)


async def report_batch(
    *, month: str, after: str | None, size: int
) -> tuple[Window[Domain], list[MonthUse]]:
    """The next `size` domains of the report after the cursor `after`, without counting them
    all (the CSV reads every batch and needs no total)."""
    batch = await window(
        _existing_in(month),
        as_models,
        spec=_BY_NAME,
        request=PageRequest(first=size, after=after),
        default_size=size,
        max_size=size,
    )
    return batch, await month_of(batch.items, month)
