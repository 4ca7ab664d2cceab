"""Hostile documents cost their sender, not the server: a fragment explosion is refused before
any rule walks it, over HTTP and WebSocket, while the server's event loop keeps turning; lists
that an argument sizes cost that size; introspection costs what it returns; aliases cannot carry
more than one batch; a principal's subscriptions are bounded across its connections."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from graphql import get_introspection_query
from redis.asyncio import Redis

from api.app import create_app
from api.models import Account, LoginEvent
from api.settings import Settings
from api.transport.subscriptions import SubscriptionPlaces
from tests.conftest import REDIS_URL, Factory, GraphQLClient
from tests.servers import serving
from tests.test_nodes import ours
from tests.ws import websocket

# Some 160 tokens for 26 levels: 2^26 fields once spread, a minute and more of every rule's walk.
EXPLOSION = (
    "query { ...F0 } "
    + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(26))
    + " fragment F26 on Query { __typename }"
)
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { id ... on Account { username } } }"
HISTORY = "query($f: Date!, $t: Date!) { mapiEwsUsageHistory(from: $f, to: $t) { date peakEnabled enabledAtEnd } }"
ENABLE = "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { accounts { username } usage { enabled } userErrors { code } } }"
LOGINS = "subscription { mapiEwsLoginUpdates { username } }"


class Lag:
    """The longest the event loop (the server's, in this process) went without turning."""

    def __init__(self) -> None:
        self.worst = 0.0

    async def watch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(0.005)
            self.worst = max(self.worst, loop.time() - before - 0.005)


@asynccontextmanager
async def watched() -> AsyncIterator[Lag]:
    lag = Lag()
    task = asyncio.create_task(lag.watch())
    try:
        yield lag
    finally:
        task.cancel()


def requested(body: dict[str, Any]) -> int:
    cost: int = body["extensions"]["cost"]["requestedQueryCost"]
    return cost


async def admin_token(make: Factory, *, accounts: int = 0) -> str:
    example = await make.domain("example.com")
    admin = await make.account(example, "admin", admin=True)
    if accounts:
        await make.accounts(example, accounts)
    return await make.token_for(admin)


async def test_a_fragment_explosion_is_refused_at_once_over_http_and_websocket(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)
    with caplog.at_level(logging.INFO):
        async with serving(app) as url, watched() as lag:
            async with httpx.AsyncClient(base_url=url) as http:
                over_http = (await http.post("/graphql", json={"query": EXPLOSION})).json()
                health = await http.get("/healthz")
            async with websocket(url) as ws:
                assert await ws.init() == {"type": "connection_ack"}
                await ws.subscribe("boom", EXPLOSION)
                over_ws = await ws.receive()
                await ws.subscribe("after", "{ __typename }")
                after = await ws.receive()

    [error] = over_http["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith(
        "The document spreads its fragments into 67108864 fields, over the limit of 2000"
    )
    assert (over_ws["id"], over_ws["type"]) == ("boom", "error")
    assert [e["extensions"]["code"] for e in over_ws["payload"]] == ["BAD_USER_INPUT"]
    assert (after["type"], after["payload"]["data"]) == ("next", {"__typename": "Query"})
    assert health.status_code == 200
    assert lag.worst < 0.5  # before: minutes with the loop held
    assert not [r for r in caplog.records if r.levelno > logging.INFO]


async def test_fragments_spread_within_the_token_limit_still_validate(gql: GraphQLClient) -> None:
    # 2^10 fields once spread: over the old rules' comfort, within what a document may write.
    levels = 10
    document = (
        "query { ...F0 } "
        + " ".join(f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(levels))
        + f" fragment F{levels} on Query {{ __typename }}"
    )

    body = await gql.post(document)

    assert body["data"] == {"__typename": "Query"}


async def account_ids(count: int) -> list[str]:
    return [
        ours("Account", pk) for pk in await Account.all().limit(count).values_list("id", flat=True)
    ]


async def test_nodes_costs_each_id_it_asks_for(gql: GraphQLClient, make: Factory) -> None:
    token = await admin_token(make, accounts=99)
    ids = await account_ids(100)

    two = await gql.post(NODES, {"ids": ids[:2]}, token=token)
    hundred = await gql.post(NODES, {"ids": ids}, token=token)

    assert requested(two) == 1 + 2 * 2
    assert requested(hundred) == 1 + 100 * 2
    assert len(hundred["data"]["nodes"]) == 100


async def test_thirty_aliases_of_a_hundred_ids_pay_for_three_thousand_objects(
    gql: GraphQLClient, make: Factory
) -> None:
    token = await admin_token(make, accounts=99)
    aliases = " ".join(
        f"n{i}: nodes(ids: $ids) {{ id ... on Account {{ username name }} }}" for i in range(30)
    )
    ids = await account_ids(100)

    first = await gql.post(f"query($ids: [ID!]!) {{ {aliases} }}", {"ids": ids}, token=token)
    second = await gql.post(f"query($ids: [ID!]!) {{ {aliases} }}", {"ids": ids}, token=token)

    assert requested(first) == 30 * (1 + 100 * 3)  # 3,000 objects: 9,030 of 10,000
    assert first["extensions"]["cost"]["actualQueryCost"] == 30 * (1 + 100 * 3)
    assert second["errors"][0]["extensions"]["code"] == "THROTTLED"


async def test_a_years_usage_history_costs_a_year_of_days(
    gql: GraphQLClient, make: Factory
) -> None:
    token = await admin_token(make)

    day = await gql.post(HISTORY, {"f": "2025-01-01", "t": "2025-01-01"}, token=token)
    year = await gql.post(HISTORY, {"f": "2025-01-01", "t": "2025-12-31"}, token=token)

    assert requested(day) == 1 + 3
    assert requested(year) == 1 + 365 * 3


async def test_a_mutation_costs_the_usernames_it_names(gql: GraphQLClient, make: Factory) -> None:
    token = await admin_token(make, accounts=300)
    names = [f"user{i:05d}" for i in range(300)]  # make.accounts' names

    few = await gql.post(ENABLE, {"u": names[:3]}, token=token)
    many = await gql.post(ENABLE, {"u": names}, token=token)

    # The payload's lists (accounts, userErrors) count each username; the usage once.
    assert requested(few) == 1 + (1 + 3) + 2 + (1 + 3)
    assert requested(many) == 1 + (1 + 300) + 2 + (1 + 300)
    assert len(many["data"]["enableMapiEws"]["accounts"]) == 300


async def test_introspection_costs_about_what_it_returns(gql: GraphQLClient) -> None:
    body = await gql.post(get_introspection_query(descriptions=True))

    cost = body["extensions"]["cost"]
    assert "errors" not in body
    assert abs(cost["requestedQueryCost"] - cost["actualQueryCost"]) <= (
        0.1 * cost["actualQueryCost"]
    )
    assert cost["actualQueryCost"] > 1000


async def test_aliases_carry_no_more_reports_than_one_batch(
    gql: GraphQLClient, make: Factory
) -> None:
    await make.domain("example.com")
    gateway = await make.gateway()
    reports = [{"emailAddress": f"user{i}@example.com", "protocol": "MAPI"} for i in range(300)]
    document = (
        "mutation($r: [RecordProtocolLoginInput!]!) { "
        "a: recordProtocolLogins(input: {reports: $r}) { results { allowed } } "
        "b: recordProtocolLogins(input: {reports: $r}) { results { allowed } } }"
    )

    body = await gql.post(document, {"r": reports}, token=gateway)

    assert body.get("data") is None
    [error] = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith("The operation carries 600 reports in all")
    assert await LoginEvent.all().count() == 0


async def test_a_principal_holds_at_most_its_subscriptions_across_connections(
    settings: Settings, make: Factory
) -> None:
    token = await admin_token(make)
    app = create_app(settings.model_copy(update={"max_subscriptions_per_principal": 3}))
    async with (
        serving(app) as url,
        websocket(url, token=token) as one,
        websocket(url, token=token) as two,
    ):
        for ws in (one, two):
            assert await ws.init() == {"type": "connection_ack"}
        await one.subscribe("a", LOGINS)
        await one.subscribe("b", LOGINS)
        await two.subscribe("c", LOGINS)
        await two.subscribe("d", LOGINS)
        refused = await two.receive()
        await one.complete("a")
        async with asyncio.timeout(5):  # the completion reaches the server
            while app.state.subscription_places.held() > 2:
                await asyncio.sleep(0.01)
        await two.subscribe("e", LOGINS)
        await two.subscribe("f", LOGINS)
        refused_again = await two.receive()

    assert (refused["id"], refused["type"]) == ("d", "error")
    [error] = refused["payload"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "at most 3 subscriptions at once for one principal" in error["message"]
    assert (refused_again["id"], refused_again["type"]) == ("f", "error")


@pytest.mark.redis
async def test_a_principals_subscriptions_are_counted_across_processes_through_redis(
    settings: Settings, make: Factory
) -> None:
    token = await admin_token(make)
    shared = {
        "max_subscriptions_per_principal": 2,
        "redis_url": REDIS_URL,
        "redis_channel": f"test-{uuid.uuid4().hex}",
    }
    first, second = (create_app(settings.model_copy(update=shared)) for _ in range(2))
    async with (
        serving(first) as first_url,
        serving(second) as second_url,
        websocket(first_url, token=token) as one,
        websocket(second_url, token=token) as two,
    ):
        for ws in (one, two):
            assert await ws.init() == {"type": "connection_ack"}
        await one.subscribe("a", LOGINS)
        await one.subscribe("b", LOGINS)
        async with asyncio.timeout(5):
            while first.state.subscription_places.held() < 2:
                await asyncio.sleep(0.01)
        await two.subscribe("c", LOGINS)
        refused = await two.receive()

    assert (refused["id"], refused["type"]) == ("c", "error")
    assert refused["payload"][0]["extensions"]["code"] == "BAD_USER_INPUT"


@pytest.mark.redis
async def test_a_process_renews_its_places_and_counts_them_again_after_redis_lost_them() -> None:
    redis = Redis.from_url(str(REDIS_URL))
    places = SubscriptionPlaces(2, redis=redis, prefix=f"test-{uuid.uuid4().hex}")
    try:
        first, second = await places.take("DOMAIN_ADMIN:1"), await places.take("DOMAIN_ADMIN:1")
        refused = await places.take("DOMAIN_ADMIN:1")
        await redis.delete(places.prefix + "DOMAIN_ADMIN:1")  # as a restarted Redis would
        await places.renew([(m, "DOMAIN_ADMIN:1") for m in (first, second) if m])
        still_refused = await places.take("DOMAIN_ADMIN:1")
        await places.release(str(first))
        third = await places.take("DOMAIN_ADMIN:1")
    finally:
        await redis.delete(places.prefix + "DOMAIN_ADMIN:1")
        await redis.aclose()

    assert first and second and third
    assert refused is None and still_refused is None
