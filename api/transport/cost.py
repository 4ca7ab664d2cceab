"""A cost ceiling per operation, checked before anything runs.

Every field costs 1 for each time it can be resolved: a field under a page of `first: 100`
costs 100. The page size is the literal `first`/`last`, the largest page when it comes from a
variable (validation is cached by query text, so it cannot depend on variables), and the
default page when a paged field is asked without one. Depth and alias limits bound the shape;
this bounds the work: thirty aliases of a 100-row page with ten fields each cost over 30,000.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLNamedType,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationRule,
    VariableNode,
    get_named_type,
)

_PAGE_ARGUMENTS = ("first", "last")


def cost_rule(*, max_cost: int, default_page: int, max_page: int) -> type[ValidationRule]:
    class QueryCost(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            root = self.context.schema.get_root_type(node.operation)
            if root is None:
                return  # another rule reports the missing root type
            cost = self._cost(node.selection_set, root, 1, frozenset())
            if cost > max_cost:
                name = f" {node.name.value}" if node.name else ""
                self.report_error(
                    GraphQLError(
                        f"The operation{name} costs {cost}, over the limit of {max_cost}: ask "
                        "for smaller pages (first/last), fewer fields or fewer aliases.",
                        node,
                    )
                )

        def _cost(
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
                        inner = times * self._page(selection, field)
                        child = get_named_type(field.type)
                        total += self._cost(selection.selection_set, child, inner, seen)
                elif isinstance(selection, InlineFragmentNode):
                    condition = selection.type_condition
                    on = self.context.schema.get_type(condition.name.value) if condition else None
                    total += self._cost(selection.selection_set, on or parent, times, seen)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.context.get_fragment(name)
                    if fragment is None or name in seen:
                        continue  # unknown fragments and cycles are other rules' errors
                    on = self.context.schema.get_type(fragment.type_condition.name.value)
                    total += self._cost(fragment.selection_set, on or parent, times, seen | {name})
            return total

        @staticmethod
        def _page(node: FieldNode, field: GraphQLField) -> int:
            if not any(name in field.args for name in _PAGE_ARGUMENTS):
                return 1
            for argument in node.arguments or ():
                if argument.name.value not in _PAGE_ARGUMENTS:
                    continue
                if isinstance(argument.value, IntValueNode):
                    return max(1, min(int(argument.value.value), max_page))
                if isinstance(argument.value, VariableNode):
                    return max_page
            return default_page

    return QueryCost


def _field(parent: GraphQLNamedType, name: str) -> GraphQLField | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        field: GraphQLField | None = parent.fields.get(name)
        return field
    return None
