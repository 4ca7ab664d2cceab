"""WebSocket connections stay authorized for as long as they last.

A connection is authenticated once, at connection_init, and may then carry subscriptions for
hours. Its watch closes it with 4403 (the code the contract uses for refused credentials) when
the access token expires, and when a periodic check finds that the principal lost what it was
signed in as: the account deleted, moved to another domain, no longer a domain administrator,
the system administrator removed, the gateway token revoked. Every subscription of the
connection ends with it; a client reconnects with fresh credentials (the dashboard refreshes its
token and does so by itself).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import UTC, datetime

from starlette.websockets import WebSocket

from api.auth.principal import Principal
from api.metrics import EXPIRED, WITHDRAWN

log = logging.getLogger(__name__)

CLOSE_CODE = 4403
_REASONS = {
    EXPIRED: "The access token has expired: reconnect with a fresh one.",
    WITHDRAWN: "The credentials no longer grant access: sign in again.",
}


class ConnectionWatch:
    """One per WebSocket connection; started once it is authenticated, stopped when it ends.

    Between checks a connection holds one timer, not a task: a sleeping task and its frames
    cost some 2 KB more for each of thousands of dashboards (docs/performance.md, "Compiled
    plans and 5,000 dashboards")."""

    def __init__(
        self,
        *,
        interval: float,
        still_allowed: Callable[[Principal], Awaitable[bool]],
        closed: Callable[[str], None],
    ) -> None:
        self.interval = interval
        self.still_allowed = still_allowed
        self.closed = closed  # counts a close, by reason
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self, websocket: WebSocket, principal: Principal) -> None:
        self.stop()
        self._schedule(websocket, principal)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.task is not None:
            self.task.cancel()
            self.task = None

    def _schedule(self, websocket: WebSocket, principal: Principal) -> None:
        wait = self.interval
        if principal.expires_at is not None:
            left = (principal.expires_at - datetime.now(UTC)).total_seconds()
            wait = min(wait, max(left, 0.0))
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(wait, self._due, websocket, principal)

    def _due(self, websocket: WebSocket, principal: Principal) -> None:
        self.timer = None
        self.task = asyncio.create_task(self._check(websocket, principal))

    async def _check(self, websocket: WebSocket, principal: Principal) -> None:
        if principal.expires_at is not None and datetime.now(UTC) >= principal.expires_at:
            await self._close(websocket, principal, EXPIRED)
            return
        try:
            allowed = await self.still_allowed(principal)
        except Exception:
            # The database is unreachable: keep the connection (its token still expires on
            # time) rather than cut every dashboard off during an outage.
            log.warning("could not check a connection's credentials", exc_info=True)
            allowed = True
        if not allowed:
            await self._close(websocket, principal, WITHDRAWN)
            return
        self.task = None
        self._schedule(websocket, principal)

    async def _close(self, websocket: WebSocket, principal: Principal, reason: str) -> None:
        self.closed(reason)
        log.info("closing a WebSocket connection of %s: credentials %s", principal.username, reason)
        with suppress(Exception):  # the client may be gone already
            await websocket.close(code=CLOSE_CODE, reason=_REASONS[reason])
