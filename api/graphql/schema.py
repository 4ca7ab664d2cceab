"""Assembles the areas into one schema."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    ValidationCache,
)
from strawberry.tools import merge_types
from strawberry.types.execution import ExecutionContext

from api.graphql.accounts import AccountMutation, AccountQuery
from api.graphql.audit import AuditQuery
from api.graphql.directives import AuthDirective
from api.graphql.domains import DomainMutation, DomainQuery
from api.graphql.errors import log_unexpected
from api.graphql.execution import PlainFieldExecutor
from api.graphql.sessions import SessionMutation, SessionQuery
from api.settings import Settings

Query = merge_types("Query", (SessionQuery, AccountQuery, DomainQuery, AuditQuery))
Mutation = merge_types("Mutation", (SessionMutation, AccountMutation, DomainMutation))


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
        # Factories, not shared instances: each operation gets its own extension state.
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        lambda: MaxTokensLimiter(max_token_count=limits.max_tokens),
    ]
    return Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        schema_directives=[AuthDirective],
        execution_context_class=PlainFieldExecutor,
    )


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
