"""The direct path (api/graphql/direct.py) answers exactly as Strawberry's view would."""

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from api.auth.tokens import read_access_token
from tests.conftest import Factory

CASES: list[tuple[str, dict[str, Any] | None, str | None]] = [
    ("{ viewer { username role domain } }", None, None),
    ("{ mapiEwsAccounts { totalCount edges { node { username } } } }", None, None),
    ("query($d: String) { mapiEwsUsage(domain: $d) { enabled limit } }", {"d": "other.org"}, None),
    ("query($n: Int) { mapiEwsAccounts(first: $n) { totalCount } }", {"n": "ten"}, None),
    ("query($n: Int) { mapiEwsAccounts(first: $n) { totalCount } }", {"n": 1000}, None),
    (
        'mutation { enableMapiEws(input: {usernames: ["nobody"]}) { userErrors { code field } } }',
        None,
        None,
    ),
    ("query A { viewer { username } } query B { __typename }", None, "B"),
    ("query A { viewer { username } } query B { __typename }", None, None),
    ("{ nope }", None, None),
    ("{ viewer { ", None, None),
]


class ViewOnly:
    """Strawberry's view alone, with the principal the Guard would have read."""

    def __init__(self, app: Starlette) -> None:
        self.view = app.state.graphql
        self.key = self.view.settings.signing_key

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            value = dict(scope["headers"]).get(b"authorization")
            token = value.decode().removeprefix("Bearer ") if value else None
            scope["principal"] = read_access_token(token, key=self.key) if token else None
        await self.view(scope, receive, send)


@pytest.fixture
async def view_client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=ViewOnly(app))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.mark.parametrize("signed_in", [False, True])
@pytest.mark.parametrize(("query", "variables", "name"), CASES)
async def test_the_direct_path_answers_as_strawberrys_view_does(
    client: httpx.AsyncClient,
    view_client: httpx.AsyncClient,
    make: Factory,
    signed_in: bool,
    query: str,
    variables: dict[str, Any] | None,
    name: str | None,
) -> None:
    domain = await make.domain("example.com", limit=3)
    admin = await make.account(domain, "admin", admin=True)
    await make.account(domain, "alice", enabled=True)
    headers = {"Authorization": f"Bearer {await make.token_for(admin)}"} if signed_in else {}
    body: dict[str, Any] = {"query": query, "variables": variables}
    if name:
        body["operationName"] = name

    direct = await client.post("/graphql", json=body, headers=headers)
    view = await view_client.post("/graphql", json=body, headers=headers)

    assert (direct.status_code, direct.json()) == (view.status_code, view.json())


async def test_a_plain_post_takes_the_direct_path_and_the_rest_goes_to_the_view(
    app: Starlette, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    view_calls: list[str] = []
    original = app.state.graphql.run

    async def counted(*args: Any, **kwargs: Any) -> Any:
        view_calls.append("view")
        return await original(*args, **kwargs)

    monkeypatch.setattr(app.state.graphql, "run", counted)

    direct = await client.post("/graphql", json={"query": "{ viewer { username } }"})
    invalid = await client.post("/graphql", json={"query": "{ nope }"})
    by_get = await client.get("/graphql", params={"query": "{ viewer { username } }"})

    assert direct.json() == {"data": {"viewer": None}}
    assert "errors" in invalid.json()
    assert by_get.json() == {"data": {"viewer": None}}
    assert view_calls == ["view", "view"]  # the invalid document and the GET, not the POST
