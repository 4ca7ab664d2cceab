import logging
from urllib.parse import urlsplit, urlunsplit

import pytest
from tortoise.backends.base.executor import EXECUTOR_CACHE

from api import db
from api.settings import Settings
from tests.conftest import PG_URL


@pytest.mark.postgres
async def test_the_database_password_stays_out_of_even_debug_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert PG_URL is not None
    parts = urlsplit(PG_URL)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or "postgres"
    with_password = urlunsplit(parts._replace(netloc=f"{user}:pw-canary-8d2f@{host}"))
    settings = Settings(database_url=with_password)

    with caplog.at_level(logging.DEBUG):
        await db.open_database(settings)
        try:
            await db.ping()  # a real connection and a query; no tables needed
        finally:
            await db.close_database()
            EXECUTOR_CACHE.clear()  # this session's other tests may be on SQLite: see conftest

    assert caplog.records
    assert "pw-canary-8d2f" not in caplog.text
