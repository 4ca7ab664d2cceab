"""GET /reports/mapi-ews-usage.csv?month=YYYY-MM: every domain's MAPI/EWS use in a month, as CSV,
for the host's billing. A system administrator's bearer token: 401 without a valid one, 403 for
anyone else. Streamed a page of domains at a time, so a host with many thousands of domains is
never held in memory at once.

Cells that a spreadsheet would run as a formula (starting with =, +, -, @, a tab or a carriage
return) are written with a leading apostrophe, OWASP's rule against CSV injection.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import AsyncIterator, Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from api import db
from api.auth.credentials import Authenticator, bearer_token
from api.auth.principal import Role
from api.errors import BadUserInput, Unauthenticated
from api.services import usage

log = logging.getLogger(__name__)
HEADER = ("domain", "month", "peak_enabled", "enabled_at_end", "limit")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")
_BATCH = 500


def neutralised(cell: object) -> object:
    """A text cell a spreadsheet would read as a formula, made plain text (OWASP)."""
    if isinstance(cell, str) and cell.startswith(_FORMULA):
        return "'" + cell
    return cell


def csv_lines(rows: Iterable[Iterable[object]]) -> str:
    """Rows as CSV text (RFC 4180 quoting: commas, quotes and new lines)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in rows:
        writer.writerow([neutralised(cell) for cell in row])
    return out.getvalue()


async def _report(month: str) -> AsyncIterator[str]:
    yield csv_lines([HEADER])
    after: str | None = None
    while True:
        page, used = await usage.report_batch(month=month, after=after, size=_BATCH)
        yield csv_lines(
            (
                u.domain,
                u.month,
                u.peak_enabled,
                u.enabled_at_end,
                "" if u.allowance is None else u.allowance,
            )
            for u in used
        )
        if not page.has_next_page:
            return
        after = page.cursors[-1]


def _refusal(status: int, message: str) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def routes(authenticator: Authenticator) -> list[Route]:
    async def usage_csv(request: Request) -> Response:
        try:
            token = bearer_token(request.headers.get("authorization"))
            if not token:
                raise Unauthenticated("Send a system administrator's bearer token.")
            address = request.client.host if request.client else None
            principal = await authenticator.principal(token, address=address)
        except Unauthenticated as refused:
            return _refusal(401, refused.message)
        except Exception as error:
            if not db.unavailable(error):
                raise
            # A gateway token is looked up in the database, which the report reads too.
            log.warning("the database is unavailable: %r", error)
            return _refusal(503, "The database cannot be reached right now: try again shortly.")
        if principal.role is not Role.SYSTEM_ADMIN:
            return _refusal(403, "The usage report is for system administrators.")
        month = request.query_params.get("month", "")
        try:
            first, _ = usage.parse_month(month)
        except BadUserInput as problem:
            return _refusal(400, problem.message)
        name = f"mapi-ews-usage-{first:%Y-%m}.csv"
        return StreamingResponse(
            _report(f"{first:%Y-%m}"),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{name}"',
                "Cache-Control": "no-store",
            },
        )

    return [Route("/reports/mapi-ews-usage.csv", usage_csv, methods=["GET"])]
