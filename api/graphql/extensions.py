"""Everything the schema does around each operation, in one extension.

Strawberry's own extensions (ParserCache, ValidationCache, MaxTokensLimiter, AddValidationRules)
do each of these in a few lines, but every extension is an object per operation and a context
manager per hook: seven of them cost more than the gateways' whole report mutation does in its
resolver. One extension does the same work (measured in README, Performance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Any

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    GraphQLSchema,
    NoSchemaIntrospectionCustomRule,
    parse,
    specified_rules,
    validate,
)
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule
from strawberry.types.graphql import OperationType

from api.errors import BadUserInput
from api.graphql.context import begin_operation
from api.graphql.cost import cost_rule
from api.graphql.errors import coded
from api.settings import Settings

_CACHE_SIZE = 256
# Validation stops after this many errors: a document built to fail everywhere costs no more.
_MAX_ERRORS = 20


@lru_cache(maxsize=_CACHE_SIZE)
def _parse(query: str, max_tokens: int) -> DocumentNode:
    return parse(query, max_tokens=max_tokens)


class Limits:
    """The document limits (tokens, depth, aliases, cost), introspection and field suggestions
    as configured. The validation rules are made once, and validation is cached by the query's
    text (a string hashes once; a document would be hashed node by node per request)."""

    def __init__(self, settings: Settings) -> None:
        self.max_tokens = settings.max_tokens
        self.hide_suggestions = not settings.suggests_fields
        self.rules: tuple[type[ASTValidationRule], ...] = (
            # graphql-core 3.3's include MaxIntrospectionDepthRule: the depth limiter below
            # skips introspection fields, that rule bounds them.
            *specified_rules,
            MaybeNullValidationRule,
            OneOfInputValidationRule,
            *QueryDepthLimiter(max_depth=settings.max_query_depth).validation_rules,
            *MaxAliasesLimiter(max_alias_count=settings.max_aliases).validation_rules,
            cost_rule(
                max_cost=settings.max_query_cost,
                default_page=settings.page_size_default,
                max_page=settings.page_size_max,
            ),
            *(() if settings.allows_introspection else (NoSchemaIntrospectionCustomRule,)),
        )
        self.errors: Callable[[GraphQLSchema, str], list[GraphQLError]] = lru_cache(
            maxsize=_CACHE_SIZE
        )(self._validate)

    def parse(self, query: str) -> DocumentNode:
        return _parse(query, self.max_tokens)

    def _validate(self, schema: GraphQLSchema, query: str) -> list[GraphQLError]:
        return validate(
            schema,
            self.parse(query),
            self.rules,
            max_errors=_MAX_ERRORS,
            hide_suggestions=self.hide_suggestions,
        )

    def prepared(self, schema: GraphQLSchema, query: str) -> DocumentNode | None:
        """The parsed document when it parses and validates (both cached); else None."""
        try:
            return None if self.errors(schema, query) else self.parse(query)
        except GraphQLError:
            return None


def operation_extension(limits: Limits) -> type[SchemaExtension]:
    """The extension class that applies `limits` (and the rest) to every operation."""

    class Operation(SchemaExtension):
        def on_operation(self) -> Iterator[None]:
            # Each operation starts with its own resolved domains and batch loaders.
            begin_operation()
            yield

        def on_parse(self) -> Iterator[None]:
            context = self.execution_context
            if context.query:  # else Strawberry reports the missing query
                context.graphql_document = limits.parse(context.query)
            yield

        def on_validate(self) -> Iterator[None]:
            context = self.execution_context
            if context.query and context.graphql_document is not None:
                context.pre_execution_errors = limits.errors(context.schema._schema, context.query)
            yield

        def on_execute(self) -> Iterator[None]:
            # Strawberry would run a subscription sent over HTTP as a query, or as a multipart
            # stream: the contract serves them over graphql-transport-ws only.
            context = self.execution_context
            if context.operation_type is OperationType.SUBSCRIPTION and not getattr(
                context.context, "over_websocket", False
            ):
                raise BadUserInput(
                    "Subscriptions are served over WebSocket only: graphql-transport-ws on "
                    "/graphql."
                )
            yield

        def on_stream_result(self, result: Any) -> Iterator[None]:
            # Results sent over WebSocket carry extensions.code and mask the unexpected, as
            # HTTP's do (there the view's process_result does it: parse errors never reach an
            # extension).
            if getattr(result, "errors", None):
                result.errors = [coded(error) for error in result.errors]
            yield

    return Operation
