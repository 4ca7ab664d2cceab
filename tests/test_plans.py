"""Compiled plans give exactly graphql-core's answers, errors included, and run once compiled.

Each document runs on the same schema and the same objects twice: through graphql-core's own
executor (Strawberry's) and through ours with plans, and the two results must be the same,
value and errors. (Beside these, tests/conftest.py checks every plan answer of every test
against graphql-core on the same objects.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any

import orjson
import pytest
import strawberry
from graphql import (
    DocumentNode,
    ExecutionResult,
    GraphQLError,
    OperationDefinitionNode,
    execute,
    parse,
)
from starlette.applications import Starlette
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from api.internals.strawberry_private import Operation
from api.models import Account as AccountRow
from api.transport.executor import PlainFieldExecutor
from api.transport.pipeline import Rendered
from api.transport.plans import PARITY, PlanCache, Plans
from api.transport.websocket import next_payload, next_prefix
from tests.conftest import Factory, GraphQLClient, StatementCounter, run_subscription


@strawberry.enum
class Colour(Enum):
    RED = "red"
    BLUE = "blue"


class Shade(StrEnum):
    DARK = "dark"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Owner:
    login: str
    items_count: int


class Deny(BasePermission):
    message = "no"

    def has_permission(self, source: Any, info: Any, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Item(Named):
    nickname: str | None
    colour: Colour
    seen: datetime | None
    count: int
    ratio: float | None
    enabled: bool
    tags: list[str]
    maybe_tags: list[str | None] | None
    owner: Owner | None
    secret: str = strawberry.field(extensions=[PermissionExtension(permissions=[Deny()])])

    @strawberry.field
    def greeting(self, punctuation: str = "!") -> str:
        return f"hello {self.name}{punctuation}"


@strawberry.type
class Shelf:
    label: str
    items: list[Item]
    maybe_items: list[Item | None] | None
    first: Item | None
    named: Named | None


def item(name: Any = "a", **overrides: Any) -> Item:
    values: dict[str, Any] = {
        "name": name,
        "nickname": None,
        "colour": Colour.RED,
        "seen": datetime(2026, 1, 2, tzinfo=UTC),
        "count": 1,
        "ratio": 0.5,
        "enabled": True,
        "tags": ["x", "y"],
        "maybe_tags": ["z", None],
        "owner": Owner(login="o", items_count=2),
        "secret": "s",
    }
    return Item(**{**values, **overrides})


def shelf(*items: Any, **overrides: Any) -> Shelf:
    values: dict[str, Any] = {
        "label": "top",
        "items": list(items),
        "maybe_items": [None, *items],
        "first": items[0] if items else None,
        "named": items[0] if items else None,
    }
    return Shelf(**{**values, **overrides})


# Each case: the shelves the root field returns.
CASES: dict[str, Any] = {
    "plain": lambda: [shelf(item("a"), item("b", nickname="bee", seen=None, owner=None))],
    "tuples": lambda: [shelf(item("a", tags=("p", "q")), items=(item("t"),))],
    "null in a non-null field": lambda: [shelf(item("a"), item(None)), shelf(item("c"))],
    "null in a non-null list item": lambda: [shelf(item("a", tags=["x", None]))],
    "an object of another type": lambda: [shelf(item("a"), Owner(login="x", items_count=1))],
    "an unknown enum value": lambda: [shelf(item("a", colour="purple"))],
    "an Int out of range": lambda: [shelf(item("a", count=2**40))],
    "an Int that is a string": lambda: [shelf(item("a", count="many"))],
    "an Int that is a bool": lambda: [shelf(item("a", count=True))],
    "a str subclass": lambda: [shelf(item(Shade.DARK, nickname=Shade.DARK))],
    "a string for a list": lambda: [shelf(item("a", tags="abc"))],
    "a generator for a list": lambda: [shelf(item("a", tags=(tag for tag in ["g", "h"])))],
    "an exception as a value": lambda: [shelf(item(ValueError("broken")))],
    "a bad datetime": lambda: [shelf(item("a", seen="yesterday"))],
    "a null shelf": lambda: [None],
}


@strawberry.type
class Query:
    @strawberry.field
    def shelves(self, case: str) -> list[Shelf]:
        shelves: list[Shelf] = CASES[case]()
        return shelves


SCHEMA = strawberry.Schema(Query)._schema

EVERYTHING = """
query Everything($case: String!) {
  shelves(case: $case) {
    label
    __typename
    items {
      name nickname colour seen count ratio enabled tags maybeTags
      owner { login itemsCount __typename }
      alias: name
      name
      ...ItemParts
      ... on Item { nickname count }
      ... on Named { name }
    }
    maybeItems { name colour }
    first { name owner { login } }
  }
}
fragment ItemParts on Item { tags colour owner { itemsCount } }
"""


def run(document: DocumentNode, executor: type, **extra: Any) -> dict[str, Any]:
    result = execute(
        SCHEMA,
        document,
        variable_values=extra.pop("variables", None),
        executor_class=executor,
        **extra,
    )
    assert isinstance(result, ExecutionResult)  # every resolver here is synchronous
    formatted: dict[str, Any] = result.formatted
    return formatted


def both(query: str, variables: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(graphql-core's result, ours with plans), each formatted as it is sent."""
    document = parse(query)
    expected = run(document, StrawberryGraphQLCoreExecutionContext, variables=variables)
    plans = Plans(document, operation_of(document))
    actual = run(document, PlainFieldExecutor, variables=variables, plans=plans)
    return expected, actual


