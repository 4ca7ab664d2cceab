"""Shared fixtures: a migrated database per backend, the app over ASGI, real tokens, factories.

SQLite always; PostgreSQL too when MAPI_EWS_TEST_DATABASE_URL names a server. Each session makes
its own PostgreSQL database (and drops it after), so the named database is never touched.

A test that needs the PostgreSQL or the Redis of those variables says so with the marker
`postgres` or `redis` (the backend fixture's PostgreSQL half carries `postgres`), and skips, saying
which variable to set, when it is unset. `--services-only` runs those tests alone: CI runs the
suite with nothing set, then only what that pass skipped for want of PostgreSQL or Redis.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from graphql import ExecutionResult
from starlette.applications import Starlette
from tortoise.backends.base.executor import EXECUTOR_CACHE

from api import db
from api.auth.passwords import hash_password
from api.auth.principal import Principal, Role
from api.auth.tokens import issue_access_token
from api.db import connection
from api.events import EventBus, RedisEventBus
from api.graphql.context import Context
from api.models import Account, Domain, SystemAdmin
from api.services.domains import count_enabled
from api.services.sign_ins import account_principal
from api.settings import Settings
from api.transport.pipeline import GraphQLRequest, Pipeline
from api.transport.plans import EXPECTED_REFUSALS, PARITY
from tests.servers import RedisClusterProcesses, RedisProcess, free_port, run_cli

# The browser tests' fixtures (a served demo, Chromium, a page per test), for every module.
pytest_plugins = ["tests.browser"]

PASSWORD = "correct-horse-battery"
TABLES = [
    "sweep_slot",
    "mapi_ews_usage_day",
    "protocol_session",
    "login_event",
    "gateway_token",
    "refresh_token",
    "audit_entry",
    "account_recency",
    "account",
    "system_admin",
    "domain",
]
PG_URL = os.environ.get("MAPI_EWS_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("MAPI_EWS_TEST_REDIS_URL")


_CHECKED_PLAN_ANSWERS = [0]


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A pytest-xdist worker hands its count to the controller (pytest_testnodedown)."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["plan_answers"] = _CHECKED_PLAN_ANSWERS[0]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    _CHECKED_PLAN_ANSWERS[0] += int(getattr(node, "workeroutput", {}).get("plan_answers", 0))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(
        f"compiled plans answered {_CHECKED_PLAN_ANSWERS[0]} fields, each as graphql-core did"
    )


@pytest.fixture(autouse=True)
def plans_agree_with_graphql_core() -> Iterator[None]:
    """Every field a compiled plan answers, in every test, is answered by graphql-core too, on
    the same objects: the two answers (value and errors) must be the same. A plan leaves a
    value to graphql-core only for what such values raise, never for a fault of its own."""
    PARITY.enabled = True
    PARITY.clear()
    yield
    _CHECKED_PLAN_ANSWERS[0] += PARITY.answered
    differences = list(PARITY.differences)
    faults = [
        (name, error) for name, error in PARITY.refused if not isinstance(error, EXPECTED_REFUSALS)
    ]
    PARITY.clear()
    assert not differences, "compiled plans differ from graphql-core:\n" + "\n".join(differences)
    assert not faults, f"compiled plans failed: {faults}"


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

# What each marker needs, and the variable that provides it.
SERVICES = {
    "postgres": (PG_URL, "PostgreSQL: set MAPI_EWS_TEST_DATABASE_URL to run this"),
    "redis": (REDIS_URL, "Redis: set MAPI_EWS_TEST_REDIS_URL to run this"),
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--services-only",
        action="store_true",
        help="run only the tests marked postgres or redis (CI's second pass)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    services_only = config.getoption("--services-only")
    kept, deselected = [], []
    for item in items:
        needs = [name for name in SERVICES if item.get_closest_marker(name)]
        if services_only and not needs:
            deselected.append(item)
            continue
        kept.append(item)
        for name in needs:
            url, reason = SERVICES[name]
            if not url:
                item.add_marker(pytest.mark.skip(reason=reason))
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def _needs(variable: str, url: str | None, marker: str) -> str:
    """The URL a test asked for; a test that reaches here without it lacks its marker, which
    would hide it from both of CI's passes."""
    if not url:
        pytest.fail(f"this test needs {variable}: mark it @pytest.mark.{marker}")
    return url


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _asyncpg_dsn(url: str) -> str:
    return url.replace("asyncpg://", "postgresql://").replace("postgres://", "postgresql://")


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty database on the server MAPI_EWS_TEST_DATABASE_URL names; dropped after."""
    server = _needs("MAPI_EWS_TEST_DATABASE_URL", PG_URL, "postgres")
    name = f"mapi_ews_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(server))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(server, name)
    finally:
        admin = await asyncpg.connect(_asyncpg_dsn(server))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@asynccontextmanager
async def migrated_postgres() -> AsyncIterator[dict[str, str]]:
    """The environment of server processes sharing a fresh PostgreSQL database, migrated by
    `mapi-ews-admin migrate` before any of them starts; dropped after."""
    async with fresh_postgres_database() as url:
        env = {"MAPI_EWS_DATABASE_URL": url}
        await run_cli("migrate", env=env)
        yield env


@pytest.fixture(scope="session")
async def database_url(
    backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    if backend == "sqlite":
        yield f"sqlite://{tmp_path_factory.mktemp('sqlite') / 'test.sqlite3'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
async def settings(database_url: str) -> Settings:
    settings = Settings(
        database_url=database_url,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        redis_url=None,
    )
    # Tortoise caches INSERT statements by connection name, not dialect: this session switches
    # from SQLite to PostgreSQL under the same name, so start each backend with an empty cache.
    EXECUTOR_CACHE.clear()
    await db.migrate_database(settings)
    return settings


@pytest.fixture(scope="session")
async def password_hash() -> str:
    return await hash_password(PASSWORD)


async def _empty_tables() -> None:
    conn = db.connection()
    if db.is_sqlite(conn):
        for table in TABLES:
            await conn.execute_script(f"DELETE FROM {table}")  # noqa: S608 - fixed names
    else:
        # The clients' roll-up (PostgreSQL only) goes with the domains, but for its days.
        tables = [*TABLES, "login_rollup_day"]
        await conn.execute_script(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[Starlette]:
    from api.app import create_app

    application = create_app(settings)
    async with LifespanManager(application):
        await _empty_tables()
        yield application


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def run_subscription(
    app: Starlette,
    document: str,
    variables: dict[str, Any] | None = None,
    *,
    principal: Principal | None,
    events: EventBus | None = None,
) -> AsyncGenerator[ExecutionResult, None]:
    """A subscription run by the app's own pipeline with a connection's kind of context, as the
    WebSocket transport runs it; its first step raises RequestError when it cannot start.
    Real sockets are in test_subscriptions."""
    pipeline: Pipeline = app.state.pipeline
    context = Context(
        settings=app.state.contexts.settings,
        principal=principal,
        events=events or app.state.events,
    )
    return pipeline.stream(pipeline.prepare(GraphQLRequest(document, variables)), context)


@dataclass
class GraphQLClient:
    http: httpx.AsyncClient

    async def post(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        body: dict[str, Any] = response.json()
        return body

    async def data(
        self, query: str, variables: dict[str, Any] | None = None, *, token: str | None = None
    ) -> dict[str, Any]:
        body = await self.post(query, variables, token=token)
        assert "errors" not in body, body
        result: dict[str, Any] = body["data"]
        return result


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQLClient:
    return GraphQLClient(client)


@dataclass
class Factory:
    settings: Settings
    password_hash: str

    async def domain(
        self, name: str = "example.com", *, limit: int | None = None, managed: bool = True
    ) -> Domain:
        return await Domain.create(
            name=name, max_mapi_ews_accounts=limit, mapi_ews_account_management=managed
        )

    async def account(
        self,
        domain: Domain,
        username: str,
        *,
        name: str | None = None,
        admin: bool = False,
        enabled: bool = False,
    ) -> Account:
        from datetime import UTC, datetime

        account = await Account.create(
            domain=domain,
            username=username,
            name=name,
            password_hash=self.password_hash,
            is_domain_admin=admin,
            mapi_ews_enabled=enabled,
            mapi_ews_enabled_at=datetime.now(UTC) if enabled else None,
        )
        # As an enable through the API would, in the domain's row.
        await count_enabled(connection(), domain.id, 1 if enabled else 0)
        return account

    async def accounts(
        self, domain: Domain, count: int, *, enabled: int = 0, prefix: str = "user"
    ) -> None:
        await Account.bulk_create(
            [
                Account(
                    domain=domain,
                    username=f"{prefix}{i:05d}",
                    name=f"User {i}",
                    password_hash=self.password_hash,
                    mapi_ews_enabled=i < enabled,
                )
                for i in range(count)
            ]
        )
        await count_enabled(connection(), domain.id, min(enabled, count))

    async def system_admin(self, username: str = "root") -> SystemAdmin:
        return await SystemAdmin.create(username=username, password_hash=self.password_hash)

    def token(self, principal: Principal, *, minutes: int = 15) -> str:
        token, _ = issue_access_token(
            principal, key=self.settings.signing_key, lifetime=timedelta(minutes=minutes)
        )
        return token

    async def gateway(self, name: str = "gateway-1") -> str:
        from api.services.gateways import create_gateway_token

        return await create_gateway_token(actor="test", name=name)

    async def token_for(self, who: Account | SystemAdmin) -> str:
        if isinstance(who, SystemAdmin):
            return self.token(
                Principal(role=Role.SYSTEM_ADMIN, subject_id=who.id, username=who.username)
            )
        domain = await Domain.get(id=who.domain_id)
        return self.token(account_principal(who, domain))


@pytest.fixture
def make(app: Starlette, settings: Settings, password_hash: str) -> Factory:
    return Factory(settings, password_hash)


class StatementCounter(logging.Handler):
    """Counts the SQL statements Tortoise sends (its db_client logger, at DEBUG)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage().lstrip().upper()
        if text.startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
            self.statements.append(record.getMessage())


