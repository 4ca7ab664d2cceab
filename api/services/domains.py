"""Domains: creation, settings, the MAPI/EWS allowance and its use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Final

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from api.errors import UserError, UserErrorCode, UserErrors
from api.models import Account, AuditAction, Domain
from api.services import audit, validation
from api.services.paging import Page, PageRequest, SortSpec, paginate


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
) -> Domain:
    normal = _valid_name(name)
    if problems := _check_limit(max_mapi_ews_accounts) + _check_idle_days(
        mapi_ews_idle_reclaim_days
    ):
        raise UserErrors(problems)
    exists = UserErrors(
        [UserError(UserErrorCode.ALREADY_EXISTS, f"{normal} already exists.", ("input", "name"))]
    )
    if await Domain.exists(name=normal):
        raise exists
    try:
        async with in_transaction() as conn:
            domain = await Domain.create(
                name=normal,
                max_mapi_ews_accounts=max_mapi_ews_accounts,
                mapi_ews_account_management=mapi_ews_account_management,
                mapi_ews_idle_reclaim_days=mapi_ews_idle_reclaim_days,
                using_db=conn,
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
    return domain


async def update_domain(
    *,
    actor: str,
    name: str,
    max_mapi_ews_accounts: int | _Keep | None = KEEP,
    mapi_ews_account_management: bool | _Keep = KEEP,
    mapi_ews_idle_reclaim_days: int | _Keep | None = KEEP,
) -> Domain:
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
    async with in_transaction() as conn:
        domain = await Domain.filter(name=normal).using_db(conn).select_for_update().first()
        if domain is None:
            raise UserErrors(
                [UserError(UserErrorCode.NOT_FOUND, f"No domain {normal}.", ("input", "name"))]
            )
        if any(getattr(domain, key) != value for key, value in changes.items()):
            domain.update_from_dict(changes)
            await domain.save(using_db=conn, update_fields=list(changes))
            await audit.record(
                conn=conn,
                actor=actor,
                action=AuditAction.DOMAIN_UPDATED,
                domain_id=domain.id,
                targets=[normal],
            )
    return domain


async def get_domain(*, domain_id: int) -> Domain | None:
    return await Domain.filter(id=domain_id).first()


async def list_domains(
    *, search: str | None, request: PageRequest, default_size: int, max_size: int
) -> Page[Domain]:
    queryset = Domain.all()
    if text := validation.search_argument(search):
        queryset = queryset.filter(name__icontains=text)
    return await paginate(
        queryset,
        spec=SortSpec(column="name"),
        request=request,
        default_size=default_size,
        max_size=max_size,
    )


async def enabled_counts(*, domain_ids: Sequence[int]) -> list[int]:
    """How many accounts have MAPI/EWS in each domain, in the order given: one grouped COUNT."""
    rows = (
        await Account.filter(domain_id__in=list(domain_ids), mapi_ews_enabled=True)
        .annotate(enabled=Count("id"))
        .group_by("domain_id")
        .values_list("domain_id", "enabled")
    )
    counts = {int(domain_id): int(enabled) for domain_id, enabled in rows}
    return [counts.get(domain_id, 0) for domain_id in domain_ids]


async def usage_of(*, domain_id: int) -> Usage:
    """Usage of the domain with this id; it was just resolved, so it exists unless deleted since."""
    domain = await Domain.get(id=domain_id)
    enabled = await Account.filter(domain_id=domain.id, mapi_ews_enabled=True).count()
    return Usage(domain=domain.name, enabled=enabled, limit=domain.max_mapi_ews_accounts)