def operation_of(document: DocumentNode) -> OperationDefinitionNode:
    operation = document.definitions[0]
    assert isinstance(operation, OperationDefinitionNode)
    return operation


@pytest.fixture
def parity_off() -> Iterator[None]:
    """Plans alone, without graphql-core beside them (the conftest check would run it)."""
    PARITY.enabled = False
    yield
    PARITY.enabled = True


@pytest.mark.parametrize("case", list(CASES))
def test_a_plan_answers_as_graphql_core_does_whatever_the_values(case: str) -> None:
    expected, actual = both(EVERYTHING, {"case": case})

    assert actual == expected


def test_plain_values_are_answered_by_plans_alone() -> None:
    expected, actual = both(EVERYTHING, {"case": "plain"})

    assert actual == expected
    assert "errors" not in actual
    assert PARITY.refused == []
    assert PARITY.answered == 5  # label, __typename, items, maybeItems and first: one plan each
    assert actual["data"]["shelves"][0]["items"][1] == {
        "name": "b",
        "nickname": "bee",
        "colour": "RED",
        "seen": None,
        "count": 1,
        "ratio": 0.5,
        "enabled": True,
        "tags": ["x", "y"],
        "maybeTags": ["z", None],
        "owner": None,
        "alias": "b",
    }


@pytest.mark.parametrize(
    "case",
    ["null in a non-null field", "an object of another type", "an unknown enum value"],
)
def test_a_value_the_plan_does_not_take_is_left_to_graphql_core_with_its_errors(
    case: str,
) -> None:
    expected, actual = both(EVERYTHING, {"case": case})

    assert actual == expected
    assert expected["errors"]
    assert PARITY.refused  # the plan gave the field to graphql-core


def test_a_field_with_an_extension_never_has_a_plan_so_its_permission_runs() -> None:
    expected, actual = both('{ shelves(case: "plain") { items { name secret } } }', {})

    assert actual == expected
    assert actual == {
        "data": None,
        "errors": [
            {
                "message": "no",
                "locations": [{"line": 1, "column": 41}],
                "path": ["shelves", 0, "items", 0, "secret"],
            }
        ],
    }


@pytest.mark.parametrize(
    "query",
    [
        '{ shelves(case: "plain") { items { name greeting(punctuation: "?") } } }',
        'query($on: Boolean!) { shelves(case: "plain") { items { name @include(if: $on) } } }',
        '{ shelves(case: "plain") { named { name ... on Item { count } } } }',
    ],
    ids=["arguments", "a directive", "an interface"],
)
def test_what_a_plan_cannot_answer_runs_through_graphql_core_beside_plans(query: str) -> None:
    expected, actual = both(query, {"on": False})

    assert actual == expected
    assert "errors" not in actual


def test_a_document_is_compiled_once(parity_off: None) -> None:
    document = parse(EVERYTHING)
    plans = Plans(document, operation_of(document))
    first = run(document, PlainFieldExecutor, variables={"case": "plain"}, plans=plans)
    compiled = len(plans)

    again = run(document, PlainFieldExecutor, variables={"case": "plain"}, plans=plans)

    assert again == first
    assert compiled == len(plans) == 6  # shelves (none: a resolver) and the five above


def test_the_cache_keeps_one_plan_set_per_operation_and_forgets_the_oldest() -> None:
    cache = PlanCache(size=2)
    documents = [parse("{ a }"), parse("{ b }"), parse("{ c }")]
    first = cache.plans(documents[0], operation_of(documents[0]))

    assert cache.plans(documents[0], operation_of(documents[0])) is first
    again = parse("{ a }")  # the same text parsed anew: other nodes, so other plans
    assert cache.plans(again, operation_of(again)) is not first
    cache.plans(documents[1], operation_of(documents[1]))
    cache.plans(documents[2], operation_of(documents[2]))
    assert len(cache) == 2


TAB = """
{ mapiEwsAccounts(first: 50, orderBy: {field: LAST_LOGIN, direction: DESC}) {
    totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    edges { cursor node { id username emailAddress name lastLogin lastLoginProtocol
                          lastMapiLogin lastEwsLogin } } } }
"""


