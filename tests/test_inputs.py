"""Input types marked `plain_input` are built exactly as Strawberry's own conversion builds them,
from values as graphql-core coerces them (api/graphql/inputs.py)."""

from datetime import UTC, datetime
from typing import Any

import pytest
from graphql import GraphQLInputObjectType, coerce_input_value
from strawberry.types.arguments import convert_argument

from api.graphql.activity import RecordProtocolLoginInput, RecordProtocolLoginsInput
from api.graphql.protocol_sessions import SessionIdsInput
from api.graphql.schema import build_schema
from api.graphql.seats import DisableMapiEwsInput, DisconnectMapiEwsInput, EnableMapiEwsInput

SCHEMA = build_schema()
SAMPLES: list[tuple[type, dict[str, Any]]] = [
    (
        RecordProtocolLoginInput,
        {
            "emailAddress": "alice@example.com",
            "protocol": "EWS",
            "clientAddress": "192.0.2.7",
            "occurredAt": "2026-12-01T09:30:00+00:00",
            "sessionId": "ews-1",
            "clientName": "Apple Mail",
        },
    ),
    (RecordProtocolLoginInput, {"emailAddress": "alice@example.com", "protocol": "MAPI"}),
    (
        RecordProtocolLoginInput,
        {"emailAddress": "a@b.example", "protocol": "MAPI", "sessionId": None},
    ),
    (
        RecordProtocolLoginsInput,
        {
            "reports": [
                {"emailAddress": "alice@example.com", "protocol": "EWS", "sessionId": "s"},
                {"emailAddress": "bob@example.com", "protocol": "MAPI", "clientName": None},
            ]
        },
    ),
    (RecordProtocolLoginsInput, {"reports": []}),
    (SessionIdsInput, {"sessionIds": ["a", "b"]}),
    (SessionIdsInput, {"sessionIds": []}),
    (EnableMapiEwsInput, {"usernames": ["alice", "bob"]}),
    (EnableMapiEwsInput, {"domain": "example.com", "usernames": ["alice"]}),
    (DisableMapiEwsInput, {"domain": None, "usernames": ["alice"]}),
    (DisconnectMapiEwsInput, {"usernames": ["carol"]}),
]


def coerced(cls: type, value: dict[str, Any]) -> Any:
    """`value` as graphql-core hands it to the resolver (enum members, parsed scalars)."""
    name = SCHEMA.config.name_converter.from_type(cls.__strawberry_definition__)  # type: ignore[attr-defined]
    graphql_type = SCHEMA._schema.get_type(name)
    assert isinstance(graphql_type, GraphQLInputObjectType)
    return coerce_input_value(value, graphql_type)


def strawberrys_way(cls: type, value: Any) -> Any:
    definition = cls.__strawberry_definition__  # type: ignore[attr-defined]
    hook, definition.from_input = definition.from_input, None
    try:
        return convert_argument(value, cls, SCHEMA.schema_converter.scalar_registry, SCHEMA.config)
    finally:
        definition.from_input = hook


@pytest.mark.parametrize(("cls", "value"), SAMPLES, ids=lambda v: getattr(v, "__name__", ""))
def test_a_plain_input_is_built_as_strawberry_builds_it(cls: type, value: dict[str, Any]) -> None:
    given = coerced(cls, value)

    ours = convert_argument(given, cls, SCHEMA.schema_converter.scalar_registry, SCHEMA.config)

    assert ours == strawberrys_way(cls, given)
    assert type(ours) is cls


def test_list_values_are_copies_so_one_request_cannot_change_the_next() -> None:
    given = coerced(SessionIdsInput, {"sessionIds": ["a"]})

    built = convert_argument(
        given, SessionIdsInput, SCHEMA.schema_converter.scalar_registry, SCHEMA.config
    )

    assert built.session_ids == ["a"] and built.session_ids is not given["sessionIds"]


def test_every_marked_field_keeps_its_python_types() -> None:
    given = coerced(SAMPLES[0][0], SAMPLES[0][1])

    built = convert_argument(
        given, RecordProtocolLoginInput, SCHEMA.schema_converter.scalar_registry, SCHEMA.config
    )

    assert built.occurred_at == datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
    assert type(built.protocol).__name__ == "MailProtocol"
