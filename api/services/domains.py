"""Domains: creation, settings, the MAPI/EWS allowance and its use."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Final

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from api.db import connection, is_sqlite, parameter_mark
from api.errors import UserError, UserErrorCode, UserErrors
from api.events import EVERY_DOMAIN, Event, EventBus, Topic
from api.models import Account, AuditAction, Domain
from api.services import audit, usage, validation
from api.services.paging import Page, PageRequest, SortSpec, as_models, paginate


class _Keep(Enum):
    KEEP = "keep"


KEEP: Final = _Keep.KEEP
"""An update argument that leaves the stored value as it is."""


@dataclass(frozen=True, slots=True)
class Usage:
    domain: str
    enabled: int
    limit: int | None

    @property
    def available(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.enabled, 0)


def usage_events(domain_id: int, used: Usage) -> list[Event]:
    """A domain's new usage, for its dashboards and for the consoles that follow every domain."""
    return [Event(Topic.USAGE, domain_id, used), Event(Topic.USAGE, EVERY_DOMAIN, used)]


async def lock_domain(conn: BaseDBAsyncClient, domain_id: int) -> Domain:
    """Serialise every change of the domain's MAPI/EWS set behind its row.

    PostgreSQL: SELECT ... FOR NO KEY UPDATE, which serialises these changes without blocking
    accounts being created in the domain meanwhile. SQLite has no row locks and Tortoise's
    transactions begin DEFERRED, so a no-op write takes the database's write lock before anything
    is read; across processes sharing the file the second writer waits (busy timeout) instead of
    reading stale counts.
    """
    query = Domain.filter(id=domain_id).using_db(conn)
    if is_sqlite(conn):
        await query.update(max_mapi_ews_accounts=F("max_mapi_ews_accounts"))
    domain = await query.select_for_update(no_key=True).get()
    return domain


async def count_enabled(conn: BaseDBAsyncClient, domain_id: int, delta: int) -> None:
    """Move the domain's MAPI/EWS count (Domain.mapi_ews_enabled_count) by `delta`, inside the
    transaction that changes that many accounts, which holds the domain's lock."""
    if delta:
        await (
            Domain.filter(id=domain_id)
            .using_db(conn)
            .update(mapi_ews_enabled_count=F("mapi_ews_enabled_count") + delta)
        )


@dataclass(frozen=True, slots=True)
class Recounted:
    domain: str
    kept: int
    counted: int


async def repair_enabled_counts() -> list[Recounted]:
    """Every domain's MAPI/EWS count set to a COUNT of its accounts, each under the domain's lock
    (changes through the API wait meanwhile): for after a bulk import that wrote accounts directly.
    Returns the domains whose count was wrong."""
    repaired = []
    for listed in await Domain.all().order_by("name").only("id"):
        async with in_transaction("default") as conn:
            domain = await lock_domain(conn, listed.id)
            counted = (
                await Account.filter(domain_id=domain.id, mapi_ews_enabled=True)
                .using_db(conn)
                .count()
            )
            if counted != domain.mapi_ews_enabled_count:
                await count_enabled(conn, domain.id, counted - domain.mapi_ews_enabled_count)
                repaired.append(Recounted(domain.name, domain.mapi_ews_enabled_count, counted))
    return repaired


def _check_limit(value: int | None) -> list[UserError]:
    if value is not None and value < 0:
        return [
            UserError(
                UserErrorCode.INVALID_INPUT,
                "maxMapiEwsAccounts must be 0 or more, or null for no limit.",
                ("input", "maxMapiEwsAccounts"),
            )
        ]
    return []


def _check_idle_days(value: int | None) -> list[UserError]:
    try:
        if value is not None:
            validation.idle_days(value)
    except ValueError as error:
        return [
            UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", "mapiEwsIdleReclaimDays"))
        ]
    return []


