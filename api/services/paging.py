"""Keyset (cursor) paging in SQL: LIMIT n+1 for the page, one COUNT for totalCount if selected.

Rows are ordered by one column and then by id, both in the requested direction; rows whose
column is NULL always come last, ordered by id. A cursor names the row's column value and id, so
pages stay stable while rows are added and removed elsewhere in the list. Every read follows an
index (domain, enabled, column, id) in plain order; no expression sorts.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import orjson
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from api.errors import BadUserInput

M = TypeVar("M", bound=Model)


class Keyed(Protocol):
    """A row a page holds: a model, or a lighter row read from the same columns."""

    @property
    def pk(self) -> Any: ...


R = TypeVar("R", bound=Keyed)

Bind = Callable[[Any], Any]
"""The term a value takes in a statement: the value itself (`as_is`), or a parameter standing for
it (api/services/statements.py)."""


def as_is(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Listing(Generic[M]):
    """The rows a list pages through: `build(bind)` is their QuerySet, every value it filters on
    passed through `bind`. `shape` names everything else their SQL depends on; with one, each of a
    page's statements is built once per shape and then run with each request's values
    (api/services/statements.py). A plain QuerySet is a listing without a shape."""

    build: Callable[[Bind], QuerySet[M]]
    shape: Hashable | None = None


@dataclass(frozen=True, slots=True)
class Read(Generic[M]):
    """One statement of a page: `build(bind)` its rows in reading order, without the limit;
    `shape` what its SQL depends on besides its values (None when its listing names none)."""

    build: Callable[[Bind], QuerySet[M]]
    shape: Hashable | None
    limit: int

    def queryset(self) -> QuerySet[M]:
        """The statement as Tortoise runs it, values in place."""
        return self.build(as_is).limit(self.limit)


Fetch = Callable[[Read[M]], Awaitable[list[R]]]
"""Runs one of a page's statements to its rows (models, with `as_models`)."""


@dataclass(frozen=True, slots=True)
class SortSpec:
    """Order by `column` (then id); `nullable` columns put their NULLs last.

    `path` is where queries read the column when an index of another table serves the order
    (e.g. "recency__last_login"); cursors and rows still name it `column`.
    """

    column: str
    descending: bool = False
    nullable: bool = False
    is_datetime: bool = False
    path: str | None = None

    @property
    def queried(self) -> str:
        return self.path or self.column


@dataclass(frozen=True, slots=True)
class PageRequest:
    first: int | None = None
    after: str | None = None
    last: int | None = None
    before: str | None = None


@dataclass(frozen=True, slots=True)
class Window(Generic[R]):
    """The rows of one page and where it sits, without the list's total."""

    items: list[R]
    cursors: list[str]
    has_next_page: bool
    has_previous_page: bool


Counter = Callable[[], Awaitable[int]]
"""Counts a whole list (totalCount); called only when a client selects that."""