async def test_the_tab_is_answered_by_two_plans_without_more_sql(
    gql: GraphQLClient, make: Factory, sql: StatementCounter
) -> None:
    example = await make.domain()
    admin = await make.account(example, "admin", admin=True, enabled=True)
    token = await make.token_for(admin)
    for n in range(3):
        await make.account(example, f"user{n}", name=f"User {n}", enabled=True)
    await AccountRow.filter(username="user1").update(
        last_login=datetime(2026, 11, 1, tzinfo=UTC), last_login_protocol="EWS"
    )
    PARITY.clear()
    sql.statements.clear()

    data = await gql.data(TAB, token=token)

    edges = data["mapiEwsAccounts"]["edges"]
    assert [edge["node"]["username"] for edge in edges] == ["user1", "user2", "user0", "admin"]
    assert edges[0]["node"]["lastLoginProtocol"] == "EWS"
    assert edges[0]["node"]["emailAddress"] == "user1@example.com"
    assert PARITY.answered == 2  # pageInfo and edges, each by its plan
    assert PARITY.refused == []
    assert len(sql.statements) == 3  # the page (logged in, then never) and the count, as before


LOGINS = (
    "subscription { mapiEwsLoginUpdates { username allowed account { username mapiEwsEnabled } } }"
)
JUST_NAMES = "subscription { mapiEwsLoginUpdates { username } }"
REPORT = (
    "mutation($e: String!) "
    "{ recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI}) { allowed } }"
)


async def _first_results(
    app: Starlette, gql: GraphQLClient, make: Factory, *queries: str
) -> list[ExecutionResult]:
    """An admin's subscriptions to `queries`, each one's result for the same reported login."""
    example = await make.domain()
    admin = await make.account(example, "admin", admin=True, enabled=True)
    principal = await app.state.authenticator.principal(await make.token_for(admin))
    streams = [run_subscription(app, q, principal=principal) for q in queries]
    pending = [asyncio.ensure_future(anext(stream)) for stream in streams]
    async with asyncio.timeout(5):
        while app.state.events.hub.subscriber_count() < len(queries):
            await asyncio.sleep(0.01)
    gateway = await make.gateway()
    PARITY.clear()

    await gql.data(REPORT, {"e": "admin@example.com"}, token=gateway)

    results = await asyncio.wait_for(asyncio.gather(*pending), 5)
    for stream in streams:
        await stream.aclose()
    return list(results)


async def test_dashboards_asking_the_same_question_share_one_rendering_of_an_event(
    app: Starlette, gql: GraphQLClient, make: Factory
) -> None:
    first, second, names = await _first_results(app, gql, make, LOGINS, LOGINS, JUST_NAMES)

    assert first is second
    assert first.data == {
        "mapiEwsLoginUpdates": {
            "username": "admin",
            "allowed": True,
            "account": {"username": "admin", "mapiEwsEnabled": True},
        }
    }
    assert names.data == {"mapiEwsLoginUpdates": {"username": "admin"}}
    # The report's `allowed`; the event's three fields once for both, and the other's one.
    assert PARITY.answered == 1 + 3 + 1
    assert PARITY.refused == []


class _Sent:
    """Stands for Strawberry's handler: what its `send_next` would send."""

    def __init__(self) -> None:
        self.messages: list[object] = []

    async def send_message(self, message: object) -> None:
        self.messages.append(message)

    def forget_id(self, _: str) -> None:
        return None


@pytest.mark.parametrize(
    "result",
    [
        ExecutionResult({"mapiEwsLoginUpdates": {"username": "admin", "at": 'ü " \\n'}}),
        ExecutionResult(None, [GraphQLError("fell behind", extensions={"code": "X"})]),
        ExecutionResult({"a": 1}, [], {"cost": 2}),
    ],
    ids=["data", "errors", "extensions"],
)
async def test_a_next_message_is_what_strawberry_would_send(result: ExecutionResult) -> None:
    sent = _Sent()
    operation = Operation(sent, 'op "1"', "subscription { a }", None, None)  # type: ignore[arg-type]
    await operation.send_next(result)

    ours = next_prefix(operation.id) + next_payload(Rendered(result)) + "}"

    assert ours == orjson.dumps(sent.messages[0]).decode()  # the app's encode_json


async def test_dashboards_sharing_a_rendering_share_its_encoding(
    app: Starlette, gql: GraphQLClient, make: Factory
) -> None:
    first, second = await _first_results(app, gql, make, LOGINS, LOGINS)

    assert isinstance(first, Rendered) and first is second
    encoded = next_payload(first)
    assert next_payload(second) is encoded  # kept: encoded once, not once a dashboard
    assert orjson.loads(encoded)["data"] == first.data
