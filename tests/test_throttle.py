"""Password guessing is slowed, then locked, per username and per client address, without
telling whether the username exists."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from api.app import create_app
from api.auth import passwords
from api.services import sign_ins
from api.settings import Settings
from tests.conftest import PASSWORD, REDIS_URL, Factory
from tests.servers import Server, running_server

LOGIN = """
mutation($u: String!, $p: String!) {
  login(input: {username: $u, password: $p}) { accessToken userErrors { field code message } }
}
"""
WRONG = "wrong-password-0"
STRICT = {
    "login_free_failures": 3,
    "login_lock_failures": 5,
    "login_address_free_failures": 4,
    "login_address_lock_failures": 50,
    "login_lock_seconds": 120,
}


@asynccontextmanager
async def server(settings: Settings, **changes: Any) -> AsyncIterator[Any]:
    application = create_app(settings.model_copy(update={**STRICT, **changes}))
    async with LifespanManager(application):
        yield application


async def sign_in(app: Any, username: str, password: str, address: str = "192.0.2.1") -> Any:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.post(
            "/graphql", json={"query": LOGIN, "variables": {"u": username, "p": password}}
        )
    payload = response.json()["data"]["login"]
    if payload["accessToken"]:
        return "signed in"
    (error,) = payload["userErrors"]
    return error["code"], error["message"]


BAD = ("INVALID_CREDENTIALS", "The username or password is wrong.")


def wait(seconds: int) -> tuple[str, str]:
    unit = "second" if seconds == 1 else "seconds"
    return ("TOO_MANY_ATTEMPTS", f"Too many failed sign-ins: try again in {seconds} {unit}.")


async def test_failures_back_off_and_then_lock_the_username(
    settings: Settings, make: Factory
) -> None:
    example = await make.domain("example.com")
    await make.account(example, "alice")
    async with server(settings) as app:
        answers = [await sign_in(app, "alice@example.com", WRONG) for _ in range(3)]
        # The fourth comes too soon: refused, even with the right password.
        too_soon = await sign_in(app, "alice@example.com", PASSWORD)
        await asyncio.sleep(1.1)
        fourth = await sign_in(app, "alice@example.com", WRONG)
        backoff = await sign_in(app, "alice@example.com", WRONG)
        await asyncio.sleep(2.1)
        fifth = await sign_in(app, "alice@example.com", WRONG)
        locked = await sign_in(app, "alice@example.com", PASSWORD)

    assert answers == [BAD, BAD, BAD]
    assert too_soon == wait(1)
    assert fourth == BAD
    assert backoff == wait(2)
    assert fifth == BAD
    assert locked == ("TOO_MANY_ATTEMPTS", "Too many failed sign-ins: try again in 2 minutes.")


async def test_an_unknown_username_gets_exactly_the_answers_of_a_known_one(
    settings: Settings, make: Factory
) -> None:
    example = await make.domain("example.com")
    await make.account(example, "alice")
    async with server(settings) as app:
        known = [await sign_in(app, "alice@example.com", WRONG, "192.0.2.1") for _ in range(5)]
        unknown = [await sign_in(app, "ghost@example.com", WRONG, "192.0.2.2") for _ in range(5)]

    assert known == unknown == [BAD, BAD, BAD, wait(1), wait(1)]


async def test_a_successful_sign_in_forgives_the_username(
    settings: Settings, make: Factory
) -> None:
    example = await make.domain("example.com")
    await make.account(example, "alice")
    async with server(settings, login_address_free_failures=20) as app:
        before = [await sign_in(app, "alice@example.com", WRONG) for _ in range(2)]
        success = await sign_in(app, "alice@example.com", PASSWORD)
        after = [await sign_in(app, "alice@example.com", WRONG) for _ in range(3)]

    assert before == [BAD, BAD]
    assert success == "signed in"
    assert after == [BAD, BAD, BAD]


async def test_guesses_spread_over_many_usernames_are_throttled_per_address(
    settings: Settings,
) -> None:
    async with server(settings) as app:
        sprayed = [await sign_in(app, f"user{i}@example.com", WRONG) for i in range(5)]
        elsewhere = await sign_in(app, "user9@example.com", WRONG, address="198.51.100.7")

    assert sprayed == [BAD, BAD, BAD, BAD, wait(1)]
    assert elsewhere == BAD


async def test_a_throttled_attempt_checks_no_password(
    settings: Settings, make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = await make.domain("example.com")
    await make.account(example, "alice")
    checks: list[str] = []
    verify = passwords.verify_password

    async def counted(password_hash: str | None, password: str) -> bool:
        checks.append(password)
        return await verify(password_hash, password)

    monkeypatch.setattr(sign_ins, "verify_password", counted)
    async with server(settings) as app:
        for _ in range(3):
            await sign_in(app, "alice@example.com", WRONG)
        refused = [await sign_in(app, "alice@example.com", WRONG) for _ in range(20)]

    assert refused == [wait(1)] * 20
    assert len(checks) == 3  # Argon2 ran for the three counted failures only


async def test_parallel_guesses_cannot_slip_through_between_check_and_count(
    settings: Settings,
) -> None:
    async with server(settings) as app:
        answers = await asyncio.gather(
            *(sign_in(app, "alice@example.com", WRONG, f"192.0.2.{i}") for i in range(10))
        )

    assert answers.count(BAD) == 3
    assert answers.count(wait(1)) == 7


@pytest.mark.redis
async def test_with_redis_every_server_process_counts_the_same_failures(
    settings: Settings,
) -> None:
    # Two apps with their own memory stand for two server processes sharing one Redis.
    shared = {"redis_url": REDIS_URL, "redis_channel": f"test-{uuid.uuid4().hex}"}
    async with server(settings, **shared) as first, server(settings, **shared) as second:
        answers = [
            await sign_in(first, "alice@example.com", WRONG),
            await sign_in(second, "alice@example.com", WRONG),
            await sign_in(first, "alice@example.com", WRONG),
            await sign_in(second, "alice@example.com", WRONG),
        ]

    assert answers == [BAD, BAD, BAD, wait(1)]


async def test_sign_in_outcomes_are_counted_in_metrics(settings: Settings, make: Factory) -> None:
    example = await make.domain("example.com")
    await make.account(example, "alice")
    async with server(settings) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            before = (await http.get("/metrics")).text
            for _ in range(4):
                await sign_in(app, "alice@example.com", WRONG)
            after = (await http.get("/metrics")).text

    def count(text: str, outcome: str) -> int:
        line = f'mapi_ews_login_attempts_total{{outcome="{outcome}"}} '
        return int(float(next(li for li in text.splitlines() if li.startswith(line)).split()[-1]))

    assert count(after, "failed") - count(before, "failed") == 3
    assert count(after, "throttled") - count(before, "throttled") == 1


async def test_behind_a_trusted_proxy_each_client_address_is_counted_on_its_own(
    tmp_path: Path,
) -> None:
    env = {
        "MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
        "MAPI_EWS_FORWARDED_ALLOW_IPS": "*",
        "MAPI_EWS_LOGIN_ADDRESS_FREE_FAILURES": "2",
    }

    async def guess(server: Server, username: str, client: str) -> Any:
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{server.url}/graphql",
                json={"query": LOGIN, "variables": {"u": username, "p": WRONG}},
                headers={"X-Forwarded-For": client},
            )
        return response.json()["data"]["login"]["userErrors"][0]["code"]

    with running_server(env, tmp_path / "server.log") as server:
        first = [await guess(server, f"u{i}@example.com", "203.0.113.1") for i in range(3)]
        second = await guess(server, "u9@example.com", "203.0.113.2")

    assert first == ["INVALID_CREDENTIALS", "INVALID_CREDENTIALS", "TOO_MANY_ATTEMPTS"]
    assert second == "INVALID_CREDENTIALS"
