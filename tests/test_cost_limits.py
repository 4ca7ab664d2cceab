"""Each caller's budget of query cost: charged before an operation runs, settled to what it
actually cost, refused with THROTTLED (429, Retry-After) when short, refilled over time, shared
by every process through Redis, and said in every answer's `extensions.cost`."""

import asyncio
import logging
import math
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from redis.asyncio import Redis
from starlette.applications import Starlette

from api.app import create_app
from api.auth.principal import Principal, Role
from api.models import Account, AuditEntry
from api.settings import CostLimit, Settings, parse_cost_limits
from api.transport.budget import REFUND_SECONDS, Budget
from tests.conftest import REDIS_URL, Factory, RedisShape, migrated_postgres
from tests.servers import free_port, graphql_data, metric, running_server, serving
from tests.ws import websocket

LIST = "query($n: Int) { mapiEwsAccounts(first: $n) { edges { node { username } } } }"
LIST_OF_FIVE = "query($n: Int = 5) { mapiEwsAccounts(first: $n) { edges { node { username } } } }"
LIST_50 = "{ mapiEwsAccounts(first: 50) { edges { node { username } } } }"
USAGE = "{ mapiEwsUsage { enabled limit } }"
# Twenty-four times the usage's three fields: asks for 96 and costs 96.
USAGE_96 = (
    "{ " + " ".join(f"u{i}: mapiEwsUsage {{ enabled limit available }}" for i in range(24)) + " }"
)
ENABLE = """
mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { userErrors { code field message } } }
"""
REPORT = (
    'mutation { recordProtocolLogin(input: {emailAddress: "alice@example.com", protocol: EWS}) '
    "{ allowed } }"
)
LOGINS = "subscription { mapiEwsLoginUpdates { username allowed } }"
# A subscription that asks for one field thirty times: it costs 31.
LOGINS_31 = (
    "subscription { mapiEwsLoginUpdates { "
    + " ".join(f"u{i}: username" for i in range(30))
    + " } }"
)
LOGIN = 'mutation($u: String!) { login(input: {username: $u, password: "demo-password"}) { accessToken } }'


@asynccontextmanager
async def limited(settings: Settings, limits: str, max_cost: int) -> AsyncIterator[Starlette]:
    application = create_app(
        settings.model_copy(
            update={"cost_limits": parse_cost_limits(limits), "max_query_cost": max_cost}
        )
    )
    async with LifespanManager(application):
        yield application


def http(app: Starlette, address: str = "192.0.2.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def post(
    client: httpx.AsyncClient,
    query: str,
    variables: dict[str, Any] | None = None,
    *,
    token: str | None = None,
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await client.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )


async def domain_admin(make: Factory, enabled: int) -> str:
    domain = await make.domain("example.com")
    admin = await make.account(domain, "admin", admin=True)
    await make.accounts(domain, enabled, enabled=enabled)
    await make.account(domain, "alice")
    return await make.token_for(admin)


def status(maximum: float, available: int, rate: float) -> dict[str, Any]:
    return {"maximumAvailable": maximum, "currentlyAvailable": available, "restoreRate": rate}


