"""Keyset (cursor) paging in SQL: LIMIT n+1 for the page, one COUNT for totalCount.

Rows are ordered by one column and then by id, both in the requested direction; rows whose
column is NULL always come last. A cursor names the row's column value and id, so pages stay
stable while rows are added and removed elsewhere in the list.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from tortoise.expressions import Case, Q, When
from tortoise.models import Model
from tortoise.queryset import QuerySet

from api.errors import BadUserInput

M = TypeVar("M", bound=Model)

_NULLS = "_sort_is_null"


@dataclass(frozen=True, slots=True)
class SortSpec:
    """Order by `column` (then id); `nullable` columns put their NULLs last."""

    column: str
    descending: bool = False
    nullable: bool = False
    is_datetime: bool = False


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


@dataclass(frozen=True, slots=True)
class Page(Generic[M]):
    items: list[M]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool
    total_count: int


def page_size(request: PageRequest, *, default: int, maximum: int) -> tuple[int, bool]:
    """(size, backwards) for a request, refusing sizes outside 0..maximum."""
    if request.first is not None and request.last is not None:
        raise BadUserInput("Pass `first` or `last`, not both.")
    backwards = request.last is not None
    size = request.last if backwards else request.first
    if size is None:
        return default, False
    if size < 0 or size > maximum:
        argument = "last" if backwards else "first"
        raise BadUserInput(f"`{argument}` must be between 0 and {maximum}.")
    return size, backwards


def encode_cursor(spec: SortSpec, value: Any, row_id: int) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([spec.column, value, row_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(spec: SortSpec, cursor: str) -> tuple[Any, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        column, value, row_id = json.loads(base64.urlsafe_b64decode(padded))
        if column != spec.column or not isinstance(row_id, int):
            raise ValueError("cursor of another ordering")
        if value is not None and spec.is_datetime:
            value = datetime.fromisoformat(value)
        elif value is not None and not isinstance(value, str | int):
            raise ValueError("unexpected cursor value")
        return value, row_id
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise BadUserInput("The cursor is not valid for this list and ordering.") from None


def _q(**conditions: Any) -> Q:
    return Q(**conditions)


def _beyond(spec: SortSpec, value: Any, row_id: int, *, forwards: bool) -> Q:
    """Rows strictly after (forwards) or before the cursor row in the list's order."""
    ascending = spec.descending is not forwards
    op = "gt" if ascending else "lt"
    column = spec.column
    if column == "id":
        return _q(**{f"id__{op}": row_id})
    if not spec.nullable:
        return _q(**{f"{column}__{op}": value}) | _q(**{column: value, f"id__{op}": row_id})
    if value is None:
        # The cursor row is in the NULL group, which comes last.
        within = _q(**{f"{column}__isnull": True, f"id__{op}": row_id})
        return within if forwards else within | _q(**{f"{column}__isnull": False})
    within = _q(**{f"{column}__{op}": value}) | _q(**{column: value, f"id__{op}": row_id})
    if forwards:
        return within | _q(**{f"{column}__isnull": True})
    return within


def _ordered(queryset: QuerySet[M], spec: SortSpec, *, forwards: bool) -> QuerySet[M]:
    descending = spec.descending is forwards  # reading backwards reverses the order
    sign = "-" if descending else ""
    orderings = (
        [f"{sign}{spec.column}"] if spec.column == "id" else [f"{sign}{spec.column}", f"{sign}id"]
    )
    if spec.nullable:
        queryset = queryset.annotate(
            **{_NULLS: Case(When(**{f"{spec.column}__isnull": True}, then="1"), default="0")}
        )
        orderings.insert(0, _NULLS if forwards else f"-{_NULLS}")
    return queryset.order_by(*orderings)


async def paginate(
    queryset: QuerySet[M],
    *,
    spec: SortSpec,
    request: PageRequest,
    default_size: int,
    max_size: int,
    value_of: Callable[[M], Any] | None = None,
) -> Page[M]:
    """One page of `queryset` in `spec` order: exactly two SQL statements, whatever the size."""
    size, backwards = page_size(request, default=default_size, maximum=max_size)
    total = await queryset.count()
    cursor = request.before if backwards else request.after
    page_query = queryset
    if cursor is not None:
        value, row_id = decode_cursor(spec, cursor)
        page_query = page_query.filter(_beyond(spec, value, row_id, forwards=not backwards))
    rows = await _ordered(page_query, spec, forwards=not backwards).limit(size + 1)
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    get = value_of or (lambda row: getattr(row, spec.column))
    cursors = [encode_cursor(spec, get(row), row.pk) for row in rows]
    if backwards:
        return Page(rows, cursors, request.before is not None, more, total)
    return Page(rows, cursors, more, request.after is not None, total)
