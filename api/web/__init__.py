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

STATIC = Path(__file__).parent / "static"

# 'self' covers ws:// and wss:// to this origin in CSP Level 3 (Chromium, Firefox, Safari).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


async def dashboard(_: Request) -> Response:
    # The policy binds the document (and so every script it loads); nosniff, DENY framing and
    # no referrer come with every response (api/security.py). no-cache: revalidated on every
    # visit, so a new release's page is picked up at once.
    headers = {"Content-Security-Policy": CONTENT_SECURITY_POLICY, "Cache-Control": "no-cache"}
    return FileResponse(STATIC / "index.html", headers=headers)


def routes() -> list[BaseRoute]:
    return [
        Route("/", dashboard, methods=["GET", "HEAD"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
