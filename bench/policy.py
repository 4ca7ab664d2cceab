"""Reports under a client access policy: recordProtocolLogin and recordProtocolLogins (100 a
request) with a 100-rule policy in force, against the same with the default policy and against
/healthz, in one run (rounds alternate: default, 100 rules, healthz). The reports name 1,000
distinct clients (Outlook builds, Apple Mail and eM Client versions), so that the decisions a
process remembers per client (api/services/access_policy.py) are mostly, not always, known; the
rules are 99 block patterns that match none of them and one `belowVersion` rule for MAPI, so every
rule is tried for every client not yet decided. Then setClientAccessPolicy cutting off 10,000
open sessions: the answer's time, and when the last gateway command arrives after it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import websockets

from bench.common import CONNECTIONS, ROUNDS, SECONDS, Seeded, lua, measured, median, save, table
from bench.sessions import seed_sessions

POLICY = (
    "mutation($rules: [ClientAccessRuleInput!]!) { setClientAccessPolicy(input: "
    '{domain: "bench.example", mode: BLOCK_LISTED, rules: $rules}) { sessionsEnding '
    "userErrors { field message } } }"
)
RULES = [{"pattern": f"*Blocked Client {n}*"} for n in range(99)] + [
    {"pattern": "Microsoft Outlook*", "protocol": "MAPI", "belowVersion": "15.0"}
]
REPORT = (
    "mutation($e: String!, $p: MailProtocol!, $c: String) "
    "{ recordProtocolLogin(input: {emailAddress: $e, protocol: $p, clientName: $c}) "
    "{ allowed refusal } }"
)
BATCH = (
    "mutation($r: [RecordProtocolLoginInput!]!) "
    "{ recordProtocolLogins(input: {reports: $r}) { results { allowed refusal } } }"
)
# 1,000 distinct client names: 400 Outlook builds, 300 Apple Mail, 300 eM Client versions
# (its % are doubled: the scripts below go through Python's % formatting).
_CLIENT = """
local function client(protocol)
  local n = math.random(0, 999)
  if n < 400 then return string.format("Microsoft Outlook 16.0.%%d.20000", 17000 + n) end
  if n < 700 then return string.format("Apple Mail 16.0 (3774.%%d.62)", n) end
  return string.format("eM Client 10.1.%%d.0", n)
end
"""
_SINGLE = (
    _CLIENT
    + """
math.randomseed(os.time() + 3)
local query = %s
request = function()
  local i = math.random(0, 4999) * 2
  local protocol = "MAPI"
  if math.random() < 0.5 then protocol = "EWS" end
  local body = string.format('{"query":%%s,"variables":{"e":"user%%05d@bench.example",' ..
    '"p":"%%s","c":"%%s"}}', query, i, protocol, client(protocol))
  return wrk.format(nil, nil, nil, body)
end
"""
)
_BATCHED = (
    _CLIENT
    + """
math.randomseed(os.time() + 4)
local query = %s
request = function()
  local reports = {}
  for n = 1, 100 do
    local i = math.random(0, 4999) * 2
    local protocol = "MAPI"
    if math.random() < 0.5 then protocol = "EWS" end
    reports[n] = string.format('{"emailAddress":"user%%05d@bench.example","protocol":"%%s",' ..
      '"clientName":"%%s"}', i, protocol, client(protocol))
  end
  local body = string.format('{"query":%%s,"variables":{"r":[%%s]}}', query,
    table.concat(reports, ","))
  return wrk.format(nil, nil, nil, body)
