"""Assembles the areas into one schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)
from strawberry.tools import merge_types
from strawberry.types.execution import ExecutionContext
from strawberry.types.graphql import OperationType

from api.errors import BadUserInput
from api.graphql.accounts import AccountMutation, AccountQuery
from api.graphql.activity import ActivityMutation, ActivityQuery
from api.graphql.audit import AuditQuery
from api.graphql.context import begin_operation
from api.graphql.directives import AuthDirective
from api.graphql.domains import DomainMutation, DomainQuery
from api.graphql.errors import coded, log_unexpected
from api.graphql.execution import PlainFieldExecutor
from api.graphql.live import LiveSubscription
from api.graphql.sessions import SessionMutation, SessionQuery
from api.settings import Settings

Query = merge_types("Query", (SessionQuery, AccountQuery, ActivityQuery, DomainQuery, AuditQuery))
Mutation = merge_types(
    "Mutation", (SessionMutation, AccountMutation, DomainMutation, ActivityMutation)
)

Subscription = merge_types("Subscription", (LiveSubscription,))


class OperationScope(SchemaExtension):
    """Each operation starts with its own resolved domains and batch loaders (see Context)."""

    def on_operation(self) -> Iterator[None]:
        begin_operation()
        yield


class SubscriptionsOverWebSocketOnly(SchemaExtension):
    """Strawberry would run a subscription sent over HTTP as a query (or as a multipart stream):
    the contract serves them over graphql-transport-ws only."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context.context
        if self.execution_context.operation_type is OperationType.SUBSCRIPTION and not getattr(
            context, "over_websocket", False
        ):
            raise BadUserInput(
                "Subscriptions are served over WebSocket only: graphql-transport-ws on /graphql."
            )
        yield


class CodedStreamErrors(SchemaExtension):
    """Results sent over WebSocket carry extensions.code and mask the unexpected, like HTTP's
    (which the view's process_result does: parse errors never reach an extension there)."""

    def on_stream_result(self, result: Any) -> Iterator[None]:
        if getattr(result, "errors", None):
            result.errors = [coded(error) for error in result.errors]
        yield


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_unexpected(errors)


def build_schema(settings: Settings | None = None) -> Schema:
    limits = settings or Settings()
    # The limiters make a new rule class per instance, and ValidationCache keys on the rules: so
    # the rule classes are made once here, or no validation would ever be served from the cache.
    rules = [
        *QueryDepthLimiter(max_depth=limits.max_query_depth).validation_rules,
        *MaxAliasesLimiter(max_alias_count=limits.max_aliases).validation_rules,
    ]
    extensions: list[Any] = [
        OperationScope,
        CodedStreamErrors,
        SubscriptionsOverWebSocketOnly,
        # Factories, not shared instances: each operation gets its own extension state.
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
    ]
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        schema_directives=[AuthDirective],
        execution_context_class=PlainFieldExecutor,
    )


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
