"""The one pipeline every GraphQL operation passes, over POST, GET and WebSocket alike.

    parse (token cap) -> validate (depth, introspection depth, aliases, cost) -> select the
    operation and check the transport allows it -> charge the caller's budget its requested
    cost -> execute, where @auth runs before each resolver and plain fields run compiled plans
    -> settle the budget to the actual cost -> code every error, log and mask the unexpected

A request refused before execution raises `RequestError` with its coded errors; a transport
turns that into its own answer (an HTTP body, a graphql-transport-ws `error` message). Nothing
a client sends reaches the log above INFO: only the server's own faults do.

It calls graphql-core directly on the Strawberry schema (the same resolvers, @auth permission
extensions and types) instead of through Strawberry's execute, whose extension runner costs
more per request than the gateways' whole report does (README, Performance).
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Collection
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    execute,
    subscribe,
)

from api.graphql.context import Context, begin_operation
from api.metrics import Metrics
from api.settings import Settings
from api.transport.budget import Budget, Charge, Throttled
from api.transport.cost import actual_cost
from api.transport.errors import bad_request, coded, finished
from api.transport.executor import PlainFieldExecutor
from api.transport.limits import CACHE_SIZE, Limits
from api.transport.plans import PlanCache

EVERY_OPERATION = frozenset(OperationType)


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    """What a client sent, as received: the pipeline checks each part's type."""

    query: object
    variables: object = None
    operation_name: object = None


