"""The tab's whole story against real `serve` processes over real sockets."""

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import BACKENDS, migrated_postgres
from tests.servers import ROOT, running_server

LOGIN = "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { accessToken userErrors { code } } }"
LIST = "{ mapiEwsAccounts(first: 100) { totalCount edges { node { username } } } mapiEwsUsage { enabled limit } }"
PICK = "{ accounts(mapiEwsEnabled: false, first: 100) { edges { node { username } } } }"
ENABLE = "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { usage { enabled } userErrors { code field } } }"
DISABLE = "mutation($u: [String!]!) { disableMapiEws(input: {usernames: $u}) { usage { enabled } userErrors { code } } }"
AUDIT = "{ auditLog(first: 5) { edges { node { action target actor } } } }"
UPDATE = "mutation($n: String!, $m: Int) { updateDomain(input: {name: $n, maxMapiEwsAccounts: $m}) { userErrors { code } } }"


def call(url: str, query: str, variables: dict | None = None, token: str | None = None) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = httpx.post(
        f"{url}/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )
    body = response.json()
    assert "errors" not in body, body
    return body["data"]


def sign_in(url: str, username: str) -> str:
    data = call(url, LOGIN, {"u": username, "p": "demo-password"})
    assert data["login"]["userErrors"] == []
    return str(data["login"]["accessToken"])


def test_a_domain_administrator_works_the_tab_on_the_demo(tmp_path: Path) -> None:
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'demo.sqlite3'}"}
    with running_server(env, tmp_path / "server.log", "--demo") as server:
        assert "admin@example.com" in server.output()
        token = sign_in(server.url, "admin@example.com")
        # The printed gateway example works as printed: an allowed report.
        printed = next(line for line in server.output().splitlines() if "curl -s" in line)
        gateway = re.search(r"Bearer (mgw_[\w-]+)", printed)
        body = re.search(r"-d '(.+)'$", printed)
        assert gateway and body, printed
        report = httpx.post(
            f"{server.url}/graphql",
            content=body.group(1),
            headers={
                "Authorization": f"Bearer {gateway.group(1)}",
                "Content-Type": "application/json",
            },
        ).json()
        assert report["data"] == {"recordProtocolLogin": {"allowed": True, "userErrors": []}}
        # The printed simulate-gateway line names a program that runs from where `serve` ran
        # (`make run`: .venv/bin/python -m api, not an installed mapi-ews-admin).
        simulate = next(line for line in server.output().splitlines() if "simulate-gateway" in line)
        program = simulate.split()[1]
        assert (ROOT / program).is_file() or Path(program).is_file(), simulate
        # Gateways have no budget (README, Operations): the cost, and no throttle status.
        assert report["extensions"] == {"cost": {"requestedQueryCost": 4, "actualQueryCost": 3}}

        tab = call(server.url, LIST, token=token)
        assert tab["mapiEwsUsage"] == {"enabled": 12, "limit": 25}
        assert tab["mapiEwsAccounts"]["totalCount"] == 12
        candidates = [
            e["node"]["username"] for e in call(server.url, PICK, token=token)["accounts"]["edges"]
        ]
        candidates.remove("admin")

        one = call(server.url, ENABLE, {"u": [candidates[0]]}, token)["enableMapiEws"]
        several = call(server.url, ENABLE, {"u": candidates[1:5]}, token)["enableMapiEws"]
        assert (one["usage"], several["usage"]) == ({"enabled": 13}, {"enabled": 17})
        too_many = call(server.url, ENABLE, {"u": candidates[5:15]}, token)["enableMapiEws"]
        assert too_many["userErrors"] == [
            {"code": "LIMIT_EXCEEDED", "field": ["input", "usernames"]}
        ]
        off = call(server.url, DISABLE, {"u": candidates[1:3]}, token)["disableMapiEws"]
        assert off == {"usage": {"enabled": 15}, "userErrors": []}

        audit = call(server.url, AUDIT, token=token)["auditLog"]["edges"]
        assert [(e["node"]["action"], e["node"]["actor"]) for e in audit[:3]] == [
            ("MAPI_EWS_DISABLED", "admin@example.com"),
            ("MAPI_EWS_DISABLED", "admin@example.com"),
            ("MAPI_EWS_ENABLED", "admin@example.com"),
        ]

        read_only = sign_in(server.url, "admin@readonly.example")
        refused = httpx.post(
            f"{server.url}/graphql",
            json={"query": ENABLE, "variables": {"u": ["admin"]}},
            headers={"Authorization": f"Bearer {read_only}"},
        ).json()
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


@pytest.fixture(params=BACKENDS)
async def shared_database(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[dict[str, str]]:
    """The environment of server processes sharing one database, migrated before they start."""
    if request.param == "sqlite":
        yield {"MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'shared.sqlite3'}"}
        return
    async with migrated_postgres() as env:
        yield env


async def test_enables_racing_through_two_processes_on_one_database_respect_the_limit(
    tmp_path: Path, shared_database: dict[str, str]
) -> None:
    env = shared_database
    with (
        running_server(env, tmp_path / "a.log", "--demo") as first,
        running_server(env, tmp_path / "b.log") as second,
    ):
        sysadmin = sign_in(first.url, "sysadmin")
        call(first.url, UPDATE, {"n": "example.com", "m": 16}, sysadmin)  # 12 in use: room for 4
        token = sign_in(first.url, "admin@example.com")
        candidates = [
            e["node"]["username"] for e in call(first.url, PICK, token=token)["accounts"]["edges"]
        ]
        candidates.remove("admin")

        async with httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            responses = await asyncio.gather(
                *(
                    http.post(
                        f"{(first, second)[i % 2].url}/graphql",
                        json={"query": ENABLE, "variables": {"u": [name]}},
                    )
                    for i, name in enumerate(candidates[:20])
                )
            )

        assert [r.status_code for r in responses] == [200] * 20
        bodies = [r.json() for r in responses]
        assert all("errors" not in b for b in bodies), bodies
        accepted = [b for b in bodies if not b["data"]["enableMapiEws"]["userErrors"]]
        assert len(accepted) == 4
        assert call(second.url, LIST, token=token)["mapiEwsUsage"] == {"enabled": 16, "limit": 16}
