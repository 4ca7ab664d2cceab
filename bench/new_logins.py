"""Reports at a million accounts, every one a new account from a new address (a morning's first
logins), batched and single, against /healthz on the same server in the same run. Run by
`python -m bench growth` once the domain has 1,000,000 accounts.

wrk walks the accounts with a stride (7,919, prime to their count), so a run reports each
account once; where it got to is kept in a file between runs, so the next round goes on from
there (a round may repeat at most the last 100 reports of the one before it). Nine in ten
reports are for accounts with MAPI/EWS, one in ten for one without (refused, still stored);
every report comes from an address of its own (10.x.y.z counted up). Targets (issue 32):
batched reports/s at least 1.0x /healthz's requests/s, single reports at least 0.15x.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import httpx

from bench.common import CONNECTIONS, ROUNDS, SECONDS, Seeded, alternate, lua, table

BATCH_SIZE = 100
TARGETS = {"batch": 1.0, "report": 0.15}

SINGLE = (
    "mutation($e: String!, $p: MailProtocol!, $a: String) "
    "{ recordProtocolLogin(input: {emailAddress: $e, protocol: $p, clientAddress: $a}) "
    "{ allowed } }"
)
BATCH = (
    "mutation($r: [RecordProtocolLoginInput!]!) "
    "{ recordProtocolLogins(input: {reports: $r}) { results { allowed } } }"
)

# The next report's number n, kept in `state` every 100 reports; account and address from n.
_WALK = """
local state = %s
local n = nil
local function next_report()
  if n == nil then
    local f = io.open(state, "r")
    n = 0
    if f then n = tonumber(f:read("*l")) or 0; f:close() end
  end
  n = n + 1
  if n %% 100 == 0 then
    local f = io.open(state, "w"); f:write(tostring(n)); f:close()
  end
  local i = 10000 + 2 * ((n * 7919) %% 495000)
  if n %% 10 == 0 then i = i + 1 end
  local protocol = "MAPI"
  if n %% 2 == 0 then protocol = "EWS" end
  local address = string.format("10.%%d.%%d.%%d",
    math.floor(n / 65536) %% 256, math.floor(n / 256) %% 256, n %% 256)
  return string.format("user%%07d@bench.example", i), protocol, address
end
"""
_SINGLE_REQUEST = """
local query = %s
request = function()
  local e, p, a = next_report()
  local body = string.format(
    '{"query":%%s,"variables":{"e":"%%s","p":"%%s","a":"%%s"}}', query, e, p, a)
  return wrk.format(nil, nil, nil, body)
end
"""
_BATCH_REQUEST = """
local query = %s
request = function()
  local reports = {}
  for k = 1, %d do
    local e, p, a = next_report()
    reports[k] = string.format(
      '{"emailAddress":"%%s","protocol":"%%s","clientAddress":"%%s"}', e, p, a)
  end
  local body = string.format(
    '{"query":%%s,"variables":{"r":[%%s]}}', query, table.concat(reports, ","))
  return wrk.format(nil, nil, nil, body)
end
"""


def run(base: str, seeded: Seeded, server_pid: int) -> dict[str, object]:
    token = seeded.gateway_token
    check = httpx.post(
        f"{base}/graphql",
        json={
            "query": SINGLE,
            "variables": {"e": "user0999998@bench.example", "p": "MAPI", "a": "192.0.2.1"},
        },
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert check["data"] == {"recordProtocolLogin": {"allowed": True}}, check
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        walk = _WALK % json.dumps(str(folder / "next-report"))
        single = walk + _SINGLE_REQUEST % json.dumps(json.dumps(SINGLE))
        batched = walk + _BATCH_REQUEST % (json.dumps(json.dumps(BATCH)), BATCH_SIZE)
        results = alternate(
            {
                "healthz": (f"{base}/healthz", lua(folder, "healthz", "GET", None, token)),
                "report": (f"{base}/graphql", lua(folder, "report", "POST", "", token, single)),
                "batch": (f"{base}/graphql", lua(folder, "batch", "POST", "", token, batched)),
            },
            server_pid=server_pid,
        )
        reported = int((folder / "next-report").read_text())
    healthz = results["healthz"]["rps"]
    ratios = {
        "report": results["report"]["rps"] / healthz,
        "batch": results["batch"]["rps"] * BATCH_SIZE / healthz,
    }
    print(
        f"\nReports at 1,000,000 accounts, each a new account from a new address; PostgreSQL; "
        f"1 worker; wrk -t1 -c{CONNECTIONS} -d{SECONDS}s; median of {ROUNDS} alternating rounds "
        f"({reported:,} reports in all)"
    )
    table(results)
    for label, ratio in ratios.items():
        met = "met" if ratio >= TARGETS[label] else "NOT met"
        what = f"{BATCH_SIZE} a request" if label == "batch" else "one a request"
        print(
            f"reports/s ({what}) / healthz req/s: {ratio:.2f} (target {TARGETS[label]:.2f}: {met})"
        )
    batch = results["batch"]
    if "server_cpu_ms" in batch:
        print(
            f"a new report in a batch: {1000 * batch['server_cpu_ms'] / BATCH_SIZE:.0f} us of the "
            f"worker's CPU, {1000 * batch['postgres_cpu_ms'] / BATCH_SIZE:.0f} us of PostgreSQL's"
        )
    return {"results": results, "ratios": ratios, "reports": reported}
