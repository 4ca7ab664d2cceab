"""A fast path through graphql-core for plain attributes.

graphql-core resolves every field alike: it builds a resolve-info tuple, looks for arguments,
calls the resolver, checks for an awaitable and dispatches on the type before it serializes a
scalar. For a field whose resolver is Strawberry's own attribute read (`_is_default`), that has
no arguments and whose type is a scalar or enum, the result is simply the serialized attribute.
A page of the MAPI/EWS tab is some 300 such fields, and this is the GraphQL layer's largest
cost there (see README, Performance). Anything else, and any value that is null or does not
serialize, takes graphql-core's own path, so its errors and null rules are unchanged.

Subscription events are rendered once per process for every subscriber who asked the same
question (see `execute_operation`).
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    OperationType,
    is_leaf_type,
)
from graphql.execution.collect_fields import FieldDetailsList
from graphql.pyutils import Path, Undefined, UndefinedType
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

# Computed once per field definition and kept on it: (its leaf type, whether null is allowed),
# or None when the field is not a plain attribute.
_MARK = "mapi-ews-admin.plain-leaf"


def _plain_leaf(field: GraphQLField) -> tuple[GraphQLLeafType, bool] | None:
    if _MARK in field.extensions:
        known: tuple[GraphQLLeafType, bool] | None = field.extensions[_MARK]
        return known
    found: tuple[GraphQLLeafType, bool] | None = None
    if getattr(field.resolve, "_is_default", False) and not field.args:
        nullable = not isinstance(field.type, GraphQLNonNull)
        inner = field.type if nullable else field.type.of_type  # type: ignore[union-attr]
        if is_leaf_type(inner):
            found = (inner, nullable)
    field.extensions[_MARK] = found
    return found


class PlainFieldExecutor(StrawberryGraphQLCoreExecutionContext):
    def execute_field(
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: FieldDetailsList,
        path: Path,
        position_context: Any,
    ) -> Any | UndefinedType:
        node = field_details_list[0].node
        field = parent_type.fields.get(node.name.value)
        plain = _plain_leaf(field) if field is not None and not node.arguments else None
        middleware = self.middleware_manager
        if plain is not None and not (middleware and middleware.middlewares):
            leaf, nullable = plain
            value = field.resolve(source, None)
            if value is None and nullable:
                return None
            if value is not None:
                try:
                    serialized = leaf.serialize(value)
                except Exception:  # graphql-core's own path below reports it properly
                    serialized = Undefined
                if serialized is not None and serialized is not Undefined:
                    return serialized
        return super().execute_field(
            parent_type, source, field_details_list, path, position_context
        )

    def execute_operation(self, serially: bool | None = None) -> Any:
        """For a subscription event that carries a `render_memo`, the result is computed by the
        first subscriber and reused by every other whose operation is the same parsed document
        (the parser cache hands out one per query text) with the same variables.

        That is sound because events are filtered by domain before they reach a subscriber, and
        the event types' fields depend only on the event, never on who is looking: two
        subscribers with the same question see the same answer. A thousand dashboards on one
        process then cost one execution, not a thousand."""
        memo = getattr(self.root_value, "render_memo", None)
        if memo is None or self.operation.operation is not OperationType.SUBSCRIPTION:
            return super().execute_operation(serially)
        key = (id(self.operation), repr(sorted(self.variable_values.coerced.items())))
        if key in memo:
            shared = memo[key]
            return asyncio.shield(shared) if isinstance(shared, asyncio.Future) else shared
        result = super().execute_operation(serially)
        if inspect.isawaitable(result):
            memo[key] = task = asyncio.ensure_future(result)
            return asyncio.shield(task)
        memo[key] = result
        return result
