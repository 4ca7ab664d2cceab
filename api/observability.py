"""Request ids and log lines that carry them."""

from __future__ import annotations

import atexit
import itertools
import json
import logging
import logging.handlers
import os
import queue
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_request_id: ContextVar[str] = ContextVar("request_id", default="-")
_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A random prefix per process and a counter: unique across processes and restarts, and cheaper
# than a uuid4 per request (which reads the OS's random source each time).
_PREFIX = os.urandom(6).hex()
_COUNTER = itertools.count(1)


def new_request_id() -> str:
    return f"{_PREFIX}{next(_COUNTER):010x}"


def request_id() -> str:
    return _request_id.get()


class RequestIdMiddleware:
    """Takes X-Request-ID when it is well-formed, else makes one; echoes it on the response,
    with the security headers every response carries (api/security.py)."""

    def __init__(
        self, app: ASGIApp, headers: dict[bool, list[tuple[bytes, bytes]]] | None = None
    ) -> None:
        self.app = app
        self.headers = headers or {False: [], True: []}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _ACCEPTED_ID.fullmatch(given) else new_request_id()
        token = _request_id.set(rid)
        try:
            if scope["type"] == "websocket":
                # The headers go on HTTP responses only: a WebSocket's frames pass as they are,
                # without a wrapper that every frame to every dashboard would go through.
                await self.app(scope, receive, send)
            else:
                await self.app(scope, receive, self._with_id(send, rid, scope["path"]))
        finally:
            _request_id.reset(token)

    def _with_id(self, send: Send, rid: str, path: str) -> Send:
        extra = self.headers[path == "/graphql"]

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", rid.encode()),
                    *extra,
                ]
            await send(message)

        return send_with_id


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            # Taken when the line was logged (_Handoff), or now for a line logged otherwise.
            "request_id": getattr(record, "request_id", None) or request_id(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line)


class _Handoff(logging.handlers.QueueHandler):
    """Hands each record to the writing thread as it is: the request (or task) that logs pays
    for a queue put, not for formatting and writing the line. What only this moment knows, the
    request id, goes with it."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.request_id = request_id()
        return record


_listener: logging.handlers.QueueListener | None = None


def _stop_writing() -> None:
    """At exit: the lines still queued are written, then the thread ends."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


def configure_logging(*, json_lines: bool, level: int = logging.INFO) -> None:
    """Log lines (JSON Lines in production) to standard error, formatted and written by a
    thread of their own (the access log's line per request included), flushed at exit."""
    root = logging.getLogger()
    root.handlers[:] = [line_writer(json_lines=json_lines)]
    root.setLevel(level)


def line_writer(*, json_lines: bool) -> logging.Handler:
    """The handler of configure_logging: it hands each record to this process's writing thread,
    started now (once a process; a second call starts it afresh, after the lines it holds)."""
    global _listener
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter() if json_lines else logging.Formatter("%(levelname)s %(name)s: %(message)s")
    )
    if _listener is None:
        atexit.register(_stop_writing)
    else:
        _listener.stop()
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(lines, handler)
    _listener.start()
    return _Handoff(lines)


def uvicorn_log_config(*, json_lines: bool) -> dict[str, Any]:
    """configure_logging as uvicorn's `log_config`, which uvicorn applies in every worker
    process it starts (`serve --workers N`): a worker is a new interpreter and keeps nothing of
    its parent's logging, so without it the workers' lines, access log included, were lost."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {"lines": {"()": f"{__name__}.line_writer", "json_lines": json_lines}},
        "root": {"handlers": ["lines"], "level": "INFO"},
    }