async def test_every_answer_says_what_it_asked_for_what_it_cost_and_what_is_left(
    settings: Settings, make: Factory
) -> None:
    token = await domain_admin(make, enabled=3)
    async with limited(settings, "DOMAIN_ADMIN=1000/0.01", 1000) as app, http(app) as client:
        ten = (await post(client, LIST, {"n": 10}, token=token)).json()
        fifty = (await post(client, LIST, {"n": 50}, token=token)).json()
        five = (await post(client, LIST_OF_FIVE, token=token)).json()

    # A page of 10 asks for 1 + 10 * 3; three rows came back: 1 + 1 + 3 * 2.
    assert ten["extensions"]["cost"] == {
        "requestedQueryCost": 31,
        "actualQueryCost": 8,
        "throttleStatus": status(1000.0, 992, 0.01),
    }
    assert fifty["extensions"]["cost"]["requestedQueryCost"] == 151
    assert fifty["extensions"]["cost"]["actualQueryCost"] == 8
    assert fifty["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 984
    # A page size left out counts the variable's default.
    assert five["extensions"]["cost"]["requestedQueryCost"] == 16
    assert five["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 976


async def test_an_operation_costing_more_than_is_left_is_refused_before_it_runs(
    settings: Settings, make: Factory
) -> None:
    token = await domain_admin(make, enabled=0)
    audit_before = await AuditEntry.all().count()
    async with limited(settings, "DOMAIN_ADMIN=100/1", 100) as app, http(app) as client:
        spent = (await post(client, USAGE_96, token=token)).json()  # 4 left
        refused = await post(client, ENABLE, {"u": ["alice"]}, token=token)
        as_graphql = await client.post(
            "/graphql",
            json={"query": ENABLE, "variables": {"u": ["alice"]}},
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/graphql-response+json",
            },
        )
        throttled = await metric_in(client, 'throttled_total{role="DOMAIN_ADMIN"}')
        alice = await Account.get(username="alice")
        audit_after = await AuditEntry.all().count()

    assert spent["extensions"]["cost"]["actualQueryCost"] == 96
    assert spent["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 4
    assert refused.status_code == as_graphql.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    cost = {
        "requestedQueryCost": 5,
        "actualQueryCost": None,
        "throttleStatus": status(100.0, 4, 1.0),
    }
    assert refused.json() == {
        "errors": [
            {
                "message": "Throttled: this operation costs 5 and 4 of your budget of 100 is "
                "left; it refills at 1 a second. Try again in 1 s.",
                "extensions": {"code": "THROTTLED", "retryAfter": 1, "cost": cost},
            }
        ],
        "extensions": {"cost": cost},
    }
    assert as_graphql.headers["content-type"] == "application/graphql-response+json"
    assert "data" not in as_graphql.json()
    # Nothing ran.
    assert (alice.mapi_ews_enabled, audit_after) == (False, audit_before)
    assert throttled == 2


async def metric_in(client: httpx.AsyncClient, name: str) -> int:
    text = (await client.get("/metrics")).text
    [line] = [li for li in text.splitlines() if li.startswith(f"mapi_ews_{name} ")]
    return int(float(line.split()[1]))


async def test_the_budget_refills_at_its_restore_rate_and_retry_after_is_long_enough(
    settings: Settings, make: Factory
) -> None:
    token = await domain_admin(make, enabled=0)
    async with limited(settings, "DOMAIN_ADMIN=100/1", 100) as app, http(app) as client:
        await post(client, USAGE_96, token=token)  # 4 left
        refused = await post(client, ENABLE, {"u": ["alice"]}, token=token)
        await asyncio.sleep(int(refused.headers["Retry-After"]))
        allowed = await post(client, ENABLE, {"u": ["alice"]}, token=token)

    assert refused.status_code == 429
    assert allowed.status_code == 200
    assert allowed.json()["data"]["enableMapiEws"]["userErrors"] == []
    # 4 + 1 a second for a second, less the 3 the enable cost (its userErrors came back empty).
    assert allowed.json()["extensions"]["cost"]["actualQueryCost"] == 2
    assert allowed.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] in (3, 4)


async def test_an_operation_that_did_not_run_is_refunded(settings: Settings, make: Factory) -> None:
    token = await domain_admin(make, enabled=3)
    async with limited(settings, "DOMAIN_ADMIN=1000/0.01", 1000) as app, http(app) as client:
        bad = (await post(client, LIST, {"n": "ten"}, token=token)).json()
        after = (await post(client, USAGE, token=token)).json()

    assert "data" not in bad
    assert bad["extensions"]["cost"] == {
        "requestedQueryCost": 151,  # the default page, as the ceiling would count it
        "actualQueryCost": 0,
        "throttleStatus": status(1000.0, 1000, 0.01),
    }
    assert after["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 997


async def test_each_client_address_without_a_token_has_a_budget_of_its_own(
    settings: Settings,
) -> None:
    twenty = "{ " + " ".join(f"t{i}: __typename" for i in range(20)) + " }"
    async with (
        limited(settings, "ANONYMOUS=20/0.01", 20) as app,
        http(app, "192.0.2.1") as first,
        http(app, "192.0.2.2") as second,
    ):
        spent = await post(first, twenty)
        refused = await post(first, twenty)
        elsewhere = await post(second, twenty)
        throttled = await metric_in(first, 'throttled_total{role="ANONYMOUS"}')

    assert spent.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0
    assert refused.status_code == 429
    assert elsewhere.status_code == 200
    assert throttled == 1


async def test_gateways_have_no_budget_by_default_and_one_when_configured(
    settings: Settings, make: Factory
) -> None:
    await domain_admin(make, enabled=0)
    gateway = await make.gateway()
    async with limited(settings, "ANONYMOUS=20/0.01", 20) as app, http(app) as client:
        exempt = (await post(client, REPORT, token=gateway)).json()
    async with limited(settings, "GATEWAY=50/0.01", 50) as app, http(app) as client:
        counted = (await post(client, REPORT, token=gateway)).json()

    assert exempt["data"] == {"recordProtocolLogin": {"allowed": False}}
    assert exempt["extensions"] == {"cost": {"requestedQueryCost": 2, "actualQueryCost": 2}}
    assert counted["extensions"]["cost"]["throttleStatus"] == status(50.0, 48, 0.01)


async def test_a_subscription_pays_its_cost_when_it_starts_and_is_refused_when_short(
    settings: Settings, make: Factory
) -> None:
    token = await domain_admin(make, enabled=0)
    app = create_app(
        settings.model_copy(
            update={"cost_limits": parse_cost_limits("DOMAIN_ADMIN=70/0.01"), "max_query_cost": 70}
        )
    )
    async with serving(app) as url, websocket(url, token=token) as ws:
        assert await ws.init() == {"type": "connection_ack"}
        await ws.subscribe("cheap", LOGINS)  # 3
        async with httpx.AsyncClient(base_url=url) as client:
            await wait_for_subscriptions(client, 1)
            usage = (await post(client, USAGE, token=token)).json()  # 3
            for dear in ("dear", "dearer"):  # 31 each: 2 left
                await ws.subscribe(dear, LOGINS_31)
            await wait_for_subscriptions(client, 3)
            await ws.subscribe("too dear", LOGINS_31)
            refused = await ws.receive()
            throttled = await metric_in(client, 'throttled_total{role="DOMAIN_ADMIN"}')

    assert usage["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 64
    assert (refused["id"], refused["type"]) == ("too dear", "error")
    [error] = refused["payload"]
    assert error["extensions"]["code"] == "THROTTLED"
    assert error["extensions"]["retryAfter"] == math.ceil((31 - 2) / 0.01)
    assert error["extensions"]["cost"] == {
        "requestedQueryCost": 31,
        "actualQueryCost": None,
        "throttleStatus": status(70.0, 2, 0.01),
    }
    assert throttled == 1


async def wait_for_subscriptions(client: httpx.AsyncClient, count: int) -> None:
    async with asyncio.timeout(10):
        while await metric_in(client, "open_subscriptions") < count:
            await asyncio.sleep(0.02)


@pytest.mark.redis
async def test_concurrent_charges_through_redis_never_overspend() -> None:
    redis = Redis.from_url(str(REDIS_URL))
    budget = Budget(
        {"DOMAIN_ADMIN": CostLimit(100, 0.001)}, redis=redis, prefix=f"test-{uuid.uuid4().hex}"
    )
    principal = Principal(role=Role.DOMAIN_ADMIN, subject_id=1, username="a@example.com")

    async def attempt() -> bool:
        charge = budget.start(10, principal, None)
        try:
            await budget.charge(charge)
        except Exception:
            return False
        return True

    try:
        outcomes = await asyncio.gather(*(attempt() for _ in range(40)))
    finally:
        await redis.aclose()

    assert outcomes.count(True) == 10


async def test_without_an_answer_from_redis_each_process_keeps_its_own_budget(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    budget = Budget({"DOMAIN_ADMIN": CostLimit(100, 0.001)}, redis=redis)
    principal = Principal(role=Role.DOMAIN_ADMIN, subject_id=1, username="a@example.com")
    charges = [budget.start(30, principal, None) for _ in range(4)]
    with caplog.at_level(logging.WARNING, logger="api.redis_client"):
        for charge in charges[:3]:
            await budget.charge(charge)
        with pytest.raises(Exception, match="Throttled"):
            await budget.charge(charges[3])
    await redis.aclose()

    assert [int(c.available or 0) for c in charges] == [70, 40, 10, 10]
    warnings = [r for r in caplog.records if "budgets are kept per process" in r.message]
    assert len(warnings) == 1  # once for the outage, not once a request
    # Said where an operator looks, too: the gauge, and /readyz's fallbacks (the same list).
    assert budget.metrics.value("mapi_ews_redis_fallback", use="budgets") == 1
    assert budget.fallbacks.uses() == ["budgets"]


@pytest.mark.postgres
@pytest.mark.redis
async def test_two_processes_spend_one_budget_through_redis(
    tmp_path: Path, redis_shape: RedisShape
) -> None:
    async with migrated_postgres() as database:
        limits = {"MAPI_EWS_COST_LIMITS": "DOMAIN_ADMIN=200/0.01", "MAPI_EWS_MAX_QUERY_COST": "200"}
        shape = redis_shape.with_({**database, **limits})
        with (
            running_server(shape.first, tmp_path / "a.log", "--demo") as first,
            running_server(shape.second, tmp_path / "b.log") as second,
        ):
            login = await graphql_data(first.url, LOGIN, {"u": "admin@example.com"})
            token = login["login"]["accessToken"]
            async with (
                httpx.AsyncClient(base_url=first.url) as on_first,
                httpx.AsyncClient(base_url=second.url) as on_second,
            ):
                # A refund reaches Redis with the process's next charge, or within a second.
                settled = REFUND_SECONDS + 0.5
                listed = (await post(on_first, LIST_50, token=token)).json()
                await asyncio.sleep(settled)
                usage = (await post(on_second, USAGE, token=token)).json()
                listed_again = (await post(on_second, LIST_50, token=token)).json()
                await asyncio.sleep(settled)
                refused = await post(on_first, LIST_50, token=token)
            throttled = await metric(first.url, 'throttled_total{role="DOMAIN_ADMIN"}')

    rows = len(listed["data"]["mapiEwsAccounts"]["edges"])
    actual = 2 + 2 * rows
    left = [
        answer["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        for answer in (listed, usage, listed_again)
    ]
    assert left == [200 - actual, 200 - actual - 3, 200 - 2 * actual - 3]
    assert refused.status_code == 429  # 151 asked for, less left: spent on the other process
    assert refused.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == left[2]
    assert throttled == 1


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("BOSS=100/1", "ROLE one of ANONYMOUS, USER, DOMAIN_ADMIN, SYSTEM_ADMIN, GATEWAY"),
        ("DOMAIN_ADMIN=100", "the limit is MAXIMUM/RATE"),
        ("DOMAIN_ADMIN=0/1", "the limit is MAXIMUM/RATE"),
        ("DOMAIN_ADMIN=100/0", "the limit is MAXIMUM/RATE"),
        ("DOMAIN_ADMIN=100/inf", "the limit is MAXIMUM/RATE"),
        ("DOMAIN_ADMIN=many/1", "the limit is MAXIMUM/RATE"),
        ("DOMAIN_ADMIN", "expected ROLE=MAXIMUM/RATE or ROLE=off"),
    ],
)
def test_a_bad_cost_limit_is_refused_with_what_was_wrong(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("MAPI_EWS_COST_LIMITS", value)
    with pytest.raises(ValueError, match=message):
        Settings()


def test_cost_limits_override_the_defaults_role_by_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAPI_EWS_COST_LIMITS", "domain_admin=20000/1000, gateway=off")
    limits = Settings().cost_limits

    assert limits["DOMAIN_ADMIN"] == CostLimit(20_000, 1_000.0)
    assert limits["SYSTEM_ADMIN"] == CostLimit(20_000, 1_000.0)
    assert limits["GATEWAY"] is None


def test_a_budget_smaller_than_the_largest_operation_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAPI_EWS_COST_LIMITS", "USER=1000/10")
    with pytest.raises(ValueError, match="USER's maximum of 1000 is below"):
        Settings()


@pytest.mark.redis
async def test_a_refund_rides_on_the_next_charge_or_is_given_back_on_its_own() -> None:
    redis = Redis.from_url(str(REDIS_URL))
    shared = {"redis": redis, "prefix": f"test-{uuid.uuid4().hex}"}
    limits: dict[str, CostLimit | None] = {"DOMAIN_ADMIN": CostLimit(100, 0.001)}
    here, elsewhere = Budget(limits, **shared), Budget(limits, **shared)  # type: ignore[arg-type]
    principal = Principal(role=Role.DOMAIN_ADMIN, subject_id=1, username="a@example.com")

    async def spend(budget: Budget, requested: int, actual: int) -> int:
        charge = budget.start(requested, principal, None)
        await budget.charge(charge)
        await budget.settle(charge, actual)
        return int(charge.available or 0)

    try:
        first = await spend(here, 50, 10)  # 40 owed back
        seen_elsewhere = await spend(elsewhere, 0, 0)
        next_here = await spend(here, 20, 20)  # carries the 40
        await spend(here, 30, 0)  # 30 owed back
        await here.give_back()
        given_back = await spend(elsewhere, 0, 0)
    finally:
        await redis.aclose()

    assert (first, seen_elsewhere, next_here, given_back) == (90, 50, 70, 70)
