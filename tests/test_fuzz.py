"""Schemathesis (its GraphQL support) over the whole schema, signed in as each role, against a
real server process on a free port: no answer is a 5xx, no error goes out uncoded, none is an
INTERNAL_SERVER_ERROR (every one would be a bug), nothing leaks a trace.

The examples are bounded and derandomized, so CI runs the same ones each time; set
MAPI_EWS_FUZZ_EXAMPLES (per operation and role, default 16) and MAPI_EWS_FUZZ_RANDOM=1 to search
further by hand."""

import os
import re
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.graphql import nodes

from tests.servers import ROOT, Server, running_server

EXAMPLES = int(os.environ.get("MAPI_EWS_FUZZ_EXAMPLES", "16"))
RANDOM = os.environ.get("MAPI_EWS_FUZZ_RANDOM") == "1"
CODES = {
    "UNAUTHENTICATED",
    "FORBIDDEN",
    "BAD_USER_INPUT",
    "NOT_FOUND",
    "SERVICE_UNAVAILABLE",
    "FELL_BEHIND",
}
LOGIN = 'mutation($u: String!) { login(input: {username: $u, password: "demo-password"}) { accessToken } }'
A_USER = '{ accounts(first: 1, search: "a", mapiEwsEnabled: true) { edges { node { emailAddress isDomainAdmin } } } }'

# DateTime: real instants, naive ones, and text that is not a time at all.
schemathesis.graphql.scalar(
    "DateTime",
    st.one_of(
        st.datetimes(timezones=st.just(UTC)).map(lambda d: nodes.String(d.isoformat())),
        st.datetimes().map(lambda d: nodes.String(d.isoformat())),
        st.text(max_size=30).map(nodes.String),
    ),
)
SCHEMA = schemathesis.graphql.from_path(ROOT / "schema.graphql")
OPERATIONS = [result.ok() for result in SCHEMA.get_all_operations()]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("fuzz")
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{folder / 'db.sqlite3'}"}
    with running_server(env, folder / "server.log", "--demo") as server:
        yield server


def _token(server: Server, username: str) -> str:
    response = httpx.post(
        f"{server.url}/graphql", json={"query": LOGIN, "variables": {"u": username}}
    )
    return str(response.json()["data"]["login"]["accessToken"])


@pytest.fixture(scope="module")
def roles(server: Server) -> dict[str, dict[str, str]]:
    admin = _token(server, "admin@example.com")
    found = httpx.post(
        f"{server.url}/graphql",
        json={"query": A_USER},
        headers={"Authorization": f"Bearer {admin}"},
    ).json()["data"]["accounts"]["edges"][0]["node"]
    assert not found["isDomainAdmin"]
    gateway = re.search(r"Bearer (mgw_[A-Za-z0-9_-]+)", server.output())
    assert gateway
    tokens = {
        "user": _token(server, found["emailAddress"]),
        "domain-admin": admin,
        "read-only-admin": _token(server, "admin@readonly.example"),
        "system-admin": _token(server, "sysadmin"),
        "gateway": gateway.group(1),
    }
    return {"anonymous": {}} | {
        role: {"Authorization": f"Bearer {token}"} for role, token in tokens.items()
    }


def check(response: Any, query: str) -> None:
    assert response.status_code < 500, (response.status_code, query, response.text)
    body = response.json()
    for error in body.get("errors", []):
        code = error.get("extensions", {}).get("code")
        assert code in CODES, (query, error)
        assert "Traceback" not in error["message"] and 'File "' not in error["message"]


@pytest.mark.parametrize(
    "role",
    ["anonymous", "user", "domain-admin", "read-only-admin", "system-admin", "gateway"],
)
@pytest.mark.parametrize("operation", OPERATIONS, ids=[o.label for o in OPERATIONS])
def test_no_generated_operation_breaks_the_server(
    server: Server, roles: dict[str, dict[str, str]], role: str, operation: Any
) -> None:
    headers = roles[role]
    logged_before = len(server.output())

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=list(HealthCheck),
    )
    @given(operation.as_strategy())
    def run(case: Any) -> None:
        response = case.call(base_url=f"{server.url}/graphql", headers=headers)
        check(response, case.body)

    run()

    logged = server.output()[logged_before:]
    assert not [line for line in logged.splitlines() if line.startswith(("ERROR", "CRITICAL"))]
    assert "Traceback" not in logged
