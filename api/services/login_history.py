"""The login history: a domain's events newest first, counted when asked, pruned by age
(on PostgreSQL a day at a time: api/services/login_partitions.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.expressions import Q, Subquery
from tortoise.queryset import QuerySet

from api.models import Account, LoginEvent
from api.services import client_rollup, connected, login_partitions, validation
from api.services.accounts import search_filter
from api.services.paging import PageRequest, SortSpec, Window, as_models, window
from api.services.tenancy import Tenant

_NEWEST_FIRST = SortSpec(column="occurred_at", descending=True, is_datetime=True)
_PRUNE_BATCH = 5000


def _history(
    tenant: Tenant, username: str | None, search: str | None = None
) -> QuerySet[LoginEvent]:
    queryset = LoginEvent.filter(domain_id=tenant.domain_id)
    if (name := validation.username_argument(username, tenant.domain)) is not None:
        queryset = queryset.filter(username=name)
    if (text := validation.search_argument(search)) is not None:
        # As the accounts' search: the username, or the account's name as it stands now (a
        # removed account's events keep only their username).
        named = Account.filter(domain_id=tenant.domain_id).filter(
            search_filter(text, tenant.domain)
        )
        queryset = queryset.filter(
            Q(username__icontains=text.partition("@")[0] if "@" in text else text)
            | Q(account_id__in=Subquery(named.values("id")))
        )
    return queryset


async def login_events(
    *,
    tenant: Tenant,
    username: str | None,
    request: PageRequest,
    default_size: int,
    max_size: int,
    count_sessions: bool = False,
    search: str | None = None,
) -> tuple[Window[LoginEvent], dict[int, Account], dict[int, int]]:
    """A page of the domain's login events, newest first, the accounts they name as they stand
    now and, with `count_sessions`, those accounts' open sessions: two or three reads, whatever
    the page size. The total is counted apart, only when asked for (count_login_events): a busy
    domain's history is long."""
    page = await window(
        _history(tenant, username, search),
        as_models,
        spec=_NEWEST_FIRST,
        request=request,
        default_size=default_size,
        max_size=max_size,
    )
    ids = {row.account_id for row in page.items if row.account_id is not None}
    accounts = {a.id: a for a in await Account.filter(id__in=ids)} if ids else {}
    sessions = await connected.open_counts(accounts) if count_sessions else {}
    return page, accounts, sessions


async def count_login_events(
    *, tenant: Tenant, username: str | None, search: str | None = None
) -> int:
    return await _history(tenant, username, search).count()


@dataclass(frozen=True, slots=True)
class Pruned:
    # Rows deleted in batches: SQLite's, and on PostgreSQL the default partition's.
    deleted: int
    # Whole days dropped (PostgreSQL's partitions).
    dropped: list[login_partitions.Dropped]


async def prune_login_events(*, older_than: timedelta, now: datetime | None = None) -> Pruned:
    """Remove login events older than `older_than`. On PostgreSQL a day goes whole, as one
    partition dropped, once all of it is past the cutoff (so a day's events are kept up to a day
    longer), and only the default partition's rows are deleted one by one; the daily maintenance
    also creates the coming days' partitions. On SQLite rows are deleted in batches that keep
    each lock short."""
    moment = now or datetime.now(UTC)
    cutoff = moment - older_than
    if not login_partitions.partitioned():
        return Pruned(await _delete_before(cutoff), [])
    # The clients' roll-up forgets these days before their events go (so it never counts what
    # is gone) and again after (in case it rolled up the cutoff's day meanwhile).
    await client_rollup.forget_through(cutoff.date())
    dropped = await login_partitions.drop_before(cutoff)
    await login_partitions.create_ahead(moment.date())
    deleted = await login_partitions.delete_default_before(cutoff, _PRUNE_BATCH)
    await client_rollup.forget_through(cutoff.date())
    return Pruned(deleted, dropped)


async def _delete_before(cutoff: datetime) -> int:
    deleted = 0
    while True:
        ids = (
            await LoginEvent.filter(occurred_at__lt=cutoff)
            .limit(_PRUNE_BATCH)
            .values_list("id", flat=True)
        )
        if not ids:
            return deleted
        deleted += await LoginEvent.filter(id__in=list(ids)).delete()