@dataclass(frozen=True, slots=True)
class Page(Window[R]):
    """A window and how to count the whole list, which costs nothing until called."""

    count: Counter


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
    if spec.column == "id":
        value = None  # the id is already there
    elif isinstance(value, datetime):
        value = value.isoformat()
    raw = orjson.dumps([spec.column, value, row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(spec: SortSpec, cursor: str) -> tuple[Any, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        column, value, row_id = orjson.loads(base64.urlsafe_b64decode(padded))
        if column != spec.column or type(row_id) is not int:
            raise ValueError("cursor of another ordering")
        return _cursor_value(spec, value), row_id
    except (ValueError, TypeError, binascii.Error, orjson.JSONDecodeError):
        raise BadUserInput("The cursor is not valid for this list and ordering.") from None


def _cursor_value(spec: SortSpec, value: Any) -> Any:
    """The cursor's sort value, of exactly the column's type (it reaches SQL as a parameter)."""
    if value is None and (spec.nullable or spec.column == "id"):
        return None
    if spec.column == "id":
        raise ValueError("an id cursor carries no value")
    if spec.is_datetime and isinstance(value, str):
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("a cursor's time has an offset")
        return moment
    if not spec.is_datetime and isinstance(value, str):
        return value
    raise ValueError("unexpected cursor value")


def _q(**conditions: Any) -> Q:
    return Q(**conditions)


def _beyond(spec: SortSpec, value: Any, row_id: int, *, ascending: bool, bind: Bind) -> Q:
    """Rows after the cursor row within its group, reading in the given direction. Its shape
    depends on the spec and on whether `value` is None, nothing else."""
    op = "gt" if ascending else "lt"
    if spec.column == "id":
        return _q(**{f"id__{op}": bind(row_id)})
    if value is None:  # the cursor row is in the NULL group, ordered by id alone
        return _q(**{f"id__{op}": bind(row_id)})
    column = spec.queried
    return _q(**{f"{column}__{op}": bind(value)}) | _q(
        **{column: bind(value), f"id__{op}": bind(row_id)}
    )


def _in_order(queryset: QuerySet[M], column: str, *, ascending: bool) -> QuerySet[M]:
    sign = "" if ascending else "-"
    if column == "id":
        return queryset.order_by(f"{sign}id")
    return queryset.order_by(f"{sign}{column}", f"{sign}id")


async def as_models(read: Read[M]) -> list[M]:
    """A page's statement read as models: what most lists want."""
    return list(await read.queryset())


def _listing(source: QuerySet[M] | Listing[M]) -> Listing[M]:
    if isinstance(source, Listing):
        return source
    return Listing(lambda _: source)


def _statement(
    listing: Listing[M],
    spec: SortSpec,
    *,
    ascending: bool,
    null_group: bool | None,
    after: tuple[Any, int] | None,
    limit: int,
) -> Read[M]:
    """The read of the rows after `after` (None: from the start), in the NULL group, the other
    one, or both (`null_group` None), in index order."""
    order = "id" if null_group else spec.queried

    def build(bind: Bind) -> QuerySet[M]:
        query = listing.build(bind)
        if null_group is not None:
            query = query.filter(_q(**{f"{spec.queried}__isnull": null_group}))
        if after is not None:
            query = query.filter(_beyond(spec, *after, ascending=ascending, bind=bind))
        return _in_order(query, order, ascending=ascending)

    shape = None
    if listing.shape is not None:
        cursor_shape = None if after is None else after[0] is None
        shape = (listing.shape, spec, ascending, null_group, cursor_shape)
    return Read(build, shape, limit)


async def _read(
    listing: Listing[M],
    spec: SortSpec,
    cursor: tuple[Any, int] | None,
    *,
    forwards: bool,
    want: int,
    fetch: Fetch[M, R],
) -> list[R]:
    """Up to `want` rows after `cursor` in reading order.

    A nullable column is read in two groups, non-NULL then NULL (reversed when reading backwards),
    each in plain index order: a page costs one statement, or two when it spans both groups.
    """
    ascending = spec.descending is not forwards
    if not spec.nullable:
        return await fetch(
            _statement(
                listing, spec, ascending=ascending, null_group=None, after=cursor, limit=want
            )
        )
    groups = [False, True] if forwards else [True, False]  # is the group the NULL one?
    if cursor is not None:
        groups = groups[groups.index(cursor[0] is None) :]
    rows: list[R] = []
    for null_group in groups:
        after = cursor if cursor is not None and (cursor[0] is None) is null_group else None
        rows += await fetch(
            _statement(
                listing,
                spec,
                ascending=ascending,
                null_group=null_group,
                after=after,
                limit=want - len(rows),
            )
        )
        if len(rows) >= want:
            break
    return rows


async def window(
    source: QuerySet[M] | Listing[M],
    fetch: Fetch[M, R],
    *,
    spec: SortSpec,
    request: PageRequest,
    default_size: int,
    max_size: int,
    value_of: Callable[[R], Any] | None = None,
) -> Window[R]:
    """One page of `source` in `spec` order: its one or two reads, whatever the page size,
    each run by `fetch` (`as_models`, or rows lighter than models)."""
    size, backwards = page_size(request, default=default_size, maximum=max_size)
    given = request.before if backwards else request.after
    cursor = decode_cursor(spec, given) if given is not None else None
    listing = _listing(source)
    rows = await _read(listing, spec, cursor, forwards=not backwards, want=size + 1, fetch=fetch)
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    get = value_of or (lambda row: getattr(row, spec.column))
    cursors = [encode_cursor(spec, get(row), row.pk) for row in rows]
    if backwards:
        return Window(rows, cursors, request.before is not None, more)
    return Window(rows, cursors, more, request.after is not None)


async def paginate(
    source: QuerySet[M] | Listing[M],
    fetch: Fetch[M, R],
    *,
    spec: SortSpec,
    request: PageRequest,
    default_size: int,
    max_size: int,
    value_of: Callable[[R], Any] | None = None,
    count: Counter | None = None,
) -> Page[R]:
    """The window, and a COUNT of the whole list (or `count`, where the list's size is kept
    elsewhere) that runs only if totalCount is asked for."""
    listing = _listing(source)
    rows = await window(
        listing,
        fetch,
        spec=spec,
        request=request,
        default_size=default_size,
        max_size=max_size,
        value_of=value_of,
    )

    async def count_all() -> int:
        return await listing.build(as_is).count()

    return Page(
        rows.items, rows.cursors, rows.has_next_page, rows.has_previous_page, count or count_all
    )
