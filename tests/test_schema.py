import subprocess
import sys
from pathlib import Path

import pytest
from graphql import GraphQLInterfaceType, GraphQLObjectType, get_named_type

from api.graphql.schema import build_schema, schema_sdl

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT.parent / "shared" / "tools" / "check_contract.py"


def test_schema_graphql_is_what_the_code_prints() -> None:
    assert (ROOT / "schema.graphql").read_text() == schema_sdl(), (
        "run `mapi-ews-admin export-schema`"
    )


def test_the_schema_keeps_every_promise_of_the_contract_but_the_parts_not_built_yet() -> None:
    if not CHECKER.exists():
        pytest.skip(
            f"the contract checker is not at {CHECKER} (shared/ sits beside the repository)"
        )
    result = subprocess.run(
        [sys.executable, str(CHECKER), str(ROOT / "schema.graphql")],
        capture_output=True,
        text=True,
        check=False,
    )
    reported = {
        line for line in result.stdout.splitlines() if ": " in line and "contract:" not in line
    }
    pending = {
        line
        for line in (ROOT / "tests" / "contract_pending.txt").read_text().splitlines()
        if line and not line.startswith("#")
    }

    assert sorted(reported - pending) == [], "a promise of the contract is broken"
    assert sorted(pending - reported) == [], "landed: delete these lines from contract_pending.txt"
    assert result.returncode == (1 if pending else 0), result.stdout + result.stderr


def test_no_field_reachable_from_an_event_type_reads_the_viewer_or_the_context() -> None:
    """What the render-once fan-out relies on (api/transport/pipeline.py): an event rendered for
    one subscriber is sent to every subscriber who asked the same question, so no field under an
    event may depend on who is looking."""
    schema = build_schema()
    seen: set[str] = set()
    waiting = [
        "MapiEwsLoginEvent",
        "MapiEwsAccountChange",
        "MapiEwsSessionChange",
        "ProtocolSessionCommand",
    ]
    readers: list[str] = []
    while waiting:
        name = waiting.pop()
        if name in seen:
            continue
        seen.add(name)
        graphql_type = schema._schema.get_type(name)
        assert isinstance(graphql_type, GraphQLObjectType | GraphQLInterfaceType), name
        for field_name, field in graphql_type.fields.items():
            definition = field.extensions["strawberry-definition"]
            resolver = definition.base_resolver
            if definition.extensions or (resolver is not None and resolver.info_parameter):
                readers.append(f"{name}.{field_name}")
            inner = get_named_type(field.type)
            if isinstance(inner, GraphQLObjectType | GraphQLInterfaceType):
                waiting.append(inner.name)

    assert readers == []
    assert seen >= {"MapiEwsLoginEvent", "MapiEwsAccountChange", "Account", "MapiEwsSession"}


def test_every_payload_reads_as_nothing_done_with_its_user_errors_alone() -> None:
    """What api/graphql/types.py `refused` relies on: a mutation that changed nothing answers
    its payload built from its userErrors alone, every other field at a default that says so."""
    schema = build_schema()._schema
    payloads = [
        graphql_type.extensions["strawberry-definition"].origin
        for graphql_type in schema.type_map.values()
        if isinstance(graphql_type, GraphQLObjectType) and "userErrors" in graphql_type.fields
    ]

    built = {payload.__name__: payload(user_errors=[]) for payload in payloads}

    assert len(built) >= 12
    for name, payload in built.items():
        values = [v for k, v in vars(payload).items() if k != "user_errors"]
        assert all(v in (None, 0, False, []) for v in values), (name, values)


def test_every_mutation_answers_its_refusals_as_its_payload_innermost() -> None:
    """api/graphql/mutations.py: a mutation declared with `mutation(...)` turns UserErrors into
    its payload, inside its @auth; one declared with strawberry.mutation would raise them."""
    mutation_type = build_schema()._schema.mutation_type
    assert mutation_type is not None

    first = {
        name: type(field.extensions["strawberry-definition"].extensions[0]).__name__
        for name, field in mutation_type.fields.items()
    }

    assert len(first) >= 15
    assert {name for name, kind in first.items() if kind != "AnswerRefusals"} == set()
