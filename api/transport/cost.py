"""What an operation costs: a ceiling per operation, checked before anything runs, and the
requested cost that a caller's budget pays (api/transport/budget.py).

Every field costs 1 for each time it can be resolved: a field under a page of `first: 100`
costs 100. A page's size is its `first`/`last`, else the default page. The ceiling is a
validation rule, cached by query text, so it cannot depend on variables: there a page given by
a variable counts as the largest page. The requested cost is the same sum with the request's
variables read (a variable left out counts its default, else the default page). Depth and alias
limits bound the shape; this bounds the work: thirty aliases of a 100-row page with ten fields
each cost over 30,000.

The actual cost, known after the operation ran, counts the fields of its answer, each item of a
list on its own: a page that came back half full costs about half. A caller never pays more than
the requested cost, though (api/transport/budget.py): a list without a page size (`nodes`, a
bulk mutation's accounts) counts once in the request, whatever it holds.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    VariableNode,
    get_named_type,
)

_PAGE_ARGUMENTS = ("first", "last")


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
        root = schema.get_root_type(operation.operation)
        if root is None:
            return 0  # validation reports the missing root type
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
        return walk.cost(operation.selection_set, root, 1, frozenset())


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

    def cost(
        self,
        selections: SelectionSetNode,
        parent: GraphQLNamedType,
        times: int,
        seen: frozenset[str],
    ) -> int:
        total = 0
        for selection in selections.selections:
            if isinstance(selection, FieldNode):
                total += times
                field = _field(parent, selection.name.value)
                if selection.selection_set is not None and field is not None:
                    inner = times * self.page(selection, field)
                    child = get_named_type(field.type)
                    total += self.cost(selection.selection_set, child, inner, seen)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                on = self.schema.get_type(condition.name.value) if condition else None
                total += self.cost(selection.selection_set, on or parent, times, seen)
            elif isinstance(selection, FragmentSpreadNode):
                name = selection.name.value
                fragment = self.fragments.get(name)
                if fragment is None or name in seen:
                    continue  # unknown fragments and cycles are other rules' errors
                on = self.schema.get_type(fragment.type_condition.name.value)
                total += self.cost(fragment.selection_set, on or parent, times, seen | {name})
        return total

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
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        field: GraphQLField | None = parent.fields.get(name)
        return field
    return None
