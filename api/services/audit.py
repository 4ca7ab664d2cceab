"""Writing and reading the audit log."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q

from api.db import is_sqlite
from api.models import AuditAction, AuditEntry
from api.services.paging import Page, PageRequest, SortSpec, as_models, paginate

_NEWEST_FIRST = SortSpec(column="id", descending=True)
_INSERT_SQLITE = (
    "INSERT INTO audit_entry (occurred_at, actor, action, domain_id, target) VALUES (?, ?, ?, ?, ?)"
)
_INSERT_POSTGRES = (
    "INSERT INTO audit_entry (occurred_at, actor, action, domain_id, target) "
    "SELECT $1, $2, $3, $4, unnest($5::varchar[])"
)


async def record(
    *,
    conn: BaseDBAsyncClient,
    actor: str,
    action: AuditAction,
    domain_id: int | None,
    targets: Iterable[str | None],
    at: datetime | None = None,
) -> None:
    """One entry per target, inside the caller's transaction `conn`, in one statement (on
    PostgreSQL; one prepared statement run per entry on SQLite): a sync writes a million, and
    model objects for each cost more than the rows."""
    when = at or datetime.now(UTC)
    names = list(targets)
    if not names:
        return
    if is_sqlite(conn):
        await conn.execute_many(
            _INSERT_SQLITE,
            [[when, actor, action.value, domain_id, name] for name in names],
        )
    else:
        await conn.execute_query(
            _INSERT_POSTGRES,
            [when, actor, action.value, domain_id, names],
        )


async def entries(
    *,
    domain_id: int,
    request: PageRequest,
    default_size: int,
    max_size: int,
    action: AuditAction | None = None,
    search: str | None = None,
) -> Page[AuditEntry]:
    """A page of the domain's entries, newest first; of one action, and whose target or actor
    contains `search` (normalised, lower-case), when given."""
    queryset = AuditEntry.filter(domain_id=domain_id)
    if action is not None:
        queryset = queryset.filter(action=action)
    if search:
        queryset = queryset.filter(Q(target__icontains=search) | Q(actor__icontains=search))
    return await paginate(
        queryset,
        as_models,
        spec=_NEWEST_FIRST,
        request=request,
        default_size=default_size,
        max_size=max_size,
    )
