"""Assembles the areas into one schema."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.tools import merge_types
from strawberry.types.execution import ExecutionContext

from api.graphql.accounts import AccountMutation, AccountQuery
from api.graphql.activity import ActivityMutation, ActivityQuery
from api.graphql.audit import AuditQuery
from api.graphql.directives import AuthDirective
from api.graphql.domains import DomainMutation, DomainQuery
from api.graphql.errors import log_unexpected
from api.graphql.execution import PlainFieldExecutor, QuietExecutor
from api.graphql.extensions import Limits, operation_extension
from api.graphql.live import LiveSubscription
from api.graphql.sessions import SessionMutation, SessionQuery
from api.settings import Settings

Query = merge_types("Query", (SessionQuery, AccountQuery, ActivityQuery, DomainQuery, AuditQuery))
Mutation = merge_types(
    "Mutation", (SessionMutation, AccountMutation, DomainMutation, ActivityMutation)
)
Subscription = merge_types("Subscription", (LiveSubscription,))


class Schema(strawberry.Schema):
    limits: Limits
    executor_class: type[PlainFieldExecutor]

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        log_unexpected(errors)


def build_schema(settings: Settings | None = None) -> Schema:
    settings = settings or Settings()
    limits = Limits(settings)
    executor_class = PlainFieldExecutor if settings.suggests_fields else QuietExecutor
    schema = Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # A class: Strawberry makes one per operation, so no state is shared between them.
        extensions=[operation_extension(limits)],
        schema_directives=[AuthDirective],
        execution_context_class=executor_class,
    )
    schema.limits = limits
    schema.executor_class = executor_class
    return schema


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
