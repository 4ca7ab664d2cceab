"""GraphQL over HTTP as its specification says: the media type a client accepts, request errors
without a `data` entry (400 in application/graphql-response+json, 200 in application/json), a
mutation over GET answered 405, and graphql-http's own server audit finding nothing to flag."""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Factory
from tests.servers import ROOT, Server, node_with, running_server

GRAPHQL_RESPONSE = "application/graphql-response+json"
REQUEST_ERRORS = {
    "syntax": {"query": "{ viewer { "},
    "validation": {"query": "{ noSuchField }"},
    "unknown operation": {"query": "query A { viewer { role } }", "operationName": "B"},
    "variables that do not coerce": {
        "query": "query($first: Int) { mapiEwsAccounts(first: $first) { totalCount } }",
        "variables": {"first": "many"},
    },
}


@pytest.mark.parametrize("request_body", REQUEST_ERRORS.values(), ids=REQUEST_ERRORS)
@pytest.mark.parametrize(
    ("accept", "status"),
    [(GRAPHQL_RESPONSE, 400), ("application/json", 200)],
    ids=["graphql", "json"],
)
async def test_a_request_error_has_no_data_entry_and_the_status_of_the_media_type(
    client: httpx.AsyncClient, make: Factory, request_body: dict, accept: str, status: int
) -> None:
    domain = await make.domain("example.com")
    token = await make.token_for(await make.account(domain, "admin", admin=True))

    response = await client.post(
        "/graphql",
        json=request_body,
        headers={"Accept": accept, "Authorization": f"Bearer {token}"},
    )

    assert response.status_code == status
    assert response.headers["content-type"] == accept
    body = response.json()
    assert "data" not in body
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_an_answer_is_in_the_media_type_the_client_accepts(client: httpx.AsyncClient) -> None:
    as_graphql = await client.post(
        "/graphql",
        json={"query": "{ viewer { role } }"},
        headers={"Accept": f"{GRAPHQL_RESPONSE}, application/json;q=0.9"},
    )
    as_json = await client.post("/graphql", json={"query": "{ viewer { role } }"})

    assert (as_graphql.status_code, as_graphql.headers["content-type"]) == (200, GRAPHQL_RESPONSE)
    assert (as_json.status_code, as_json.headers["content-type"]) == (200, "application/json")
    assert as_graphql.json()["data"] == as_json.json()["data"] == {"viewer": None}


async def test_an_error_while_fields_run_keeps_its_data_entry(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        json={"query": "{ mapiEwsUsage { enabled } }"},
        headers={"Accept": GRAPHQL_RESPONSE},
    )

    assert response.status_code == 200
    body = response.json()
    assert body["data"] is None
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_a_mutation_over_get_is_405_with_allow_post(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": "mutation { __typename }"})

    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "data" not in response.json()


@pytest.mark.parametrize(
    "extensions", ["text", 1, True, [1]], ids=["string", "number", "boolean", "array"]
)
async def test_extensions_that_are_not_an_object_are_a_malformed_request(
    client: httpx.AsyncClient, extensions: object
) -> None:
    posted = await client.post(
        "/graphql", json={"query": "{ __typename }", "extensions": extensions}
    )
    got = await client.get(
        "/graphql", params={"query": "{ __typename }", "extensions": json.dumps(extensions)}
    )

    assert posted.status_code == got.status_code == 400
    assert "data" not in posted.json()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("http-spec")
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{folder / 'db.sqlite3'}"}
    with running_server(env, folder / "server.log") as server:
        yield server


def test_graphql_https_own_server_audit_finds_nothing_to_flag(served: Server) -> None:
    """The specification's own audit (npm graphql-http): every MUST, SHOULD and MAY holds."""
    audit = ROOT / "tests" / "js" / "graphql_http_audit.mjs"
    node = node_with("graphql-http")

    finished = subprocess.run(
        [node, str(audit), f"{served.url}/graphql"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )

    results = json.loads(finished.stdout)
    assert len(results) > 50
    flagged = [(r["status"], r["name"], r["reason"]) for r in results if r["status"] != "ok"]
    assert flagged == []
    assert Path(audit).exists()
