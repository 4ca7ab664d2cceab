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

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterable, Collection
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
)
from graphql.execution import create_source_event_stream, execute_subscription_event
from graphql.pyutils import AwaitableOrValue

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
# What a subscriber asks of each event: its parsed operation and its variables, as coerced.
Question = tuple[int, str]


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


class Rendered(ExecutionResult):
    """A subscription event's result. Every subscriber on this process that asks the same
    question is handed this one object (Pipeline._render), so a transport that encodes it keeps
    the encoding here: a thousand dashboards then cost one encoding of the event, not a
    thousand (api/transport/websocket.py)."""

    __slots__ = ("encoded",)

    def __init__(self, result: ExecutionResult) -> None:
        super().__init__(result.data, result.errors, result.extensions)
        self.encoded: str | None = None


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
        measure = self.limits.requested_cost(
            self.schema, prepared.query, prepared.operation_name, prepared.variables
        )
        too_much = self.limits.refusal(measure)
        if too_much is not None:
            error = bad_request(too_much)
            self.sent([error])
            raise RequestError([error])
        charge = self.budget.start(measure.cost, context.principal, context.client_address)
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
        begin_operation()
        source = await self._source(prepared, context)
        if isinstance(source, ExecutionResult):
            await self.budget.settle(charge, 0)
            errors = [finished(error) for error in source.errors or ()]
            self.sent(errors)
            raise RequestError(errors)
        events, question = source
        try:
            async for event in events:
                rendered = self._render(prepared, context, event, question)
                result = await rendered if inspect.isawaitable(rendered) else rendered
                if result.errors:
                    self.sent(result.errors)
                yield result
        except Exception as error:  # the event source failed: a coded last result, not a raise
            yield ExecutionResult(None, [self.failed(error)])
        finally:
            close = getattr(events, "aclose", None)  # an async generator's, as resolvers return
            if close is not None:
                await close()

    async def _source(
        self, prepared: Prepared, context: Context
    ) -> tuple[AsyncIterable[Any], Question] | ExecutionResult:
        """The subscription's source of events, its root resolver (and @auth) run, with the
        question it asks of each; or the errors that keep it from starting. The executor built
        for it is not kept: each event is rendered by one of its own."""
        executor = PlainFieldExecutor.build(**self._arguments(prepared, context))
        if isinstance(executor, list):
            return ExecutionResult(None, executor)
        question = (id(prepared.operation), repr(sorted(executor.variable_values.coerced.items())))
        created = create_source_event_stream(executor)
        source = await created if inspect.isawaitable(created) else created
        return source if isinstance(source, ExecutionResult) else (source, question)

    def _render(
        self, prepared: Prepared, context: Context, event: Any, question: Question
    ) -> AwaitableOrValue[ExecutionResult]:
        """An event's result, its errors coded. An event that carries a `render_memo` is
        rendered by its first subscriber on this process and the result reused by every other
        who asks the same question (the same parsed operation, from the parser cache, with the
        same variables).

        That is sound because events are filtered by domain before they reach a subscriber, and
        the event types' fields depend only on the event, never on who is looking: two
        subscribers with the same question see the same answer. A thousand dashboards on one
        process then cost one execution, not a thousand."""
        memo: dict[Any, Any] | None = getattr(event, "render_memo", None)
        if memo is not None and question in memo:
            shared = memo[question]
            return asyncio.shield(shared) if isinstance(shared, asyncio.Future) else shared
        executor = PlainFieldExecutor.build(**self._arguments(prepared, context), root_value=event)
        if isinstance(executor, list):  # the variables coerced when it started: they still do
            return ExecutionResult(None, [finished(error) for error in executor])
        outcome = execute_subscription_event(executor)
        if inspect.isawaitable(outcome):

            async def coded() -> ExecutionResult:
                return Rendered(self._coded(await outcome, count=False))

            task = asyncio.ensure_future(coded())
            if memo is not None:
                memo[question] = task
            return asyncio.shield(task)
        result = Rendered(self._coded(outcome, count=False))
        if memo is not None:
            memo[question] = result
        return result

    def _start(self, prepared: Prepared, context: Context) -> dict[str, Any]:
        """graphql-core's execute's arguments for the operation, which starts with a state of
        its own."""
        begin_operation()
        return {
            **self._common(prepared, context),
            "variable_values": prepared.variables,
            "executor_class": PlainFieldExecutor,
        }

    def _arguments(self, prepared: Prepared, context: Context) -> dict[str, Any]:
        """Executor.build's arguments for the operation."""
        return {**self._common(prepared, context), "raw_variable_values": prepared.variables}

    def _common(self, prepared: Prepared, context: Context) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "document": prepared.document,
            "context_value": context,
            "operation_name": prepared.operation_name,
            "hide_suggestions": self.hide_suggestions,
            "plans": self.plans.plans(prepared.document, prepared.operation),
        }

    def _coded(self, result: ExecutionResult, *, count: bool = True) -> ExecutionResult:
        if result.errors:
            result.errors = [finished(error) for error in result.errors]
            if count:
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