def _valid_name(value: str) -> str:
    try:
        return validation.domain_name(value)
    except ValueError as error:
        raise UserErrors(
            [UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", "name"))]
        ) from None


async def create_domain(
    *,
    actor: str,
    name: str,
    max_mapi_ews_accounts: int | None,
    mapi_ews_account_management: bool,
    mapi_ews_idle_reclaim_days: int | None = None,
    events: EventBus | None = None,
) -> Domain:
    """A new domain (or a removed one back); once committed, the consoles that follow every
    domain hear of it."""
    normal = _valid_name(name)
    if problems := _check_limit(max_mapi_ews_accounts) + _check_idle_days(
        mapi_ews_idle_reclaim_days
    ):
        raise UserErrors(problems)
    exists = UserErrors(
        [UserError(UserErrorCode.ALREADY_EXISTS, f"{normal} already exists.", ("input", "name"))]
    )
    settings = {
        "max_mapi_ews_accounts": max_mapi_ews_accounts,
        "mapi_ews_account_management": mapi_ews_account_management,
        "mapi_ews_idle_reclaim_days": mapi_ews_idle_reclaim_days,
    }
    known = await Domain.filter(name=normal).only("id", "removed_at").first()
    if known is not None and known.removed_at is None:
        raise exists
    try:
        async with in_transaction("default") as conn:
            if known is None:
                domain = await Domain.create(name=normal, **settings, using_db=conn)
            else:
                # A removed domain comes back: its row, billing history and audit with it.
                domain = await lock_domain(conn, known.id)
                if domain.removed_at is None:
                    raise exists  # brought back by a racing request since the check above
                domain.update_from_dict({**settings, "removed_at": None})
                await domain.save(using_db=conn, update_fields=[*settings, "removed_at"])
            await usage.record(
                conn,
                domain_id=domain.id,
                before=0,
                after=0,
                allowance=max_mapi_ews_accounts,
                at=datetime.now(UTC),
            )
            await audit.record(
                conn=conn,
                actor=actor,
                action=AuditAction.DOMAIN_CREATED,
                domain_id=domain.id,
                targets=[normal],
            )
    except IntegrityError:
        raise exists from None  # created by a racing request since the check above
    if events is not None:
        used = Usage(
            domain=normal, enabled=domain.mapi_ews_enabled_count, limit=max_mapi_ews_accounts
        )
        await events.publish([Event(Topic.USAGE, EVERY_DOMAIN, used)])
    return domain


async def update_domain(
    *,
    actor: str,
    name: str,
    max_mapi_ews_accounts: int | _Keep | None = KEEP,
    mapi_ews_account_management: bool | _Keep = KEEP,
    mapi_ews_idle_reclaim_days: int | _Keep | None = KEEP,
    events: EventBus | None = None,
) -> Domain:
    """Change what is named; once committed, a new limit is published as the domain's usage,
    and any change to the consoles that follow every domain."""
    normal = _valid_name(name)
    problems = []
    if max_mapi_ews_accounts is not KEEP:
        problems += _check_limit(max_mapi_ews_accounts)
    if mapi_ews_idle_reclaim_days is not KEEP:
        problems += _check_idle_days(mapi_ews_idle_reclaim_days)
    if problems:
        raise UserErrors(problems)
    changes: dict[str, object] = {}
    if max_mapi_ews_accounts is not KEEP:
        changes["max_mapi_ews_accounts"] = max_mapi_ews_accounts
    if mapi_ews_account_management is not KEEP:
        changes["mapi_ews_account_management"] = mapi_ews_account_management
    if mapi_ews_idle_reclaim_days is not KEEP:
        changes["mapi_ews_idle_reclaim_days"] = mapi_ews_idle_reclaim_days
    new_limit: Usage | None = None
    changed: set[str] = set()
    async with in_transaction("default") as conn:
        found = await Domain.filter(name=normal, removed_at=None).using_db(conn).only("id").first()
        if found is None:
            raise UserErrors(
                [UserError(UserErrorCode.NOT_FOUND, f"No domain {normal}.", ("input", "name"))]
            )
        # The lock every change of the domain's MAPI/EWS set takes: the day's use is written
        # with the count as it stands.
        domain = await lock_domain(conn, found.id)
        changed = {key for key, value in changes.items() if getattr(domain, key) != value}
        if changed:
            domain.update_from_dict(changes)
            await domain.save(using_db=conn, update_fields=list(changes))
            await audit.record(
                conn=conn,
                actor=actor,
                action=AuditAction.DOMAIN_UPDATED,
                domain_id=domain.id,
                targets=[normal],
            )
        if "max_mapi_ews_accounts" in changed:
            enabled = domain.mapi_ews_enabled_count
            await usage.record(
                conn,
                domain_id=domain.id,
                before=enabled,
                after=enabled,
                allowance=domain.max_mapi_ews_accounts,
                at=datetime.now(UTC),
            )
            new_limit = Usage(domain=normal, enabled=enabled, limit=domain.max_mapi_ews_accounts)
    if events is not None and new_limit is not None:
        await events.publish(usage_events(domain.id, new_limit))
    elif events is not None and changed:
        used = Usage(normal, domain.mapi_ews_enabled_count, domain.max_mapi_ews_accounts)
        await events.publish([Event(Topic.USAGE, EVERY_DOMAIN, used)])
    return domain


async def get_domain(*, domain_id: int) -> Domain | None:
    return await Domain.filter(id=domain_id, removed_at=None).first()


async def list_domains(
    *, search: str | None, request: PageRequest, default_size: int, max_size: int
) -> Page[Domain]:
    queryset = Domain.filter(removed_at=None)
    if text := validation.search_argument(search):
        queryset = queryset.filter(name__icontains=text)
    return await paginate(
        queryset,
        as_models,
        spec=SortSpec(column="name"),
        request=request,
        default_size=default_size,
        max_size=max_size,
    )


_KEPT_COUNT = "SELECT mapi_ews_enabled_count FROM domain WHERE id = {}"


async def enabled_count(*, domain_id: int) -> int:
    """The domain's MAPI/EWS accounts, as its row keeps them (0 for a domain since deleted).

    Every page of the tab asks this for its totalCount: one column of one row, read as a fixed
    statement (building it through a QuerySet and a model cost twice the read itself)."""
    conn = connection()
    statement = _KEPT_COUNT.format(f"{parameter_mark(conn)}1")
    _, rows = await conn.execute_query(statement, [domain_id])
    return int(rows[0][0]) if rows else 0


async def usage_of(*, domain_id: int) -> Usage:
    """Usage of the domain with this id; it was just resolved, so it exists unless deleted since."""
    domain = await Domain.get(id=domain_id)
    return Usage(
        domain=domain.name,
        enabled=domain.mapi_ews_enabled_count,
        limit=domain.max_mapi_ews_accounts,
    )
