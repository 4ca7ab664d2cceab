"""What an operation costs: a ceiling per operation, checked before anything runs, and the
requested cost that a caller's budget pays (api/transport/budget.py).

Every field costs 1 for each time it can be resolved: a field under a page of `first: 100`
costs 100. A page's size is its `first`/`last`, else the default page. A list that an argument
sizes counts that size (Shopify's and GitHub's rule): `nodes(ids:)` with 100 ids, 500 `reports`
or `usernames` (a mutation's lists in its answer: accounts, results, errors), the days from
`from` to `to`. Introspection counts what it returns: each of its lists counts the schema's own
average length for that list (types, their fields, a field's arguments, ...), which sums to the
schema's totals along `__schema { types { fields { args } } }`.

The ceiling is checked twice: as a validation rule, cached by query text, where a page given by
a variable counts as the largest page and a list given by a variable as empty; and on the
requested cost, the same sum with the request's variables read (a variable left out counts its
default, else the default page). The requested cost also adds up the `reports` and `usernames`
of every field of the operation, so aliases cannot carry more than one batch. Depth and alias
limits bound the shape; this bounds the work: thirty aliases of a 100-row page with ten fields
each cost over 30,000.

The actual cost, known after the operation ran, counts the fields of its answer, each item of a
list on its own: a page that came back half full costs about half. A caller never pays more than
the requested cost (api/transport/budget.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    SchemaMetaFieldDef,
    SelectionSetNode,
    StringValueNode,
    TypeMetaFieldDef,
    ValidationRule,
    ValueNode,
    VariableNode,
    get_named_type,
    is_list_type,
    is_non_null_type,
)

from api.transport.introspection_cost import exact_lengths, introspection_lists

_PAGE_ARGUMENTS = ("first", "last")
_NONE: Mapping[str, float] = {}
# Lists whose items one request may carry at most a batch of, summed over all its fields.
BATCHED = ("reports", "usernames")
# A range of days (mapiEwsUsageHistory): at most this many are answered.
MAX_DAYS = 366


@dataclass(slots=True)
class Measure:
    """An operation's cost, and how many items of each batched list it carries, with how many
    fields carry them."""

    cost: int
    batched: dict[str, tuple[int, int]] = field(default_factory=dict)


class CostModel:
    """The sum above, over one operation. `variables` None: the ceiling's worst case."""

    def __init__(self, *, default_page: int, max_page: int) -> None:
        self.default_page = default_page
        self.max_page = max_page

    def cost(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, object] | None,
    ) -> int:
        return self.measure(schema, document, operation, variables).cost

    def measure(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        operation: OperationDefinitionNode,
        variables: Mapping[str, object] | None,
    ) -> Measure:
        root = schema.get_root_type(operation.operation)
        if root is None:
            return Measure(0)  # validation reports the missing root type
        fragments = {
            definition.name.value: definition
            for definition in document.definitions
            if isinstance(definition, FragmentDefinitionNode)
        }
        defaults = {
            definition.variable.name.value: definition.default_value
            for definition in operation.variable_definitions or ()
        }
        walk = _Walk(self, schema, fragments, variables, defaults)
        total = walk.cost(operation.selection_set, root, 1, frozenset())
        return Measure(math.ceil(total - 1e-9), walk.batched)


