"""The app under test plus the baseline: a plain Starlette route running the same SQL.

Both share one process, one worker, one connection pool, so the ratio of their throughputs is
what the GraphQL layer costs.
"""

from __future__ import annotations

import json
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.app import create_app
from api.auth.tokens import read_access_token
from api.services import accounts
from api.services.accounts import AccountSortField
from api.services.paging import PageRequest
from api.services.tenancy import Scope
from api.settings import Settings


def _iso(value: object) -> object:
    return value.isoformat() if hasattr(value, "isoformat") else value


def build(settings: Settings) -> Starlette:
    app = create_app(settings)

    async def baseline(request: Request) -> Response:
        token = request.headers["authorization"].removeprefix("Bearer ")
        principal = read_access_token(token, key=settings.signing_key)
        assert principal.domain_id is not None and principal.domain is not None
        scope = Scope(domain_id=principal.domain_id, domain=principal.domain)
        page = await accounts.list_accounts(
            scope=scope,
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
                    "username": row.username,
                    "name": row.name,
                    "lastLogin": _iso(row.last_login),
                    "lastLoginProtocol": row.last_login_protocol,
                },
            }
            for cursor, row in zip(page.cursors, page.items, strict=True)
        ]
        body = {
            "data": {
                "mapiEwsAccounts": {
                    "totalCount": page.total_count,
                    "pageInfo": {"hasNextPage": page.has_next_page},
                    "edges": edges,
                }
            }
        }
        return Response(json.dumps(body), media_type="application/json")

    app.router.routes.insert(0, Route("/baseline", baseline))
    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    uvicorn.run(
        build(Settings()), host="127.0.0.1", port=port, access_log=False, log_level="warning"
    )
