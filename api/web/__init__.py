"""The built-in dashboard: the MAPI/EWS tab as a page at `/`, plain files, no build step.

The page is static; everything it shows comes from /graphql, as for any other client. It is
served with a Content-Security-Policy that allows only this origin's own scripts, styles and
connections (no inline script, no CDN), so it also works without internet.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

STATIC = Path(__file__).parent / "static"

# 'self' covers ws:// and wss:// to this origin in CSP Level 3 (Chromium, Firefox, Safari).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
# (nosniff, DENY framing and no referrer come with every response: api/security.py.)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}


async def dashboard(_: Request) -> Response:
    # no-cache: revalidated on every visit, so a new release's page is picked up at once.
    headers = {**PAGE_HEADERS, "Cache-Control": "no-cache"}
    return FileResponse(STATIC / "index.html", headers=headers)


class _StaticFiles(StaticFiles):
    """Starlette's static files, with the page's Content-Security-Policy on every file."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))  # type: ignore[call-overload]
                headers += [(k.lower().encode(), v.encode()) for k, v in PAGE_HEADERS.items()]
                message["headers"] = headers
            await send(message)

        await super().__call__(scope, receive, send_with_headers)  # type: ignore[arg-type]


def routes() -> list[BaseRoute]:
    return [
        Route("/", dashboard, methods=["GET", "HEAD"]),
        Mount("/static", _StaticFiles(directory=STATIC), name="static"),
    ]
