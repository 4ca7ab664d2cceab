"""The app under test plus the baseline: a plain Starlette route running the same SQL.

Both share one process, one worker, one connection pool, so the ratio of their throughputs is
what the GraphQL layer costs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.app import create_app
from api.auth.tokens import read_access_token
from api.graphql.types import global_id
from api.observability import JsonFormatter, configure_logging
from api.services import accounts
from api.services.accounts import AccountSortField
from api.services.paging import PageRequest
from api.services.tenancy import Tenant
from api.settings import Settings


def _iso(value: object) -> object:
    return value.isoformat() if hasattr(value, "isoformat") else value


def build(settings: Settings) -> Starlette:
    app = create_app(settings)

    async def baseline(request: Request) -> Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        principal = read_access_token(token, key=settings.signing_key)
        assert principal.domain_id is not None and principal.domain is not None
        tenant = Tenant(domain_id=principal.domain_id, domain=principal.domain)
        page, _ = await accounts.list_accounts(
            tenant=tenant,
            mapi_ews_enabled=True,
            search=None,
            order=accounts.sort_spec(AccountSortField.LAST_LOGIN, descending=True),
            request=PageRequest(first=50),
            default_size=50,
            max_size=100,
        )
        edges = [
            {
                "cursor": cursor,
                "node": {
                    "id": global_id("Account", row.id),
                    "username": row.username,
                    "emailAddress": f"{row.username}@{tenant.domain}",
                    "name": row.name,
                    "lastLogin": _iso(row.last_login),
                    "lastLoginProtocol": row.last_login_protocol,
                    "lastMapiLogin": _iso(row.last_mapi_login),
                    "lastEwsLogin": _iso(row.last_ews_login),
                },
            }
            for cursor, row in zip(page.cursors, page.items, strict=True)
        ]
        body = {
            "data": {
                "mapiEwsAccounts": {
                    "totalCount": await page.count(),
                    "pageInfo": {
                        "hasNextPage": page.has_next_page,
                        "hasPreviousPage": page.has_previous_page,
                        "startCursor": page.cursors[0] if page.cursors else None,
                        "endCursor": page.cursors[-1] if page.cursors else None,
                    },
                    "edges": edges,
                }
            }
        }
        return Response(json.dumps(body), media_type="application/json")

    # The fan-out floor: plain WebSockets, one pre-encoded message written to every socket.
    sockets: set[WebSocket] = set()
    sending: set[asyncio.Task[None]] = set()

    async def baseline_ws(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="graphql-transport-ws")
        sockets.add(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            sockets.discard(websocket)

    async def baseline_count(_: Request) -> Response:
        return JSONResponse({"sockets": len(sockets)})

    async def baseline_broadcast(request: Request) -> Response:
        text = (await request.body()).decode()

        async def send_all() -> None:
            for websocket in list(sockets):
                with contextlib.suppress(Exception):
                    await websocket.send_text(text)

        task = asyncio.create_task(send_all())
        sending.add(task)
        task.add_done_callback(sending.discard)
        return JSONResponse({"sockets": len(sockets)})

    app.router.routes[0:0] = [
        Route("/baseline", baseline),
        WebSocketRoute("/baseline/ws", baseline_ws),
        Route("/baseline/ws/count", baseline_count),
        Route("/baseline/ws/broadcast", baseline_broadcast, methods=["POST"]),
    ]
    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    # BENCH_ACCESS_LOG=1: as `serve` runs in production, a JSON line per request to standard
    # error (bench/access_log.py points it at a file); =sync: the same lines written by the
    # request itself, as before the logging thread (the comparison's "before").
    mode = os.environ.get("BENCH_ACCESS_LOG")
    logged = mode in ("1", "sync")
    if mode == "1":
        configure_logging(json_lines=True)
    elif mode == "sync":
        written = logging.StreamHandler()
        written.setFormatter(JsonFormatter())
        logging.getLogger().handlers[:] = [written]
        logging.getLogger().setLevel(logging.INFO)
    uvicorn.run(
        build(Settings()),
        host="127.0.0.1",
        port=port,
        access_log=logged,
        log_config=None if logged else uvicorn.config.LOGGING_CONFIG,
        log_level=None if logged else "warning",
        ws_per_message_deflate=False,
    )
