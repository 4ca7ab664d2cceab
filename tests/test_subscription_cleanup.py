"""Subscriptions clean up after themselves: counted inside a real uvicorn server run in this
process (so its hub, tasks and objects can be counted), over real sockets."""

import asyncio
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from starlette.applications import Starlette

from api.app import create_app
from api.auth.tokens import issue_access_token
from api.events import EventBus, Subscriber
from api.models import Account, Domain
from api.services.sign_ins import account_principal
from api.settings import Settings
from tests.conftest import _empty_tables
from tests.servers import serving
from tests.ws import websocket

CHANGES = "subscription { mapiEwsAccountChanges { kind } }"
CYCLES = 1000


@dataclass
class LiveServer:
    url: str
    app: Starlette
    token: str

    @property
    def events(self) -> EventBus:
        bus: EventBus = self.app.state.events
        return bus

    async def until(self, subscribers: int) -> None:
        async with asyncio.timeout(5):
            while self.events.hub.subscriber_count() != subscribers:
                await asyncio.sleep(0.001)


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[LiveServer]:
    app = create_app(settings)
    async with serving(app) as url:
        await _empty_tables()
        domain = await Domain.create(name="example.com")
        admin = await Account.create(
            domain=domain, username="admin", password_hash="x", is_domain_admin=True
        )
        token, _ = issue_access_token(
            account_principal(admin, domain),
            key=settings.signing_key,
            lifetime=timedelta(minutes=15),
        )
        yield LiveServer(url, app, token)


def leftovers() -> tuple[int, int]:
    gc.collect()
    objects = gc.get_objects()
    return (
        sum(isinstance(o, Subscriber) for o in objects),
        sum(isinstance(o, asyncio.Queue) for o in objects),
    )


async def test_a_thousand_subscribe_and_complete_cycles_leave_nothing_behind(
    live: LiveServer,
) -> None:
    async with websocket(live.url, token=live.token) as ws:
        await ws.init()
        await asyncio.sleep(0.05)
        tasks_before = len(asyncio.all_tasks())
        subscribers_before, queues_before = leftovers()

        for cycle in range(CYCLES):
            await ws.subscribe(str(cycle), CHANGES)
            await live.until(1)
            await ws.complete(str(cycle))
            await live.until(0)

        await asyncio.sleep(0.05)
        assert len(asyncio.all_tasks()) == tasks_before
        assert leftovers() == (subscribers_before, queues_before)
    assert live.events.hub.subscriber_count() == 0


async def test_clients_that_vanish_mid_subscription_leave_nothing_behind(
    live: LiveServer,
) -> None:
    await asyncio.sleep(0.05)
    tasks_before = len(asyncio.all_tasks())
    subscribers_before, queues_before = leftovers()

    for _ in range(100):
        async with websocket(live.url, token=live.token) as ws:
            await ws.init()
            await ws.subscribe("a", CHANGES)
            await ws.subscribe("b", CHANGES)
            await live.until(2)
        # the socket closed without a complete message
        await live.until(0)

    async with asyncio.timeout(5):
        while len(asyncio.all_tasks()) != tasks_before:
            await asyncio.sleep(0.01)
    assert leftovers() == (subscribers_before, queues_before)
