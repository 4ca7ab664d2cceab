"""Every operation passes the one pipeline, whatever carried it: POST, GET and WebSocket give the
same answers, and a client's mistakes over graphql-transport-ws are answered as graphql-ws (the
reference implementation) answers them, with a coded `error` message and a quiet log."""

import json
import logging
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from api.transport.pipeline import GraphQLRequest, Pipeline, Prepared
from tests.servers import Server, metric, node_with, running_server, serving
from tests.ws import GraphQLWebSocket, websocket

ROOT = Path(__file__).resolve().parent.parent
LOGIN = 'mutation { login(input: {username: "admin@example.com", password: "demo-password"}) { accessToken } }'
DEEP_INTROSPECTION = "{ __schema { types { " + "ofType { " * 60 + "name" + " }" * 60 + " } } }"

# (document, operationName): each a client's mistake, refused before anything runs.
MISTAKES: dict[str, tuple[str, str | None]] = {
    "syntax": ("{ viewer { ", None),
    "validation": ("{ nope }", None),
    "unknown operation name": ("query A { viewer { username } }", "B"),
    "no operation chosen": ("query A { viewer { username } } query B { __typename }", None),
    "empty document": ("", None),
    "too many tokens": ("{ " + "viewer { username } " * 1000 + "}", None),
    "too deep": ("{ viewer { " * 12 + "username" + " }" * 12, None),
    "too deep introspection": (DEEP_INTROSPECTION, None),
    "unknown variable type": ("query($n: Nope) { viewer { username } }", None),
}

# Queries that pass over every transport, answered alike.
QUERIES: list[tuple[str, dict[str, Any] | None, str | None]] = [
    ("{ viewer { username role domain } }", None, None),
    ("{ mapiEwsAccounts(first: 3) { totalCount edges { node { username } } } }", None, None),
    ("query($d: String) { mapiEwsUsage(domain: $d) { enabled limit } }", {"d": "other.org"}, None),
    ("query($n: Int) { mapiEwsAccounts(first: $n) { totalCount } }", {"n": "ten"}, None),
    ("query($n: Int) { mapiEwsAccounts(first: $n) { totalCount } }", {"n": 1000}, None),
    ("query A { viewer { username } } query B { __typename }", None, "B"),
    ("{ nope }", None, None),
    ("{ viewer { ", None, None),
]


@dataclass
class Running:
    server: Server
    admin: str


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    folder = tmp_path_factory.mktemp("pipeline")
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{folder / 'demo.sqlite3'}"}
    with running_server(env, folder / "server.log", "--demo") as server:
        signed_in = httpx.post(f"{server.url}/graphql", json={"query": LOGIN}).json()
        yield Running(server, signed_in["data"]["login"]["accessToken"])


@pytest.fixture
async def connection(running: Running) -> AsyncIterator[GraphQLWebSocket]:
    async with websocket(running.server.url) as ws:
        assert await ws.init({"Authorization": f"Bearer {running.admin}"}) == {
            "type": "connection_ack"
        }
        yield ws


async def over_websocket(
    ws: GraphQLWebSocket, query: str, variables: dict[str, Any] | None, name: str | None
) -> dict[str, Any]:
    """The operation's answer in HTTP's shape: `next` then `complete`, or one `error`."""
    payload: dict[str, Any] = {"query": query, "variables": variables}
    if name is not None:
        payload["operationName"] = name
    await ws.send({"id": "1", "type": "subscribe", "payload": payload})
    message = await ws.receive()
    assert message["id"] == "1"
    if message["type"] == "error":  # a request error: no data, as over HTTP
        return {"errors": message["payload"]}
    assert message["type"] == "next", message
    assert await ws.receive() == {"id": "1", "type": "complete"}
    result: dict[str, Any] = message["payload"]
    return result


@pytest.mark.parametrize("mistake", list(MISTAKES))
async def test_a_mistake_over_websocket_is_a_coded_error_message_and_the_log_stays_quiet(
    running: Running, connection: GraphQLWebSocket, mistake: str
) -> None:
    query, name = MISTAKES[mistake]
    log_before = len(running.server.output())
    internal_before = await metric(
        running.server.url, 'graphql_errors_total{code="INTERNAL_SERVER_ERROR"}'
    )
    payload: dict[str, Any] = {"query": query}
    if name is not None:
        payload["operationName"] = name

    await connection.send({"id": "m", "type": "subscribe", "payload": payload})
    answer = await connection.receive()
    await connection.send(
        {"id": "next", "type": "subscribe", "payload": {"query": "{ __typename }"}}
    )
    after = await connection.receive()

    assert (answer["type"], answer["id"]) == ("error", "m")
    assert answer["payload"]
    assert {error["extensions"]["code"] for error in answer["payload"]} == {"BAD_USER_INPUT"}
    # The connection carries on.
    assert (after["id"], after["type"]) == ("next", "next")
    assert after["payload"]["data"] == {"__typename": "Query"}
    logged = running.server.output()[log_before:]
    assert "ERROR" not in logged
    assert "WARNING" not in logged
    assert "Traceback" not in logged
    assert (
        await metric(running.server.url, 'graphql_errors_total{code="INTERNAL_SERVER_ERROR"}')
        == internal_before
    )


