"""WebSocket connections end when their credentials lapse: the access token expires, or the
principal loses the role or the domain it signed in with. Inside a real uvicorn server run in
this process, over real sockets."""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute

from api.app import create_app
from api.auth.principal import Principal, Role
from api.auth.tokens import issue_access_token
from api.events import EventBus
from api.models import Account, Domain, SystemAdmin
from api.services.sign_ins import account_principal
from api.settings import Settings
from tests.conftest import Factory, _empty_tables
from tests.servers import metric, serving
from tests.ws import websocket

CHANGES = "subscription($d: String) { mapiEwsAccountChanges(domain: $d) { kind } }"
ENABLE = 'mutation { enableMapiEws(input: {usernames: ["alice"]}) { userErrors { code } } }'


@dataclass
class Live:
    url: str
    app: Starlette
    settings: Settings
    domain: Domain
    admin: Account

    def token(self, principal: Principal | None = None, *, seconds: float = 900) -> str:
        token, _ = issue_access_token(
            principal or account_principal(self.admin, self.domain),
            key=self.settings.signing_key,
            lifetime=timedelta(seconds=seconds),
        )
        return token

    async def subscribers(self, count: int) -> None:
        bus: EventBus = self.app.state.events
        async with asyncio.timeout(5):
            while bus.hub.subscriber_count() != count:
                await asyncio.sleep(0.01)


@pytest.fixture
async def live(settings: Settings) -> AsyncIterator[Live]:
    checked = settings.model_copy(update={"connection_recheck_seconds": 1})
    app = create_app(checked)
    async with serving(app) as url:
        await _empty_tables()
        domain = await Domain.create(name="example.com")
        admin = await Account.create(
            domain=domain, username="admin", password_hash="x", is_domain_admin=True
        )
        await Account.create(domain=domain, username="alice", password_hash="x")
        yield Live(url, app, checked, domain, admin)


async def test_a_connection_closes_with_4403_when_its_access_token_expires(live: Live) -> None:
    before = await metric(live.url, 'ws_connections_closed_total{reason="expired"}')
    async with websocket(live.url, token=live.token(seconds=1.5)) as ws:
        assert (await ws.init())["type"] == "connection_ack"
        await ws.subscribe("1", CHANGES)
        await live.subscribers(1)

        code = await ws.close_code(wait=5)

        assert code == 4403
        assert ws.connection.close_reason == (
            "The access token has expired: reconnect with a fresh one."
        )
    await live.subscribers(0)  # the subscription ended with its connection
    assert await metric(live.url, 'ws_connections_closed_total{reason="expired"}') == before + 1


async def _demote(live: Live) -> None:
    await Account.filter(id=live.admin.id).update(is_domain_admin=False)


async def _delete(live: Live) -> None:
    await Account.filter(id=live.admin.id).delete()


async def _move(live: Live) -> None:
    other = await Domain.create(name="other.example")
    await Account.filter(id=live.admin.id).update(domain_id=other.id)


@pytest.mark.parametrize("withdraw", [_demote, _delete, _move], ids=["demoted", "deleted", "moved"])
async def test_a_connection_closes_when_its_administrator_loses_the_role_or_the_domain(
    live: Live, withdraw: Callable[[Live], Awaitable[None]]
) -> None:
    async with websocket(live.url, token=live.token()) as ws:
        await ws.init()
        await ws.subscribe("1", CHANGES)
        await live.subscribers(1)

        await withdraw(live)
        code = await ws.close_code(wait=5)

        assert code == 4403
        assert (
            ws.connection.close_reason == "The credentials no longer grant access: sign in again."
        )
    await live.subscribers(0)


async def test_a_system_administrator_removed_is_disconnected(live: Live) -> None:
    root = await SystemAdmin.create(username="root", password_hash="x")
    principal = Principal(role=Role.SYSTEM_ADMIN, subject_id=root.id, username="root")
    async with websocket(live.url, token=live.token(principal)) as ws:
        await ws.init()
        await ws.subscribe("1", CHANGES, {"d": "example.com"})
        await live.subscribers(1)

        await root.delete()

        assert await ws.close_code(wait=5) == 4403


async def test_a_connection_whose_credentials_still_stand_stays_open_and_live(
    live: Live,
) -> None:
    async with websocket(live.url, token=live.token()) as ws:
        await ws.init()
        await ws.subscribe("1", CHANGES)
        await live.subscribers(1)
        await asyncio.sleep(2.5)  # two checks pass

        async with websocket(live.url, token=live.token()) as other:
            await other.init()
            await other.subscribe("e", ENABLE)
            assert (await other.receive())["payload"]["data"]["enableMapiEws"]["userErrors"] == []
        message = await ws.receive()

        assert message["payload"]["data"] == {"mapiEwsAccountChanges": {"kind": "ENABLED"}}
        assert ws.connection.close_code is None


async def test_watches_end_with_their_connections(live: Live) -> None:
    async with websocket(live.url, token=live.token()) as ws:
        await ws.init()
    await asyncio.sleep(0.1)
    tasks_before = len(asyncio.all_tasks())

    for _ in range(50):
        async with websocket(live.url, token=live.token()) as ws:
            await ws.init()
    await asyncio.sleep(0.2)

    assert len(asyncio.all_tasks()) <= tasks_before


@pytest.mark.parametrize("where", ["payload", "header"])
async def test_a_connection_keeps_its_principal_and_not_the_token_it_came_with(
    app: Starlette, make: Factory, where: str
) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))
    header = [(b"authorization", f"Bearer {token}".encode())] if where == "header" else []
    scope = {"type": "websocket", "headers": header, "client": ("127.0.0.1", 50000)}
    context = app.state.contexts.for_websocket(scope, websocket=None)
    if where == "payload":
        context.connection_params = {"Authorization": f"Bearer {token}"}
    endpoint = next(route.app for route in app.routes if isinstance(route, WebSocketRoute))

    await endpoint.websockets.on_ws_connect(context)

    assert context.principal is not None and context.principal.username == "admin@example.com"
    assert (context.connection_params, context.upgrade_authorization) == (None, None)
