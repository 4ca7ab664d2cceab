"""Input types built without Strawberry's generic conversion, where nothing needs converting.

graphql-core has already coerced every leaf of an input value by the time a resolver runs:
scalars are parsed (a DateTime is a datetime), enum values are the Python enum's members. For an
input type whose fields are such leaves, or lists of them, Strawberry's `convert_argument` still
walks each field, resolving its type annotation again on every request: on a gateway's report it
was a quarter of the Python time (README, Performance). `plain_input` gives such a type
Strawberry's own `from_input` hook, which maps the GraphQL names onto the class directly; any
field that is not a leaf is converted as Strawberry would (`InputContext.convert`). A test
builds every marked type both ways and compares the results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING
from typing import Any, TypeVar

from api.internals.strawberry_private import (
    InputContext,
    StrawberryList,
    StrawberryOptional,
    StrawberryType,
    has_enum_definition,
    is_scalar,
)

T = TypeVar("T", bound=type)
_BUILD = "__plain_input_build__"
# (GraphQL name, Python name, how to build the value: None when it is the value as it came)
Plan = tuple[dict[str, None], list[tuple[str, str, Callable[[Any, InputContext], Any] | None]]]


def _leaf(type_: StrawberryType | type, context: InputContext) -> bool:
    if isinstance(type_, StrawberryOptional):
        type_ = type_.of_type
    return is_scalar(type_, context.scalar_registry) or has_enum_definition(type_)


def _builder(
    type_: StrawberryType | type, graphql_name: str, context: InputContext
) -> Callable[[Any, InputContext], Any] | None:
    if _leaf(type_, context):
        return None
    inner = type_.of_type if isinstance(type_, StrawberryOptional) else type_
    if isinstance(inner, StrawberryList) and _leaf(inner.of_type, context):
        # A copy, as Strawberry makes: graphql-core hands every request the same default list.
        return lambda value, _: list(value)
    if isinstance(inner, StrawberryList) and hasattr(inner.of_type, _BUILD):
        # A list of plain inputs (a gateway's batch of reports): each built the same way.
        item: Any = inner.of_type
        build = getattr(item, _BUILD)
        return lambda value, ctx: [build(item, entry, ctx) for entry in value]
    return lambda value, ctx: ctx.convert(value, type_, graphql_name)


def _plan(cls: type, context: InputContext) -> Plan:
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    # As Strawberry does: a field without a default is None unless the value names it
    # (graphql-core has checked that required ones are there).
    defaults = {
        field.python_name: None
        for field in definition.fields
        if field.default_value is MISSING and field.default_factory is MISSING
    }
    fields = []
    for field in definition.fields:
        graphql_name = context.config.name_converter.from_field(field)
        builder = _builder(field.resolve_type(type_definition=definition), graphql_name, context)
        fields.append((graphql_name, field.python_name, builder))
    return defaults, fields


def plain_input(cls: T) -> T:
    """Mark a Strawberry input type to be built by name mapping (see the module's docstring)."""
    plans: dict[type, Plan] = {}

    def build(type_: type, value: Mapping[str, Any], context: InputContext) -> Any:
        plan = plans.get(type_)
        if plan is None:
            plan = plans[type_] = _plan(type_, context)
        defaults, fields = plan
        kwargs: dict[str, Any] = dict(defaults)
        for graphql_name, python_name, builder in fields:
            if graphql_name in value:
                given = value[graphql_name]
                kwargs[python_name] = (
                    given if builder is None or given is None else builder(given, context)
                )
        return type_(**kwargs)

    cls.__strawberry_definition__.from_input = build  # type: ignore[attr-defined]
    setattr(cls, _BUILD, build)
    return cls