def test_graphql_ws_its_own_client_sees_each_mistake_as_a_coded_error(running: Running) -> None:
    """The reference implementation's client (npm graphql-ws), not ours, judges the answers."""
    client = ROOT / "tests" / "js" / "graphql_ws_client.mjs"
    node = node_with("graphql-ws")
    operations = {
        name: {"query": query, **({"operationName": op} if op else {})}
        for name, (query, op) in MISTAKES.items()
    }
    operations["a good one"] = {"query": "{ viewer { username role } }"}
    log_before = len(running.server.output())
    url = running.server.url.replace("http://", "ws://") + "/graphql"

    finished = subprocess.run(
        [node, str(client)],
        input=json.dumps({"url": url, "token": running.admin, "operations": operations}),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    outcomes = json.loads(finished.stdout)
    good = outcomes.pop("a good one")
    [result] = good.pop("results")
    assert good == {"ended": "complete", "errors": []}
    assert result["data"] == {"viewer": {"username": "admin@example.com", "role": "DOMAIN_ADMIN"}}
    assert result["extensions"]["cost"]["requestedQueryCost"] == 3
    for name, outcome in outcomes.items():
        assert outcome["ended"] == "error", (name, outcome)
        assert outcome["results"] == [], name
        assert {e["extensions"]["code"] for e in outcome["errors"]} == {"BAD_USER_INPUT"}, name
    assert sorted(outcomes) == sorted(MISTAKES)
    logged = running.server.output()[log_before:]
    assert "ERROR" not in logged and "WARNING" not in logged and "Traceback" not in logged


@pytest.mark.parametrize(("query", "variables", "name"), QUERIES)
async def test_post_get_and_websocket_answer_alike(
    running: Running,
    connection: GraphQLWebSocket,
    query: str,
    variables: dict[str, Any] | None,
    name: str | None,
) -> None:
    headers = {"Authorization": f"Bearer {running.admin}"}
    body: dict[str, Any] = {"query": query, "variables": variables}
    params: dict[str, str] = {"query": query}
    if variables is not None:
        params["variables"] = httpx.Response(200, json=variables).text
    if name:
        body["operationName"] = params["operationName"] = name
    async with httpx.AsyncClient(base_url=running.server.url, headers=headers) as http:
        posted = await http.post("/graphql", json=body)
        got = await http.get("/graphql", params=params)

    sent = await over_websocket(connection, query, variables, name)

    assert posted.status_code == got.status_code == 200
    answers = [spent(posted.json()), spent(got.json()), spent(sent)]
    if "data" not in sent:
        # A request error over WebSocket is an `error` message: a list of errors, no room for
        # the answer's extensions (its cost, where it was charged, was refunded: nothing ran).
        assert answers[0].pop("extensions", None) == answers[1].pop("extensions", None)
    assert answers[0] == answers[1] == answers[2]
    assert "errors" in sent or sent["data"]


def spent(answer: dict[str, Any]) -> dict[str, Any]:
    """The answer without the budget left after it (each request spends its own)."""
    status = answer.get("extensions", {}).get("cost", {}).get("throttleStatus")
    if status is not None:
        assert isinstance(status.pop("currentlyAvailable"), int)
    return answer


def test_a_60_deep_oftype_chain_is_refused_over_http_too(running: Running) -> None:
    response = httpx.post(f"{running.server.url}/graphql", json={"query": DEEP_INTROSPECTION})

    assert "data" not in response.json()  # a request error: nothing ran
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "introspection" in error["message"]


def test_graphiqls_own_introspection_query_passes_the_limits(running: Running) -> None:
    from graphql import get_introspection_query

    query = get_introspection_query(
        descriptions=True,
        specified_by_url=True,
        directive_is_repeatable=True,
        schema_description=True,
        input_value_deprecation=True,
    )
    response = httpx.post(f"{running.server.url}/graphql", json={"query": query})

    assert "errors" not in response.json()
    assert response.json()["data"]["__schema"]["queryType"]["name"] == "Query"


def test_a_subscription_sent_over_http_is_refused_before_it_runs(running: Running) -> None:
    response = httpx.post(
        f"{running.server.url}/graphql",
        json={"query": "subscription { mapiEwsLoginUpdates { id } }"},
        headers={"Authorization": f"Bearer {running.admin}"},
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {
                "message": "Subscriptions are served over WebSocket only: graphql-transport-ws on "
                "/graphql.",
                "extensions": {"code": "BAD_USER_INPUT"},
            }
        ]
    }


async def test_a_fault_of_ours_over_websocket_is_masked_logged_and_the_connection_carries_on(
    settings: Settings, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings)
    pipeline: Pipeline = app.state.pipeline
    prepare = pipeline.prepare

    def broken(request: GraphQLRequest, *args: Any, **kwargs: Any) -> Prepared:
        if request.query == "{ viewer { role } }":
            raise RuntimeError("connection to db failed: password=hunter2")
        return prepare(request, *args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare", broken)
    async with serving(app) as url, websocket(url) as ws:
        assert await ws.init() == {"type": "connection_ack"}
        with caplog.at_level(logging.ERROR, logger="api.graphql"):
            await ws.subscribe("broken", "{ viewer { role } }")
            answer = await ws.receive()
        await ws.subscribe("after", "{ __typename }")
        after = await ws.receive()
        internal = await metric(url, 'graphql_errors_total{code="INTERNAL_SERVER_ERROR"}')

    assert (answer["type"], answer["id"]) == ("error", "broken")
    [error] = answer["payload"]
    assert error["message"] == "Internal server error."
    assert error["extensions"]["code"] == "INTERNAL_SERVER_ERROR"
    assert error["extensions"]["requestId"]
    assert "hunter2" not in str(answer)
    assert any(
        record.exc_info and "hunter2" in str(record.exc_info[1]) for record in caplog.records
    )
    assert internal == 1
    assert (after["id"], after["type"]) == ("after", "next")
    assert after["payload"]["data"] == {"__typename": "Query"}
