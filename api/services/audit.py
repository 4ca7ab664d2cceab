"""Writing and reading the audit log."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient

from api.models import AuditAction, AuditEntry
from api.services.paging import Page, PageRequest, SortSpec, paginate

_NEWEST_FIRST = SortSpec(column="id", descending=True)


async def record(
    *,
    conn: BaseDBAsyncClient,
    actor: str,
    action: AuditAction,
    domain_id: int | None,
    targets: Iterable[str | None],
    at: datetime | None = None,
) -> None:
    """One entry per target, inside the caller's transaction `conn`."""
    when = at or datetime.now(UTC)
    entries = [
        AuditEntry(occurred_at=when, actor=actor, action=action, domain_id=domain_id, target=t)
        for t in targets
    ]
    if entries:
        await AuditEntry.bulk_create(entries, using_db=conn)


async def entries(
    *, domain_id: int, request: PageRequest, default_size: int, max_size: int
) -> Page[AuditEntry]:
    return await paginate(
        AuditEntry.filter(domain_id=domain_id),
        spec=_NEWEST_FIRST,
        request=request,
        default_size=default_size,
        max_size=max_size,
    )
