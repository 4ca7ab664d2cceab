"""Production mode: no GraphiQL, no introspection, no field suggestions (each configurable),
masked errors with a request id, CORS for configured origins only, security headers."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager

from api.app import create_app
from api.settings import Environment, Settings

ADMIN_ORIGIN = "https://admin.example.com"
TYPO = "{ viewr { username } }"
BAD_ENUM = 'mutation($p: MailProtocol!) { recordProtocolLogin(input: {emailAddress: "a@example.com", protocol: $p}) { allowed } }'
INTROSPECTION = "{ __schema { queryType { name } } }"


@asynccontextmanager
async def production(settings: Settings, **changes: Any) -> AsyncIterator[httpx.AsyncClient]:
    update = {"env": Environment.PRODUCTION, "allowed_origins": [ADMIN_ORIGIN], **changes}
    async with LifespanManager(create_app(settings.model_copy(update=update))) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="https://api.test") as http:
            yield http


async def post(http: httpx.AsyncClient, query: str, **variables: Any) -> Any:
    return (await http.post("/graphql", json={"query": query, "variables": variables})).json()


async def test_production_gives_no_suggestions_and_no_introspection(settings: Settings) -> None:
    async with production(settings) as http:
        typo = await post(http, TYPO)
        enum = await post(http, BAD_ENUM, p="MAPPI")
        schema = await post(http, INTROSPECTION)

    assert typo["errors"][0]["message"] == "Cannot query field 'viewr' on type 'Query'."
    assert enum["errors"][0]["message"] == (
        "Variable '$p' has invalid value: Value 'MAPPI' does not exist in 'MailProtocol' enum."
    )
    assert "data" not in schema  # a request error: refused by validation, nothing ran
    assert schema["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert "introspection has been disabled" in schema["errors"][0]["message"]


async def test_development_suggests_and_introspects_and_production_can_be_told_to(
    settings: Settings,
) -> None:
    async with production(settings, introspection=True, field_suggestions=True) as http:
        typo = await post(http, TYPO)
        schema = await post(http, INTROSPECTION)

    assert typo["errors"][0]["message"].endswith("Did you mean 'viewer'?")
    assert schema["data"] == {"__schema": {"queryType": {"name": "Query"}}}


async def test_cors_answers_the_configured_origin_only(settings: Settings) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with production(settings) as http:
        allowed = await http.options("/graphql", headers={"Origin": ADMIN_ORIGIN, **preflight})
        refused = await http.options(
            "/graphql", headers={"Origin": "https://evil.example", **preflight}
        )
        simple = await http.post(
            "/graphql", json={"query": "{ viewer { username } }"}, headers={"Origin": ADMIN_ORIGIN}
        )
        other = await http.post(
            "/graphql",
            json={"query": "{ viewer { username } }"},
            headers={"Origin": "https://evil.example"},
        )

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ADMIN_ORIGIN
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    assert simple.headers["access-control-allow-origin"] == ADMIN_ORIGIN
    assert simple.headers["access-control-expose-headers"] == "x-request-id"
    assert "access-control-allow-origin" not in other.headers


async def test_no_origin_is_allowed_when_none_is_configured(settings: Settings) -> None:
    async with production(settings, allowed_origins=[]) as http:
        response = await http.post(
            "/graphql", json={"query": "{ viewer { username } }"}, headers={"Origin": ADMIN_ORIGIN}
        )

    assert "access-control-allow-origin" not in response.headers


async def test_every_answer_carries_the_security_headers(settings: Settings) -> None:
    async with production(settings) as http:
        graphql = await http.post("/graphql", json={"query": "{ viewer { username } }"})
        health = await http.get("/healthz")
        page = await http.get("/")

    for response in (graphql, health, page):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert response.headers["strict-transport-security"] == "max-age=31536000"
        assert response.headers["x-request-id"]
    # Answers carry tokens and per-user data: never cached.
    assert graphql.headers["cache-control"] == "no-store"
    assert page.headers["cache-control"] == "no-cache"
    assert "default-src 'none'" in page.headers["content-security-policy"]


async def test_development_sends_no_hsts(settings: Settings) -> None:
    async with LifespanManager(create_app(settings)) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.get("/healthz")

    assert "strict-transport-security" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
