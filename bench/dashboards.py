"""Thousands of dashboards as a load generator should be: cheaper than the server they load.

The `websockets` client costs this process some 50 µs of Python per message (frame parsing,
an asyncio queue, a task switch per connection, JSON decoding); with 5,000 connections on this
machine's two cores that is a quarter of a second of the client's own, counted as the
server's latency. These clients read the server's frames off the socket themselves, as wrk does
for HTTP: the time of arrival is taken when the bytes arrive, and the messages are decoded after
the measurement.

A server's frames are unmasked (RFC 6455, 5.1), so reading them is a header and a length; the
client's own few frames (connection_init, subscribe, pong) are masked as the RFC requires.
"""

from __future__ import annotations

import asyncio
import base64
import os
import time
from collections.abc import Iterable
from urllib.parse import urlsplit

import orjson

_TEXT, _CLOSE, _PING, _PONG = 0x1, 0x8, 0x9, 0xA


def _frame(opcode: int, payload: bytes) -> bytes:
    """A client frame: FIN, the opcode, the masked payload."""
    key = os.urandom(4)
    length = len(payload)
    if length < 126:
        header = bytes([0x80 | opcode, 0x80 | length])
    elif length < 1 << 16:
        header = bytes([0x80 | opcode, 0x80 | 126]) + length.to_bytes(2, "big")
    else:
        header = bytes([0x80 | opcode, 0x80 | 127]) + length.to_bytes(8, "big")
    mask = int.from_bytes((key * (length // 4 + 1))[:length], "big") if length else 0
    masked = (int.from_bytes(payload, "big") ^ mask).to_bytes(length, "big") if length else b""
    return header + key + masked


class Dashboard(asyncio.Protocol):
    """One graphql-transport-ws connection; `arrivals` holds (time, text) of each text frame
    received after the handshake, in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.handshake: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.upgraded = False
        self.arrivals: list[tuple[float, bytes]] = []
        self.nexts = 0  # `next` messages received
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        arrived = time.monotonic()
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end])
            del self.buffer[: end + 4]
            self.upgraded = True
            self.handshake.set_result(head)
        while len(self.buffer) >= 2:
            first, second = self.buffer[0], self.buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, offset = int.from_bytes(self.buffer[2:4], "big"), 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, offset = int.from_bytes(self.buffer[2:10], "big"), 10
            if len(self.buffer) < offset + length:
                return
            payload = bytes(self.buffer[offset : offset + length])
            del self.buffer[: offset + length]
            opcode = first & 0x0F
            if opcode == _TEXT:
                self.arrivals.append((arrived, payload))
                if b'"next"' in payload:
                    self.nexts += 1
            elif opcode == _PING:
                self.send_frame(_PONG, payload)
            elif opcode == _CLOSE:
                self.transport.close()  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def send_frame(self, opcode: int, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(_frame(opcode, payload))

    def send(self, message: object) -> None:
        self.send_frame(_TEXT, orjson.dumps(message))

    async def receive(self) -> object:
        """The next text message (during set-up only: it waits by polling)."""
        seen = len(self.arrivals)
        async with asyncio.timeout(60):
            while len(self.arrivals) == seen:
                await asyncio.sleep(0.01)
        return orjson.loads(self.arrivals[seen][1])

    def close(self) -> None:
        if self.transport is not None:
            self.send_frame(_CLOSE, (1000).to_bytes(2, "big"))
            self.transport.close()


async def connect(url: str, subprotocol: str = "graphql-transport-ws") -> Dashboard:
    parts = urlsplit(url)
    loop = asyncio.get_running_loop()
    _, dashboard = await loop.create_connection(Dashboard, parts.hostname, parts.port)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
    )
    assert dashboard.transport is not None
    dashboard.transport.write(request.encode())
    async with asyncio.timeout(60):
        head = await dashboard.handshake
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"{url}: {head.decode(errors='replace')}")
    return dashboard


def nexts(dashboards: Iterable[Dashboard]) -> int:
    return sum(dashboard.nexts for dashboard in dashboards)