class _Walk:
    def __init__(
        self,
        model: CostModel,
        schema: GraphQLSchema,
        fragments: Mapping[str, FragmentDefinitionNode],
        variables: Mapping[str, object] | None,
        defaults: Mapping[str, object],
    ) -> None:
        self.model = model
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.defaults = defaults
        self.batched: dict[str, tuple[int, int]] = {}
        self.introspection = introspection_lists(schema)

    def cost(
        self,
        selections: SelectionSetNode,
        parent: GraphQLNamedType,
        times: float,
        seen: frozenset[str],
        lengths: Mapping[str, float] = _NONE,
    ) -> float:
        """What `selections` cost, resolved `times` times. `lengths` are what the field above
        knows of its fields' lists: "*" a list argument's size, which its list fields return;
        or an introspection field's exact lengths (see `below`)."""
        total = 0.0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total += times
                field = _field(parent, selection.name.value)
                if field is None or selection.selection_set is None:
                    continue
                name = selection.name.value
                inner = times * self.length(parent, name, field, lengths)
                inner *= self.page(selection, field)
                child = get_named_type(field.type)
                asked = self.sized(selection, field, times)
                if _is_list(field.type):
                    inner, below = inner * asked, self.below(parent, selection, lengths)
                else:
                    below = {"*": asked} if asked > 1 else self.below(parent, selection, lengths)
                total += self.cost(selection.selection_set, child, inner, seen, below)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition else None
                total += self.cost(selection.selection_set, on or parent, times, seen, lengths)
            elif isinstance(selection, FragmentSpreadNode):
                fragment_name = selection.name.value
                fragment = self.fragments.get(fragment_name)
                if fragment is None or fragment_name in seen:
                    continue  # unknown fragments and cycles are other rules' errors
                on = self.schema.get_type(fragment.type_condition.name.value)
                total += self.cost(
                    fragment.selection_set, on or parent, times, seen | {fragment_name}, lengths
                )
        return total

    def length(
        self, parent: GraphQLNamedType, name: str, field: GraphQLField, lengths: Mapping[str, float]
    ) -> float:
        """How many items a field returns, as far as is known before it runs: what the field
        above said; for any other introspection list, the schema's average; else one."""
        if name in lengths:
            return lengths[name]
        if "*" in lengths and _is_list(field.type):
            return lengths["*"]
        return self.introspection.averages.get((parent.name, name), 1.0)

    def below(
        self, parent: GraphQLNamedType, node: FieldNode, lengths: Mapping[str, float]
    ) -> Mapping[str, float]:
        """What an introspection field knows of the lists below it: `__type(name:)` the named
        type's own; a type reference (`type`, then each `ofType`) how likely it is wrapped
        once more, from the schema's own references."""
        known = self.introspection
        name = node.name.value
        if name == "__type":
            for argument in node.arguments or ():
                named = self.resolve(argument.value)
                if isinstance(named, StringValueNode):
                    named = named.value
                found = self.schema.get_type(named) if isinstance(named, str) else None
                if found is not None:
                    return exact_lengths(self.schema, found)
            return _NONE
        if name == "type" and parent.name in ("__Field", "__InputValue"):
            return {"ofType": known.wrapped(1), "@chain": 1.0}
        if name == "ofType" and "@chain" in lengths:
            level = int(lengths["@chain"]) + 1
            return {"ofType": known.wrapped(level), "@chain": float(level)}
        return _NONE

    def sized(self, node: FieldNode, field: GraphQLField, times: float) -> int:
        """How many items the field's list arguments ask for (the longest of them), or the
        days from `from` to `to`; the batched lists are added up for the whole operation."""
        if not node.arguments:
            return 1
        asked = 1
        values = {argument.name.value: argument.value for argument in node.arguments}
        if "from" in values and "to" in values and "from" in field.args:
            start, end = self.day(values["from"]), self.day(values["to"])
            if start is not None and end is not None:
                asked = max(1, min((end - start).days + 1, MAX_DAYS))
            elif self.variables is None:
                asked = MAX_DAYS
        for name, value in values.items():
            for listed, length in self.lists(name, value):
                asked = max(asked, length)
                if listed in BATCHED:
                    items, fields = self.batched.get(listed, (0, 0))
                    self.batched[listed] = (items + int(length * times), fields + 1)
        return asked

    def lists(self, name: str, value: ValueNode | object) -> list[tuple[str, int]]:
        """(name, length) of each list an argument holds: itself, or the fields of an input
        object. A variable's list is read from the request (none for the ceiling's rule)."""
        value = self.resolve(value)
        if isinstance(value, ListValueNode):
            return [(name, len(value.values))]
        if isinstance(value, list):
            return [(name, len(value))]
        if isinstance(value, ObjectValueNode):
            found = []
            for item in value.fields:
                inner = self.resolve(item.value)
                if isinstance(inner, ListValueNode):
                    found.append((item.name.value, len(inner.values)))
                elif isinstance(inner, list):
                    found.append((item.name.value, len(inner)))
            return found
        if isinstance(value, dict):
            return [(key, len(item)) for key, item in value.items() if isinstance(item, list)]
        return []

    def resolve(self, value: ValueNode | object) -> object:
        if isinstance(value, VariableNode):
            if self.variables is None:
                return None
            name = value.name.value
            return self.variables[name] if name in self.variables else self.defaults.get(name)
        return value

    def day(self, value: ValueNode | object) -> date | None:
        value = self.resolve(value)
        if isinstance(value, StringValueNode):
            value = value.value
        try:
            return date.fromisoformat(value) if isinstance(value, str) else None
        except ValueError:
            return None  # the resolver refuses it

    def page(self, node: FieldNode, field: GraphQLField) -> int:
        model = self.model
        if not any(name in field.args for name in _PAGE_ARGUMENTS):
            return 1
        for argument in node.arguments or ():
            if argument.name.value not in _PAGE_ARGUMENTS:
                continue
            value: object = argument.value
            if isinstance(value, VariableNode):
                if self.variables is None:
                    return model.max_page
                name = value.name.value
                value = self.variables[name] if name in self.variables else self.defaults.get(name)
            if isinstance(value, IntValueNode):
                value = int(value.value)
            if isinstance(value, int) and not isinstance(value, bool):
                return max(1, min(value, model.max_page))
        return model.default_page


def _is_list(type_: GraphQLOutputType) -> bool:
    return is_list_type(type_.of_type if is_non_null_type(type_) else type_)


def cost_rule(*, max_cost: int, model: CostModel) -> type[ValidationRule]:
    class QueryCost(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            cost = model.cost(self.context.schema, self.context.document, node, None)
            if cost > max_cost:
                name = f" {node.name.value}" if node.name else ""
                self.report_error(
                    GraphQLError(
                        f"The operation{name} costs {cost}, over the limit of {max_cost}: ask "
                        "for smaller pages (first/last), fewer fields or fewer aliases.",
                        node,
                    )
                )

    return QueryCost


def actual_cost(data: object) -> int:
    """The fields an answer holds, each item of a list counted on its own."""
    # Exact types, and no call per scalar: a page of 50 rows is some 500 values.
    if type(data) is dict:
        total = len(data)
        for value in data.values():
            if type(value) is dict or type(value) is list:
                total += actual_cost(value)
        return total
    if type(data) is list:
        total = 0
        for item in data:
            if type(item) is dict or type(item) is list:
                total += actual_cost(item)
        return total
    return 0


def _field(parent: GraphQLNamedType, name: str) -> GraphQLField | None:
    if name in _META_FIELDS:  # on the query root only; validation refuses them elsewhere
        return _META_FIELDS[name]
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        field: GraphQLField | None = parent.fields.get(name)
        return field
    return None


_META_FIELDS = {"__schema": SchemaMetaFieldDef, "__type": TypeMetaFieldDef}