end
"""
)


def _set_policy(base: str, token: str, rules: list[dict[str, str]]) -> int:
    answer = httpx.post(
        f"{base}/graphql",
        json={"query": POLICY, "variables": {"rules": rules}},
        headers={"Authorization": f"Bearer {token}"},
        timeout=120,
    ).json()
    payload = answer["data"]["setClientAccessPolicy"]
    assert payload["userErrors"] == [], payload
    return int(payload["sessionsEnding"])


def run(
    base: str, seeded: Seeded, scratch: Path, database_url: str, server_pid: int | None = None
) -> dict[str, object]:
    token = seeded.gateway_token
    scripts = {
        "healthz": (f"{base}/healthz", lua(scratch, "p-healthz", "GET", None, token)),
        "single": (
            f"{base}/graphql",
            lua(scratch, "p-single", "POST", "", token, _SINGLE % json.dumps(json.dumps(REPORT))),
        ),
        "batch": (
            f"{base}/graphql",
            lua(scratch, "p-batch", "POST", "", token, _BATCHED % json.dumps(json.dumps(BATCH))),
        ),
    }
    rounds: dict[str, list[dict[str, float]]] = {}
    for _ in range(ROUNDS):
        for policy, rules in (("default", []), ("100 rules", RULES)):
            _set_policy(base, seeded.admin_token, rules)
            for label in ("single", "batch"):
                url, script = scripts[label]
                rounds.setdefault(f"{label}, {policy}", []).append(
                    measured(url, script, server_pid)
                )
        url, script = scripts["healthz"]
        rounds.setdefault("healthz", []).append(measured(url, script, server_pid))
    results = {label: median(runs) for label, runs in rounds.items()}
    print(
        f"\nReports under a client access policy, 1,000 distinct clients; PostgreSQL; 1 worker;"
        f" wrk -t1 -c{CONNECTIONS} -d{SECONDS}s; median of {ROUNDS} alternating rounds"
    )
    table(results)
    single = results["single, 100 rules"]["rps"] / results["single, default"]["rps"]
    batch = results["batch, 100 rules"]["rps"] / results["batch, default"]["rps"]
    print(
        f"with 100 rules / with the default policy: single {single:.2f}, batched {batch:.2f} "
        "(target 0.9 or more each)"
    )
    cut = asyncio.run(_cut_off(base, seeded, database_url))
    _set_policy(base, seeded.admin_token, [])
    data = {"results": results, "single_ratio": single, "batch_ratio": batch, "cut_off": cut}
    save("policy", data)
    return data


async def _cut_off(
    base: str, seeded: Seeded, database_url: str, count: int = 10_000
) -> dict[str, float]:
    """10,000 open sessions of one client, a policy that refuses it: the answer's time, and the
    last command's arrival after the answer, as the gateway holding them sees it."""
    _set_policy(base, seeded.admin_token, [])
    await asyncio.to_thread(seed_sessions, database_url, count, "Scraper 1.0")
    ws_url = base.replace("http", "ws", 1) + "/graphql"
    commands = "subscription { protocolSessionCommands { endSessionIds } }"
    async with websockets.connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        await ws.send(
            json.dumps(
                {
                    "type": "connection_init",
                    "payload": {"Authorization": f"Bearer {seeded.gateway_token}"},
                }
            )
        )
        assert json.loads(await ws.recv())["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "c", "type": "subscribe", "payload": {"query": commands}}))
        await asyncio.sleep(1)  # subscribed (its backlog, if any, comes first)
        started = time.monotonic()
        ending = await asyncio.to_thread(
            _set_policy, base, seeded.admin_token, [{"pattern": "scraper*"}]
        )
        answered = time.monotonic()
        told: list[float] = []  # when each session's command arrived
        try:
            async with asyncio.timeout(30):
                while len(told) < ending:
                    message = json.loads(await ws.recv())
                    if message.get("type") in ("error", "complete") or "errors" in message.get(
                        "payload", {}
                    ):
                        raise RuntimeError(f"the gateway's subscription ended: {message}")
                    if message.get("type") == "next":
                        data = message["payload"]["data"]["protocolSessionCommands"]
                        told += [time.monotonic()] * len(data["endSessionIds"])
        except TimeoutError:
            raise RuntimeError(f"{len(told)} of {ending} sessions told in 30 s") from None
        last = told[-1] if told else answered
    figures = {
        "sessions": float(ending),
        "answer_seconds": answered - started,
        "last_command_after_answer_seconds": max(0.0, last - answered),
    }
    print(
        f"setClientAccessPolicy ending {ending:,} open sessions: answered in "
        f"{figures['answer_seconds']:.2f} s, the last command "
        f"{figures['last_command_after_answer_seconds']:.2f} s after the answer (target under 1 s)"
    )
    return figures