class RequestError(Exception):
    """Refused before execution: nothing ran. `status` is the HTTP status to answer with (200:
    a GraphQL request error, whose status depends on the media type the client accepts);
    `operation`, the kind of operation refused because the transport does not carry it;
    `extensions`, the answer's (its cost, once charged); `retry_after`, the seconds to wait
    before trying again (THROTTLED)."""

    def __init__(
        self,
        errors: list[GraphQLError],
        status: int = 200,
        operation: OperationType | None = None,
        *,
        extensions: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(errors[0].message)
        self.errors = errors
        self.status = status
        self.operation = operation
        self.extensions = extensions
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Prepared:
    query: str
    document: DocumentNode
    operation: OperationDefinitionNode
    variables: dict[str, Any] | None
    operation_name: str | None

    @property
    def kind(self) -> OperationType:
        return self.operation.operation


def _malformed(message: str) -> RequestError:
    """Not a GraphQL request at all (over HTTP: 400, with no `data`)."""
    return RequestError([bad_request(message)], status=400)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode:
    """The operation to run, with graphql-core's own messages when there is none."""
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is not None:
        for operation in operations:
            if operation.name is not None and operation.name.value == name:
                return operation
        raise RequestError([bad_request(f"Unknown operation named '{name}'.")])
    if len(operations) == 1:
        return operations[0]
    if not operations:
        raise RequestError([bad_request("Must provide an operation.")])
    raise RequestError(
        [bad_request("Must provide operation name if query contains multiple operations.")]
    )


class Pipeline:
    def __init__(
        self,
        schema: GraphQLSchema,
        settings: Settings,
        metrics: Metrics,
        budget: Budget | None = None,
    ) -> None:
        self.schema = schema
        self.metrics = metrics
        self.limits = Limits(settings)
        self.budget = budget or Budget(settings.cost_limits, metrics=metrics)
        self.hide_suggestions = not settings.suggests_fields
        self.plans = PlanCache(size=CACHE_SIZE)  # as many operations as documents parsed

    def prepare(
        self,
        request: GraphQLRequest,
        allowed: Collection[OperationType] = EVERY_OPERATION,
        *,
        refused_status: int = 200,
    ) -> Prepared:
        """Parse, validate and select; RequestError when any of it fails. An operation of a type
        the transport does not carry is refused with `refused_status`."""
        try:
            return self._prepare(request, allowed, refused_status)
        except RequestError as refused:
            self.sent(refused.errors)
            raise

    def _prepare(
        self, request: GraphQLRequest, allowed: Collection[OperationType], refused_status: int
    ) -> Prepared:
        query, variables, name = request.query, request.variables, request.operation_name
        if not isinstance(query, str) or not query.strip():
            raise _malformed("The request has no GraphQL document (`query`).")
        if variables is not None and not isinstance(variables, dict):
            raise _malformed("`variables` must be an object.")
        if name is not None and not isinstance(name, str):
            raise _malformed("`operationName` must be a string.")
        try:
            document = self.limits.parse(query)
            errors = self.limits.errors(self.schema, query)
        except GraphQLError as syntax:
            raise RequestError([finished(syntax)]) from None
        if errors:
            raise RequestError([finished(error) for error in errors])
        operation = _operation(document, name)
        if operation.operation not in allowed:
            message = _NOT_CARRIED[operation.operation]
            raise RequestError(
                [bad_request(message)], status=refused_status, operation=operation.operation
            )
        return Prepared(query, document, operation, variables, name)

    async def execute(self, prepared: Prepared, context: Context) -> ExecutionResult:
        """A query or mutation's one result, its errors coded. Variables that do not coerce
        stop it before any field runs: that is a request error (RequestError), like the
        document's own mistakes, whatever the transport. Its requested cost is charged before it
        runs (RequestError with THROTTLED when the budget is short) and settled after."""
        charge = await self._charge(prepared, context)
        outcome = execute(**self._start(prepared, context))
        result = await outcome if inspect.isawaitable(outcome) else outcome
        if result.errors and result.data is None and all(e.path is None for e in result.errors):
            await self.budget.settle(charge, 0)
            errors = [finished(error) for error in result.errors]
            self.sent(errors)
            raise RequestError(errors, extensions={"cost": charge.extensions()})
        await self.budget.settle(charge, actual_cost(result.data))
        result.extensions = {**(result.extensions or {}), "cost": charge.extensions()}
        return self._coded(result)

    async def _charge(self, prepared: Prepared, context: Context) -> Charge:
        """The operation's requested cost, taken from its caller's budget."""
        requested = self.limits.requested_cost(
            self.schema, prepared.query, prepared.operation_name, prepared.variables
        )
        charge = self.budget.start(requested, context.principal, context.client_address)
        try:
            await self.budget.charge(charge)
        except Throttled as throttled:
            cost = charge.extensions()
            extensions = {"retryAfter": throttled.retry_after, "cost": cost}
            refusal = GraphQLError(
                throttled.message, original_error=throttled, extensions=extensions
            )
            error = coded(refusal)
            self.sent([error])
            raise RequestError(
                [error], status=429, extensions={"cost": cost}, retry_after=throttled.retry_after
            ) from None
        return charge

    async def stream(
        self, prepared: Prepared, context: Context
    ) -> AsyncGenerator[ExecutionResult, None]:
        """Every result of an operation: one for a query or mutation, one per event for a
        subscription. A subscription that cannot start raises RequestError (its errors are
        the `error` message of graphql-transport-ws); one that fails later (a client reading
        too slowly) ends with a last result carrying the coded error. A subscription is charged
        its requested cost when it starts (refunded when it cannot); its events are free."""
        if prepared.kind is not OperationType.SUBSCRIPTION:
            yield await self.execute(prepared, context)
            return
        charge = await self._charge(prepared, context)
        outcome = subscribe(**self._start(prepared, context))
        source = await outcome if inspect.isawaitable(outcome) else outcome
        if isinstance(source, ExecutionResult):
            await self.budget.settle(charge, 0)
            errors = [finished(error) for error in source.errors or ()]
            self.sent(errors)
            raise RequestError(errors)
        try:
            async for result in source:
                yield self._coded(result)
        except Exception as error:  # the event source failed: a coded last result, not a raise
            yield ExecutionResult(None, [self.failed(error)])
        finally:
            await source.aclose()  # type: ignore[attr-defined]

    def _start(self, prepared: Prepared, context: Context) -> dict[str, Any]:
        """graphql-core's arguments for the operation, which starts with a state of its own."""
        begin_operation()
        return {
            "schema": self.schema,
            "document": prepared.document,
            "context_value": context,
            "variable_values": prepared.variables,
            "operation_name": prepared.operation_name,
            "executor_class": PlainFieldExecutor,
            "plans": self.plans.plans(prepared.document, prepared.operation),
            "hide_suggestions": self.hide_suggestions,
        }

    def _coded(self, result: ExecutionResult) -> ExecutionResult:
        if result.errors:
            result.errors = [finished(error) for error in result.errors]
            self.sent(result.errors)
        return result

    def failed(self, error: Exception) -> GraphQLError:
        """An exception raised past graphql-core (an event source, or a fault of ours): coded;
        logged with its trace and masked unless it is an expected one."""
        coded = finished(GraphQLError(str(error), original_error=error))
        self.sent([coded])
        return coded

    def sent(self, errors: list[GraphQLError]) -> None:
        """Counts coded errors as they leave, by code (`/metrics`), whatever refused them."""
        for error in errors:
            self.metrics.graphql_errors.labels(code=str((error.extensions or {}).get("code"))).inc()


_NOT_CARRIED = {
    OperationType.QUERY: "Queries are not accepted here.",
    OperationType.MUTATION: "Mutations are not allowed when using GET: send them with POST.",
    OperationType.SUBSCRIPTION: (
        "Subscriptions are served over WebSocket only: graphql-transport-ws on /graphql."
    ),
}
