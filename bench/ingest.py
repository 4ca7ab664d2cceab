"""Gateway reports: recordProtocolLogin requests/s on one worker, against /healthz on the same
server in the same run. Each request reports a random account of 10,000: nine in ten have
MAPI/EWS (the allowed path: one statement), one in ten not (refused, still stored)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bench.common import CONNECTIONS, ROUNDS, SECONDS, Seeded, alternate, lua, save, table

REPORT = (
    "mutation($e: String!, $p: MailProtocol!) "
    "{ recordProtocolLogin(input: {emailAddress: $e, protocol: $p}) { allowed } }"
)

# wrk builds each request: a random account (even numbers have MAPI/EWS) and protocol.
_REQUEST = """
math.randomseed(os.time())
local query = %s
request = function()
  local i = math.random(0, 4999) * 2
  if math.random() < 0.1 then i = i + 1 end
  local protocol = "MAPI"
  if math.random() < 0.5 then protocol = "EWS" end
  local body = string.format(
    '{"query":%%s,"variables":{"e":"user%%05d@bench.example","p":"%%s"}}', query, i, protocol)
  return wrk.format(nil, nil, nil, body)
end
"""


def run(base: str, seeded: Seeded, scratch: Path) -> dict[str, object]:
    token = seeded.gateway_token
    check = httpx.post(
        f"{base}/graphql",
        json={"query": REPORT, "variables": {"e": "user00002@bench.example", "p": "MAPI"}},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert check == {"data": {"recordProtocolLogin": {"allowed": True}}}, check
    extra = _REQUEST % json.dumps(json.dumps(REPORT))
    results = alternate(
        {
            "healthz": (f"{base}/healthz", lua(scratch, "healthz", "GET", None, token)),
            "report": (f"{base}/graphql", lua(scratch, "report", "POST", "", token, extra)),
        }
    )
    ratio = results["report"]["rps"] / results["healthz"]["rps"]
    print(
        f"\nrecordProtocolLogin (90% allowed) against /healthz; PostgreSQL; 1 worker;"
        f" wrk -t1 -c{CONNECTIONS} -d{SECONDS}s; median of {ROUNDS} alternating rounds"
    )
    table(results)
    print(
        f"reports/s: {results['report']['rps']:.0f} (target 1,000 or more); "
        f"report / healthz throughput: {ratio:.2f}"
    )
    data = {"results": results, "ratio": ratio}
    save("ingest", data)
    return data
