"""A fast path through graphql-core for plain attributes.

graphql-core resolves every field alike: it builds a resolve-info tuple, looks for arguments,
calls the resolver, checks for an awaitable and dispatches on the type before it serializes a
scalar. For a field whose resolver is Strawberry's own attribute read (`_is_default`), that has
no arguments and whose type is a scalar or enum, the result is simply the serialized attribute.
A page of the MAPI/EWS tab is some 300 such fields, and this is the GraphQL layer's largest
cost there (see README, Performance). Anything else, and any value that is null or does not
serialize, takes graphql-core's own path, so its errors and null rules are unchanged.
"""

from __future__ import annotations

from typing import Any

from graphql import GraphQLField, GraphQLLeafType, GraphQLNonNull, GraphQLObjectType, is_leaf_type
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
