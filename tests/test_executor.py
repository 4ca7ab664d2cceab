"""The plain-attribute fast path gives exactly graphql-core's answers, errors included."""

from datetime import UTC, datetime
from enum import Enum

import pytest
import strawberry

from api.transport.executor import PlainFieldExecutor


@strawberry.enum
class Colour(Enum):
    RED = "red"


@strawberry.type
class Item:
    name: str
    nickname: str | None
    colour: Colour
    seen: datetime | None
    count: int

    @strawberry.field
    def greeting(self, punctuation: str = "!") -> str:
        return f"hello {self.name}{punctuation}"


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [
            Item(
                name="a",
                nickname=None,
                colour=Colour.RED,
                seen=datetime(2026, 1, 2, tzinfo=UTC),
                count=1,
            ),
            Item(name=None, nickname="b", colour=Colour.RED, seen=None, count=2),  # type: ignore[arg-type]
            Item(name="c", nickname=None, colour="purple", seen=None, count="many"),  # type: ignore[arg-type]
        ]


DOCUMENT = '{ items { name nickname colour seen count greeting(punctuation: "?") alias: name __typename } }'


@pytest.fixture
def schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    return strawberry.Schema(Query), strawberry.Schema(
        Query, execution_context_class=PlainFieldExecutor
    )


async def test_the_fast_path_returns_what_graphql_core_returns(
    schemas: tuple[strawberry.Schema, strawberry.Schema],
) -> None:
    plain, fast = schemas

    expected = await plain.execute(DOCUMENT)
    actual = await fast.execute(DOCUMENT)

    assert actual.data == expected.data
    assert [(e.message, e.path) for e in actual.errors or []] == [
        (e.message, e.path) for e in expected.errors or []
    ]
    assert (
        actual.errors
    )  # null in a non-null field, an unknown enum value and a bad Int were all reported


async def test_the_fast_path_serializes_scalars_and_nulls() -> None:
    fast = strawberry.Schema(Query, execution_context_class=PlainFieldExecutor)

    result = await fast.execute("{ items { nickname seen } }")

    assert result.errors is None
    assert result.data == {
        "items": [
            {"nickname": None, "seen": "2026-01-02T00:00:00+00:00"},
            {"nickname": "b", "seen": None},
            {"nickname": None, "seen": None},
        ]
    }
