import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from asgi_lifespan import LifespanManager

from api.app import create_app
from api.services import domains
from api.settings import Environment, Settings
from tests.conftest import REDIS_URL, Factory, GraphQLClient
from tests.servers import free_port

USAGE = "{ mapiEwsUsage { enabled } }"


@pytest.fixture
async def admin_token(make: Factory) -> str:
    example = await make.domain("example.com")
    return await make.token_for(await make.account(example, "admin", admin=True))


async def test_queries_work_over_get_and_mutations_do_not(
    gql: GraphQLClient, admin_token: str
) -> None:
    headers = {"Authorization": f"Bearer {admin_token}"}

    query = await gql.http.get("/graphql", params={"query": USAGE}, headers=headers)
    mutation = await gql.http.get(
        "/graphql",
        params={
            "query": 'mutation { login(input: {username: "a", password: "b"}) { accessToken } }'
        },
    )

    assert query.json()["data"] == {"mapiEwsUsage": {"enabled": 0}}
    # GraphQL over HTTP: 405, and where to send it instead.
    assert (mutation.status_code, mutation.headers["allow"]) == (405, "POST")
    assert "mutations are not allowed when using get" in mutation.text.lower()


async def test_an_unexpected_error_is_masked_and_logged_with_the_request_id(
    gql: GraphQLClient,
    admin_token: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(**_: object) -> None:
        raise RuntimeError("connection to db failed: password=hunter2")

    monkeypatch.setattr(domains, "usage_of", broken)

    with caplog.at_level(logging.ERROR, logger="api.graphql"):
        response = await gql.http.post(
            "/graphql",
            json={"query": USAGE},
            headers={"Authorization": f"Bearer {admin_token}", "X-Request-ID": "req-42"},
        )

    body = response.json()
    assert response.headers["x-request-id"] == "req-42"
    assert body["errors"][0]["message"] == "Internal server error."
    assert body["errors"][0]["extensions"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "requestId": "req-42",
    }
    assert "hunter2" not in response.text
    assert any(
        record.exc_info and "hunter2" in str(record.exc_info[1]) for record in caplog.records
    )


async def test_a_body_over_the_cap_is_refused_with_413(gql: GraphQLClient) -> None:
    response = await gql.http.post(
        "/graphql",
        content=b"{" + b" " * 300_000 + b"}",
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 413
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_alias_floods_and_token_floods_are_refused(gql: GraphQLClient) -> None:
    aliases = "{ " + " ".join(f"a{i}: viewer {{ username }}" for i in range(40)) + " }"

    flood = await gql.post(aliases)
    tokens = await gql.post("{ " + "viewer { username } " * 1000 + "}")

    assert flood["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "alias" in flood["errors"][0]["message"].lower()
    assert tokens["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "token" in tokens["errors"][0]["message"].lower()


async def test_a_syntax_error_is_bad_user_input(gql: GraphQLClient) -> None:
    body = await gql.post("{ viewer { ")

    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_health_readiness_and_metrics(gql: GraphQLClient) -> None:
    health = await gql.http.get("/healthz")
    ready = await gql.http.get("/readyz")
    await gql.post("{ viewer { username } }")
    metrics = await gql.http.get("/metrics")

    assert health.json() == {"status": "ok"}
    assert ready.json() == {"status": "ok", "database": "up"}
    assert (
        'mapi_ews_http_requests_total{method="POST",path="/graphql",status="200"} 1.0'
        in metrics.text
    )
    assert "mapi_ews_http_request_duration_seconds_bucket" in metrics.text


async def test_graphiql_is_served_to_browsers_in_development(gql: GraphQLClient) -> None:
    response = await gql.http.get("/graphql", headers={"Accept": "text/html"})

    assert response.status_code == 200
    assert "graphiql" in response.text.lower()
    # Its subscriptions carry the headers editor's Authorization in connection_init.
    assert "wsConnectionParams" in response.text
    assert 'localStorage.getItem("graphiql:headers")' in response.text


async def test_the_dashboard_is_served_with_a_strict_content_security_policy(
    gql: GraphQLClient,
) -> None:
    page = await gql.http.get("/")
    script = await gql.http.get("/static/app.js")
    missing = await gql.http.get("/static/nothing.js")

    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["cache-control"] == "no-cache"
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    # Only the page's own files: no CDN, nothing inline.
    assert sorted(re.findall(r'(?:src|href)="([^"]+)"', page.text)) == [
        "#main",
        "/static/app.css",
        "/static/app.js",
        "data:,",
    ]
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.headers["x-content-type-options"] == "nosniff"
    assert missing.status_code == 404


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    application = create_app(settings)
    async with LifespanManager(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.mark.redis
async def test_readiness_includes_redis_when_one_is_configured(settings: Settings) -> None:
    async with served(settings.model_copy(update={"redis_url": REDIS_URL})) as http:
        response = await http.get("/readyz")

    assert response.json() == {"status": "ok", "database": "up", "redis": "up"}


async def test_readiness_fails_while_redis_does_not_answer(settings: Settings) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"

    async with served(settings.model_copy(update={"redis_url": closed})) as http:
        response = await http.get("/readyz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "database": "up", "redis": "down"}


async def test_production_serves_no_graphiql(settings: Settings) -> None:
    production = settings.model_copy(update={"env": Environment.PRODUCTION})

    async with served(production) as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})

    assert "graphiql" not in page.text.lower()
    assert page.status_code in (400, 404)
