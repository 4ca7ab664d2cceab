"""Third-party clients nobody here wrote, against a real server: Apollo Client 4 (npm), with its
development warnings on. (graphql-ws's client: test_one_pipeline.py; graphql-http's audit:
test_http_spec.py.)"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ROOT, Server, node_with, running_server

APOLLO = ROOT / "tests" / "js" / "apollo_client.mjs"
SIGN_IN = (
    'mutation { login(input: {username: "admin@example.com", password: "demo-password"}) '
    "{ accessToken } }"
)
WITHOUT = "{ accounts(mapiEwsEnabled: false, first: 5) { edges { node { username } } } }"
LIST = (
    "{ mapiEwsAccounts(first: 4) { totalCount edges { node { username } } } "
    "mapiEwsUsage { enabled } }"
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("clients")
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{folder / 'db.sqlite3'}"}
    with running_server(env, folder / "server.log", "--demo") as server:
        yield server


def call(server: Server, query: str, token: str | None = None) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body = httpx.post(f"{server.url}/graphql", json={"query": query}, headers=headers).json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


def apollo(server: Server, token: str, username: str, *mode: str) -> dict[str, Any]:
    node = node_with("@apollo/client")
    finished = subprocess.run(
        [
            node,
            "--conditions=development",
            str(APOLLO),
            f"{server.url}/graphql",
            token,
            username,
            *mode,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result: dict[str, Any] = json.loads(finished.stdout)
    return result


def test_apollo_pages_enables_and_updates_its_cached_usage_without_a_warning(demo: Server) -> None:
    token = call(demo, SIGN_IN)["login"]["accessToken"]
    candidates = call(demo, WITHOUT, token)["accounts"]["edges"]
    before = call(demo, LIST, token)

    run = apollo(demo, token, candidates[0]["node"]["username"])

    # relayStylePagination: the second page appended to the first, as the server lists them.
    assert run["pages"] == [
        [e["node"]["username"] for e in before["mapiEwsAccounts"]["edges"][:2]],
        [e["node"]["username"] for e in before["mapiEwsAccounts"]["edges"][2:4]],
    ]
    assert run["merged"] == run["pages"][0] + run["pages"][1]
    assert run["total"] == before["mapiEwsAccounts"]["totalCount"]
    # The enable's usage replaced the cached one (the same id): read back without a request.
    assert run["enabled"]["userErrors"] == []
    assert run["cached"]["enabled"] == before["mapiEwsUsage"]["enabled"] + 1
    assert run["cached"]["enabled"] == run["enabled"]["usage"]["enabled"]
    assert run["requests"] == ["List", "List", "Usage", "UsageEnabled", "Enable"]
    assert run["printed"] == []


def test_without_ids_apollo_warns_so_the_silence_above_means_something(demo: Server) -> None:
    token = call(demo, SIGN_IN)["login"]["accessToken"]
    candidates = call(demo, WITHOUT, token)["accounts"]["edges"]

    run = apollo(demo, token, candidates[-1]["node"]["username"], "control")

    assert any("may be lost" in line["text"] for line in run["printed"]), run["printed"]
    assert Path(APOLLO).exists()
