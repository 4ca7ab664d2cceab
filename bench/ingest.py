"""Gateway reports: recordProtocolLogin requests/s on one worker, against /healthz on the same
server in the same run. Each request reports a random account of 10,000: nine in ten have
MAPI/EWS (the allowed path: one statement), one in ten not (refused, still stored). The
`session` rounds carry a session id and a client name as well (an allowed one opens or refreshes
a session in the same statement): one of twenty ids per account, so new and known ids mix.
20,000 sessions are open when it starts (four per enabled account), as in a deployment whose
gateways report sessions: every report counts the account's open ones for its event. The `batch`
rounds send recordProtocolLogins with 100 such reports a request (reports/s is 100 times its
requests/s). Each figure also says what a request cost the worker and PostgreSQL in CPU: this
bench is bound by the machine's cores, so those costs are what carries over to another one."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bench.common import CONNECTIONS, ROUNDS, SECONDS, Seeded, alternate, lua, save, table
from bench.sessions import seed_sessions

REPORT = (
    "mutation($e: String!, $p: MailProtocol!) "
    "{ recordProtocolLogin(input: {emailAddress: $e, protocol: $p}) { allowed } }"
)
SESSION_REPORT = (
    "mutation($e: String!, $p: MailProtocol!, $s: String, $c: String) "
    "{ recordProtocolLogin(input: {emailAddress: $e, protocol: $p, sessionId: $s, "
    "clientName: $c}) { allowed } }"
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
# The same with a session id (one of twenty per account) and a client name.
_SESSION_REQUEST = """
math.randomseed(os.time() + 1)
local query = %s
request = function()
  local i = math.random(0, 4999) * 2
  if math.random() < 0.1 then i = i + 1 end
  local protocol = "MAPI"
  if math.random() < 0.5 then protocol = "EWS" end
  local body = string.format(
    '{"query":%%s,"variables":{"e":"user%%05d@bench.example","p":"%%s","s":"s-%%d-%%d",' ..
    '"c":"Microsoft Outlook 16.0.17928.20114"}}', query, i, protocol, i, math.random(0, 19))
  return wrk.format(nil, nil, nil, body)
end
"""

# /healthz on the machine the absolute targets were set on (shared/PERFORMANCE.md: 14,500 req/s
# with 1,693 reports/s): reports/s scaled by it tell a slower or faster machine from slower or
# faster code.
REFERENCE_HEALTHZ = 14_500

BATCH = (
    "mutation($r: [RecordProtocolLoginInput!]!) "
    "{ recordProtocolLogins(input: {reports: $r}) { results { allowed } } }"
)
BATCH_SIZE = 100
# The same mix, BATCH_SIZE reports a request.
_BATCH_REQUEST = """
math.randomseed(os.time() + 2)
local query = %s
request = function()
  local reports = {}
  for n = 1, %d do
    local i = math.random(0, 4999) * 2
    if math.random() < 0.1 then i = i + 1 end
    local protocol = "MAPI"
    if math.random() < 0.5 then protocol = "EWS" end
    reports[n] = string.format(
      '{"emailAddress":"user%%05d@bench.example","protocol":"%%s"}', i, protocol)
  end
  local body = string.format(
    '{"query":%%s,"variables":{"r":[%%s]}}', query, table.concat(reports, ","))
  return wrk.format(nil, nil, nil, body)
end
"""


def run(
    base: str, seeded: Seeded, scratch: Path, database_url: str, server_pid: int | None = None
) -> dict[str, object]:
    seed_sessions(database_url, 20_000)
    token = seeded.gateway_token
    check = httpx.post(
        f"{base}/graphql",
        json={"query": REPORT, "variables": {"e": "user00002@bench.example", "p": "MAPI"}},
        headers={"Authorization": f"Bearer {token}"},
    ).json()
    assert check["data"] == {"recordProtocolLogin": {"allowed": True}}, check
    extra = _REQUEST % json.dumps(json.dumps(REPORT))
    with_session = _SESSION_REQUEST % json.dumps(json.dumps(SESSION_REPORT))
    batched = _BATCH_REQUEST % (json.dumps(json.dumps(BATCH)), BATCH_SIZE)
    results = alternate(
        {
            "healthz": (f"{base}/healthz", lua(scratch, "healthz", "GET", None, token)),
            "report": (f"{base}/graphql", lua(scratch, "report", "POST", "", token, extra)),
            "session": (
                f"{base}/graphql",
                lua(scratch, "session", "POST", "", token, with_session),
            ),
            "batch": (f"{base}/graphql", lua(scratch, "batch", "POST", "", token, batched)),
        },
        server_pid=server_pid,
    )
    ratio = results["report"]["rps"] / results["healthz"]["rps"]
    print(
        f"\nrecordProtocolLogin (90% allowed) against /healthz; PostgreSQL; 1 worker;"
        f" wrk -t1 -c{CONNECTIONS} -d{SECONDS}s; median of {ROUNDS} alternating rounds"
    )
    table(results)
    sessions = results["session"]["rps"]
    print(
        f"reports/s: {results['report']['rps']:.0f}, with session ids {sessions:.0f} "
        f"(target 1,500 or more); report / healthz throughput: {ratio:.2f}, "
        f"with session ids {sessions / results['healthz']['rps']:.2f}"
    )
    batch_reports = results["batch"]["rps"] * BATCH_SIZE
    print(
        f"recordProtocolLogins, {BATCH_SIZE} reports a request: {batch_reports:.0f} reports/s "
        f"(target 10,000 or more), {batch_reports / results['report']['rps']:.1f}x the single "
        "report's"
    )
    scale = REFERENCE_HEALTHZ / results["healthz"]["rps"]
    print(
        f"at the reference machine's /healthz ({REFERENCE_HEALTHZ:,} req/s), reports/s would be "
        f"about {results['report']['rps'] * scale:.0f}, {sessions * scale:.0f} with session ids, "
        f"{batch_reports * scale:.0f} batched"
    )
    batch = results["batch"]
    if "server_cpu_ms" in batch:
        # What a batched report costs, whatever this machine's speed: the bench is CPU-bound.
        print(
            f"a report in a batch: {1000 * batch['server_cpu_ms'] / BATCH_SIZE:.0f} us of the "
            f"worker's CPU, {1000 * batch['postgres_cpu_ms'] / BATCH_SIZE:.0f} us of PostgreSQL's"
        )
    data = {"results": results, "ratio": ratio, "batch_reports_per_second": batch_reports}
    save("ingest", data)
    return data
