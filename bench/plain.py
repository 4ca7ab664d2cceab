"""Independent ceilings for the MAPI/EWS tab's page: plain Starlette routes on Tortoise, as a
careful engineer would write them by hand, with no middleware and nothing of the app's transport
or services.

Each reads the same access token (PyJWT), makes the same two reads as the app for
mapiEwsAccounts(first: 50) by last login (the page's rows, in the same index, and the domain's kept
count for totalCount), and writes the same JSON document (orjson). bench/ceiling.py checks that
they answer as the app does before it measures.

- /page: through Tortoise's models, as an application on Tortoise is written (the issue's "plain
  Starlette + Tortoise route"): a QuerySet builds each statement as it runs it, and rows become
  model instances.
- /page/raw: the same statements as text on Tortoise's connection, rows as asyncpg returns them:
  what the database and the JSON cost without the ORM's work per request.

    python -m bench.plain PORT   (MAPI_EWS_DATABASE_URL, MAPI_EWS_SECRET_KEY)
"""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import jwt
import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from tortoise import Tortoise, connections

from api.db import tortoise_config
from api.models import Account, Domain
from api.settings import Settings

# Exactly what the app sends (captured from its statement cache, api/services/statements.py):
# the page, one more row to know whether there is a next page, of the accounts with a last
# login, read as the columns of an account without its password hash; then the kept count.
PAGE = (
    'SELECT "account"."id" "id","account"."username" "username","account"."name" "name",'
    '"account"."is_domain_admin" "is_domain_admin","account"."mapi_ews_enabled" '
    '"mapi_ews_enabled","account"."mapi_ews_protocols" "mapi_ews_protocols",'
    '"account"."external_id" "external_id","account"."mapi_ews_enabled_at" '
    '"mapi_ews_enabled_at","account"."last_login" "last_login","account"."last_login_protocol" '
    '"last_login_protocol","account"."last_mapi_login" "last_mapi_login",'
    '"account"."last_ews_login" "last_ews_login" FROM "account" LEFT OUTER JOIN '
    '"account_recency" ON "account"."id"="account_recency"."account_id" WHERE '
    '"account_recency"."domain_id"=$1 AND "account_recency"."mapi_ews_enabled"=$2 AND NOT '
    '"account_recency"."last_login" IS NULL ORDER BY "account_recency"."last_login" DESC,'
    '"account"."id" DESC LIMIT $3'
)
COUNT = "SELECT mapi_ews_enabled_count FROM domain WHERE id = $1"
SIZE = 50


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _cursor(last_login: datetime, row_id: int) -> str:
    raw = orjson.dumps(["last_login", last_login.isoformat(), row_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _id(row_id: int) -> str:
    return base64.urlsafe_b64encode(f"Account:{row_id}".encode()).decode()


def _answer(domain: str, rows: list[dict[str, Any]], total: int) -> Response:
    more = len(rows) > SIZE
    rows = rows[:SIZE]
    cursors = [_cursor(row["last_login"], row["id"]) for row in rows]
    edges: list[dict[str, Any]] = [
        {
            "cursor": cursor,
            "node": {
                "id": _id(row["id"]),
                "username": row["username"],
                "emailAddress": f"{row['username']}@{domain}",
                "name": row["name"],
                "lastLogin": _iso(row["last_login"]),
                "lastLoginProtocol": row["last_login_protocol"],
                "lastMapiLogin": _iso(row["last_mapi_login"]),
                "lastEwsLogin": _iso(row["last_ews_login"]),
            },
        }
        for cursor, row in zip(cursors, rows, strict=True)
    ]
    body = {
        "data": {
            "mapiEwsAccounts": {
                "totalCount": total,
                "pageInfo": {
                    "hasNextPage": more,
                    "hasPreviousPage": False,
                    "startCursor": cursors[0] if cursors else None,
                    "endCursor": cursors[-1] if cursors else None,
                },
                "edges": edges,
            }
        }
    }
    return Response(orjson.dumps(body), media_type="application/json")


def build(settings: Settings) -> Starlette:
    key = settings.signing_key

    def claims_of(request: Request) -> tuple[int, str] | None:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        try:
            claims = jwt.decode(token, key, algorithms=["HS256"], audience="mapi-ews-admin")
        except jwt.PyJWTError:
            return None
        return int(claims["did"]), str(claims["dom"])

    refused = Response(b'{"error":"unauthenticated"}', 401, media_type="application/json")

    async def page(request: Request) -> Response:
        claims = claims_of(request)
        if claims is None:
            return refused
        domain_id, domain = claims
        accounts = (
            await Account.filter(
                recency__domain_id=domain_id,
                recency__mapi_ews_enabled=True,
                recency__last_login__isnull=False,
            )
            .order_by("-recency__last_login", "-id")
            .limit(SIZE + 1)
        )
        counted = await Domain.filter(id=domain_id).only("id", "mapi_ews_enabled_count").first()
        rows = [
            {
                "id": account.id,
                "username": account.username,
                "name": account.name,
                "last_login": account.last_login,
                "last_login_protocol": account.last_login_protocol,
                "last_mapi_login": account.last_mapi_login,
                "last_ews_login": account.last_ews_login,
            }
            for account in accounts
        ]
        return _answer(domain, rows, counted.mapi_ews_enabled_count if counted else 0)

    async def raw(request: Request) -> Response:
        claims = claims_of(request)
        if claims is None:
            return refused
        domain_id, domain = claims
        conn = connections.get("default")
        rows = await conn.execute_query_dict(PAGE, [domain_id, True, SIZE + 1])
        counted = await conn.execute_query_dict(COUNT, [domain_id])
        return _answer(domain, rows, counted[0]["mapi_ews_enabled_count"] if counted else 0)

    async def healthz(_: Request) -> Response:
        return Response(b"ok")

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=True)
        try:
            yield
        finally:
            await Tortoise.close_connections()

    return Starlette(
        routes=[Route("/page", page), Route("/page/raw", raw), Route("/healthz", healthz)],
        lifespan=lifespan,
    )


if __name__ == "__main__":
    settings = Settings(database_url=os.environ["MAPI_EWS_DATABASE_URL"])
    uvicorn.run(
        build(settings),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        access_log=False,
        log_level="warning",
    )