@pytest.fixture
def sql() -> Iterator[StatementCounter]:
    logger = logging.getLogger("tortoise.db_client")
    counter = StatementCounter()
    previous = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(counter)
    try:
        yield counter
    finally:
        logger.removeHandler(counter)
        logger.setLevel(previous)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[str, RedisProcess]]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (Debian package redis-server)")
    server = RedisProcess(binary, free_port(), tmp_path)
    server.start()
    try:
        yield f"redis://127.0.0.1:{server.port}/0", server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterProcesses]:
    """A three-primary Redis Cluster of this test run's own, shared by the tests that ask for it
    (each uses channels and keys of its own). Those tests are marked `redis`: CI's second pass
    runs them, where redis-server must be installed."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        pytest.fail(
            "a Redis Cluster needs redis-server and redis-cli (Debian package redis-server)"
        )
    cluster = RedisClusterProcesses()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@dataclass(frozen=True)
class RedisShape:
    """The Redis settings of two server processes: both on one Redis, or on a Redis Cluster
    that each knows by a different node."""

    first: dict[str, str]
    second: dict[str, str]

    def with_(self, more: dict[str, str]) -> RedisShape:
        return RedisShape({**more, **self.first}, {**more, **self.second})


@pytest.fixture(params=["redis", "cluster"])
def redis_shape(request: pytest.FixtureRequest) -> RedisShape:
    """Each test that asks for it runs twice: through one Redis, and through the cluster."""
    channel = {"MAPI_EWS_REDIS_CHANNEL": f"mapi-ews-test:{uuid.uuid4().hex}"}
    if request.param == "redis":
        url = _needs("MAPI_EWS_TEST_REDIS_URL", REDIS_URL, "redis")
        env = {**channel, "MAPI_EWS_REDIS_URL": url}
        return RedisShape(env, env)
    cluster: RedisClusterProcesses = request.getfixturevalue("redis_cluster")
    first, second = (
        {**channel, "MAPI_EWS_REDIS_URL": url, "MAPI_EWS_REDIS_CLUSTER": "true"}
        for url in cluster.urls[:2]
    )
    return RedisShape(first, second)


@pytest.fixture
def channel() -> str:
    """A pub/sub channel prefix of this test's own."""
    return f"mapi-ews-test:{uuid.uuid4().hex}"


@asynccontextmanager
async def started(bus: EventBus) -> AsyncIterator[EventBus]:
    """`bus` started, and listening to Redis if it has one; stopped after."""
    await bus.start()
    try:
        if isinstance(bus, RedisEventBus):
            await asyncio.wait_for(bus.listening.wait(), 10)
        yield bus
    finally:
        await bus.stop()
