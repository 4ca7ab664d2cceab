"""`mapi-ews-admin simulate-gateway`: a working reference MAPI/EWS gateway.

It does what a real front end does, in the order docs/gateways.md explains, and prints one line
per step (JSON lines with --json):

1. listen first: a graphql-transport-ws connection subscribed to `protocolSessionCommands`, so
   no command issued while it opens sessions is missed (the server sends the backlog first);
2. open sessions: one `recordProtocolLogin` per connection, with the session's id and the
   client's name; a refused login is a connection turned away;
3. confirm them every --touch-seconds with `touchProtocolSessions` (at most 1,000 ids a call),
   closing whatever `endNow` names;
4. close what a command names, then report it with `endProtocolSessions`;
5. reconnect the command connection with backoff (0.5 s doubling to 30 s, with jitter) when it
   drops; the backlog on subscribing covers what was missed;
6. on SIGINT or SIGTERM (or after --duration), close every session it holds and report them.

The token comes from MAPI_EWS_GATEWAY_TOKEN or a file (--token-file), never from an argument
that `ps` would show.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import secrets
import signal
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx
import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException
from websockets.typing import Subprotocol

TOKEN_VARIABLE = "MAPI_EWS_GATEWAY_TOKEN"  # noqa: S105 - a variable's name
TOUCH_BATCH = 1000
CLIENTS = {
    "MAPI": ("Microsoft Outlook 16.0.17928.20114",),
    "EWS": ("Apple Mail 16.0 (3774.600.62)", "eM Client 10.1.4828.0"),
}

REPORT = """
mutation Report($input: RecordProtocolLoginInput!) {
  recordProtocolLogin(input: $input) { allowed refusal userErrors { field code message } }
}"""
TOUCH = """
mutation Touch($ids: [String!]!) {
  touchProtocolSessions(input: {sessionIds: $ids}) { touched endNow userErrors { message } }
}"""
END = """
mutation End($ids: [String!]!) {
  endProtocolSessions(input: {sessionIds: $ids}) { ended userErrors { message } }
}"""
COMMANDS = "subscription { protocolSessionCommands { endSessionIds emailAddress reason issuedAt } }"


class GatewayError(Exception):
    """The API refused a request in a way retrying will not mend (a bad token, say)."""


@dataclass(frozen=True, slots=True)
class Held:
    email_address: str
    protocol: str
    client_name: str


@dataclass
class Simulator:
    url: str
    token: str
    accounts: Sequence[str]
    sessions: int
    protocols: Sequence[str] = ("MAPI", "EWS")
    # Each session's client in turn; none: Outlook for MAPI, Apple Mail or eM Client for EWS.
    client_names: Sequence[str] = ()
    touch_seconds: float = 60.0
    prefix: str = field(default_factory=lambda: f"sim-{secrets.token_hex(3)}")
    json_lines: bool = False
    out: TextIO = sys.stdout
    held: dict[str, Held] = field(default_factory=dict)
    http: httpx.AsyncClient = field(init=False)

    def say(self, step: str, text: str, **details: Any) -> None:
        """One line per step: text for a person, or JSON for a program."""
        if self.json_lines:
            line = orjson.dumps({"step": step, **details}).decode()
        else:
            line = f"{step:<10} {text}"
        print(line, file=self.out, flush=True)

    async def run(self, stop: asyncio.Event) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.url, headers=headers, timeout=10) as http:
            self.http = http
            listening = asyncio.Event()
            listener = asyncio.create_task(self.listen(listening), name="commands")
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(listening.wait(), 10)
                await self.open_all()
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.touch_seconds)
                    if not stop.is_set():
                        await self.confirm()
            finally:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
                await self.close_all()

    async def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """One GraphQL request, retried with backoff while the API cannot be reached."""
        delay = 0.5
        while True:
            try:
                response = await self.http.post(
                    "/graphql", json={"query": query, "variables": variables}
                )
            except httpx.TransportError as error:
                self.say("retrying", f"the API is unreachable ({error!r}); again in {delay:.1f} s")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
                continue
            body: dict[str, Any] = response.json()
            if body.get("errors"):
                raise GatewayError("; ".join(str(e.get("message")) for e in body["errors"]))
            data: dict[str, Any] = body["data"]
            return next(iter(data.values()))

    def plan(self) -> list[tuple[str, Held]]:
        """The sessions to open: accounts in turn, protocols and clients in turn."""
        accounts = itertools.cycle(self.accounts)
        clients = {p: itertools.cycle(names) for p, names in CLIENTS.items()}
        chosen = itertools.cycle(self.client_names) if self.client_names else None
        planned = []
        for number in range(1, self.sessions + 1):
            # Each round over the accounts takes the next protocol: MAPI for all, then EWS.
            rounds = (number - 1) // len(self.accounts)
            protocol = self.protocols[rounds % len(self.protocols)]
            client = next(chosen) if chosen is not None else next(clients[protocol])
            held = Held(next(accounts), protocol, client)
            planned.append((f"{self.prefix}-{number:04d}", held))
        return planned

    async def open_all(self) -> None:
        for session_id, held in self.plan():
            answer = await self.call(
                REPORT,
                {
                    "input": {
                        "emailAddress": held.email_address,
                        "protocol": held.protocol,
                        "sessionId": session_id,
                        "clientName": held.client_name,
                        "clientAddress": "127.0.0.1",
                    }
                },
            )
            details = {"sessionId": session_id, "emailAddress": held.email_address}
            if answer["userErrors"]:
                problem = "; ".join(e["message"] for e in answer["userErrors"])
                self.say("error", f"{held.email_address}: {problem}", **details, error=problem)
            elif answer["allowed"]:
                self.held[session_id] = held
                self.say(
                    "opened",
                    f"{session_id} {held.email_address} {held.protocol} ({held.client_name})",
                    **details,
                    protocol=held.protocol,
                    clientName=held.client_name,
                )
            else:
                reason = answer.get("refusal") or "MAPI_EWS_DISABLED"
                self.say(
                    "refused",
                    f"{held.email_address} {held.protocol} ({held.client_name}): {reason}",
                    **details,
                    protocol=held.protocol,
                    clientName=held.client_name,
                    refusal=reason,
                )
        self.say("holding", f"{len(self.held)} session(s)", sessions=len(self.held))

    async def confirm(self) -> None:
        ids = list(self.held)
        touched, closing = 0, []
        for start in range(0, len(ids), TOUCH_BATCH):
            answer = await self.call(TOUCH, {"ids": ids[start : start + TOUCH_BATCH]})
            touched += answer["touched"]
            closing += answer["endNow"]
        self.say("confirmed", f"{touched} session(s) still open", touched=touched)
        if closing:
            await self.close(closing, reason="endNow")

    async def close(self, session_ids: Sequence[str], *, reason: str) -> None:
        """Close the named sessions this gateway holds, then report them closed."""
        closing = [session_id for session_id in session_ids if session_id in self.held]
        for session_id in closing:
            held = self.held.pop(session_id)
            self.say(
                "closed",
                f"{session_id} {held.email_address} ({reason})",
                sessionId=session_id,
                emailAddress=held.email_address,
                reason=reason,
            )
        if closing:
            answer = await self.call(END, {"ids": closing})
            self.say(
                "ended", f"{answer['ended']} session(s) reported closed", ended=answer["ended"]
            )

    async def close_all(self) -> None:
        if self.held:
            with contextlib.suppress(GatewayError, httpx.HTTPError):
                await self.close(list(self.held), reason="gateway stopping")
        self.say("stopped", "no session held", sessions=len(self.held))

    async def listen(self, listening: asyncio.Event) -> None:
        """Receive commands for as long as it runs, reconnecting with backoff."""
        url = self.url.replace("http://", "ws://").replace("https://", "wss://") + "/graphql"
        delay = 0.5
        while True:
            try:
                async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
                    init = {
                        "type": "connection_init",
                        "payload": {"Authorization": f"Bearer {self.token}"},
                    }
                    await ws.send(orjson.dumps(init).decode())
                    ack = orjson.loads(await ws.recv())
                    if ack.get("type") != "connection_ack":
                        raise GatewayError(f"the API did not accept the connection: {ack}")
                    subscribe = {
                        "id": "commands",
                        "type": "subscribe",
                        "payload": {"query": COMMANDS},
                    }
                    await ws.send(orjson.dumps(subscribe).decode())
                    self.say("listening", "for commands", url=url)
                    listening.set()
                    delay = 0.5
                    async for raw in ws:
                        await self.on_message(orjson.loads(raw))
            except (OSError, WebSocketException, GatewayError) as error:
                wait = delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
                self.say(
                    "reconnect",
                    f"command connection lost ({error!r}); again in {wait:.1f} s",
                    retryInSeconds=round(wait, 1),
                )
                await asyncio.sleep(wait)
                delay = min(delay * 2, 30.0)

    async def on_message(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "ping":
            return
        if kind != "next":
            raise GatewayError(f"the command subscription ended: {message}")
        payload = message["payload"]
        if payload.get("errors"):
            raise GatewayError("; ".join(e["message"] for e in payload["errors"]))
        command = payload["data"]["protocolSessionCommands"]
        ids = command["endSessionIds"]
        self.say(
            "command",
            f"close {len(ids)} session(s) of {command['emailAddress']} ({command['reason']})",
            emailAddress=command["emailAddress"],
            reason=command["reason"],
            sessionIds=ids,
        )
        await self.close(ids, reason=command["reason"])


def read_token(token_file: str | None) -> str:
    """The gateway token: the environment's, or the first line of `token_file`."""
    if token_file is not None:
        with open(token_file) as source:
            token = source.readline().strip()
    else:
        token = os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        where = token_file or f"${TOKEN_VARIABLE}"
        raise SystemExit(f"simulate-gateway: no gateway token in {where}")
    return token


async def simulate(simulator: Simulator, duration: float | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    if duration is not None:
        loop.call_later(duration, stop.set)
    try:
        await simulator.run(stop)
    except GatewayError as error:
        raise SystemExit(f"simulate-gateway: {error}") from None
