"""Tortoise ORM's private parts: building a model from a row a raw statement returned, the
model's columns and key range, and how its values() converts columns. Raw statements (a
gateway's report in one round trip, a page's statement built once) return rows that Tortoise's
public API cannot take; they are converted by Tortoise's own per-dialect rules, as its queries
do."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tortoise.fields import DatetimeField
from tortoise.models import Model

M = TypeVar("M", bound=Model)


def from_row(model: type[M], row: Mapping[str, Any]) -> M:
    """The model as Tortoise builds it from a row of its table (every column, by name)."""
    return model._init_from_db(**row)


def columns(model: type[Model]) -> set[str]:
    """The model's column names. Tortoise completes a model's metadata at init: call this
    then, not at import."""
    return set(model._meta.db_fields)


def time_columns(model: type[Model]) -> list[str]:
    """The model's DatetimeField columns, in its column order."""
    fields = model._meta.fields_map
    return [name for name in model._meta.db_fields if isinstance(fields.get(name), DatetimeField)]


def largest_key(model: type[Model]) -> int:
    """The largest primary key the model's column holds (int4 or int8)."""
    return int(model._meta.pk.constraints["le"])


def python_values(
    model: type[Model], names: tuple[str, ...]
) -> list[tuple[str, Callable[[Any], Any]]]:
    """The conversions Tortoise's `values()` applies to these plain columns of the model's rows:
    each field's `to_python_value`, except for the types its database returns as they are."""
    native = {field for _, field, _ in model._meta.db_native_fields}
    fields = model._meta.fields_map
    return [(name, fields[name].to_python_value) for name in names if name not in native]
