"""Tortoise ORM's private parts: building a model from a row a raw statement returned, and the
model's columns and key range. Raw statements (a gateway's report in one round trip) return
rows that Tortoise's public API cannot take; `_init_from_db` converts them by Tortoise's own
per-dialect rules, as its queries do."""

from __future__ import annotations

from collections.abc import Mapping
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
