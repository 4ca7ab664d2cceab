"""Tortoise configuration: the only module that knows database URLs."""

from __future__ import annotations

from typing import Any

import asyncpg
from tortoise import Tortoise, connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import DBConnectionError

from api.settings import Settings

APP_LABEL = "api"
MODEL_MODULES = [
    "api.models.domains",
    "api.models.principals",
    "api.models.audit",
    "api.models.activity",
    "api.models.sessions",
    "api.models.usage",
    "api.models.access",
    "api.models.maintenance",
]


async def _keep_session(_: object) -> None:
    """asyncpg's pool resets each connection it takes back with a query (a round trip per
    request). Nothing here changes session state (no SET, LISTEN, advisory locks or cursors), so
    that query is skipped; asyncpg still rolls back a transaction left open before this runs."""


GATEWAY_CONNECTION = "gateway"


def _gateway_pool(connection: dict[str, Any]) -> dict[str, Any]:
    """PostgreSQL only: a pool of its own for the gateways' report statements, which always run
    their generic plan. Those statements name the time they concern, so the plan prunes
    login_event's partitions as it starts, and PostgreSQL's default would instead plan each one
    afresh: its generic plan, costed over every partition, looks dearer than it is. Other queries
    keep the default: a search plans better with its pattern known."""
    pool = {**connection, "credentials": dict(connection["credentials"])}
    pool["credentials"]["server_settings"] = {"plan_cache_mode": "force_generic_plan"}
    return pool


def tortoise_config(settings: Settings) -> dict[str, Any]:
    # The URL is expanded into Tortoise's credentials form: pool sizes go in as values, and
    # Tortoise masks a password given this way in its debug log (one inside a URL it does not).
    connection = expand_db_url(settings.database_url)
    if connection["engine"] != "tortoise.backends.sqlite":
        connection["credentials"].update(
            minsize=1, maxsize=settings.database_pool_size, reset=_keep_session
        )
    configured = {"default": connection}
    if connection["engine"] != "tortoise.backends.sqlite":
        configured[GATEWAY_CONNECTION] = _gateway_pool(connection)
    path = settings.sqlite_path()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    return {
        "connections": configured,
        "apps": {
            APP_LABEL: {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "api.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


# What a query meets while PostgreSQL restarts or cannot be reached: a refused or dropped
# connection (OSError), a server shutting down or starting up, a connection gone mid-query.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    DBConnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
)


def unavailable(error: BaseException | None) -> bool:
    """Whether `error` means the database cannot be reached right now (try again later), as
    opposed to a bug. Looks through exception chains: Tortoise wraps asyncpg's errors."""
    seen = 0
    while error is not None and seen < 5:
        if isinstance(error, _UNAVAILABLE):
            return True
        error = error.__cause__ or error.__context__
        seen += 1
    return False


async def open_database(settings: Settings) -> None:
    """Initialise Tortoise for this process; visible to every task (global fallback)."""
    await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)


async def close_database() -> None:
    await Tortoise.close_connections()


async def migrate_database(settings: Settings) -> None:
    """Apply Tortoise's own migrations (api/migrations) up to the latest."""
    from tortoise.migrations.api import migrate

    await migrate(config=tortoise_config(settings))
    await Tortoise.close_connections()


def connection() -> BaseDBAsyncClient:
    conn: BaseDBAsyncClient = connections.get("default")
    return conn


def gateway_connection() -> BaseDBAsyncClient:
    """Where gateway reports are written: PostgreSQL's gateway pool, or SQLite's one database."""
    default = connection()
    if is_sqlite(default):
        return default
    conn: BaseDBAsyncClient = connections.get(GATEWAY_CONNECTION)
    return conn


def is_sqlite(conn: BaseDBAsyncClient | None = None) -> bool:
    return (conn or connection()).capabilities.dialect == "sqlite"


def parameter_mark(conn: BaseDBAsyncClient | None = None) -> str:
    """What a numbered parameter starts with in a raw statement: `?` (SQLite's ?1, ?2...) or `$`
    (PostgreSQL's $1, $2...)."""
    return "?" if is_sqlite(conn) else "$"


async def ping() -> None:
    await connection().execute_query("SELECT 1")


def __getattr__(name: str) -> Any:
    # For Tortoise's own CLI: `tortoise -c api.db.TORTOISE_ORM makemigrations`.
    if name == "TORTOISE_ORM":
        return tortoise_config(Settings())
    raise AttributeError(name)
