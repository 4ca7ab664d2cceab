"""The MAPI/EWS tab's list, mapiEwsAccounts(first: 50) by last login, against a plain route that
runs the same SQL and writes the same JSON (bench/server.py /baseline)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bench.common import CONNECTIONS, ROUNDS, SECONDS, Seeded, alternate, lua, save, table

# The page: 8 fields per account, pageInfo and totalCount.
LIST_QUERY = (
    "{ mapiEwsAccounts(first: 50, orderBy: {field: LAST_LOGIN, direction: DESC}) "
    "{ totalCount pageInfo { hasNextPage hasPreviousPage startCursor endCursor } "
    "edges { cursor node { id username emailAddress name lastLogin lastLoginProtocol "
    "lastMapiLogin lastEwsLogin } } } }"
)


def run(base: str, seeded: Seeded, scratch: Path) -> dict[str, object]:
    token = seeded.admin_token
    body = json.dumps({"query": LIST_QUERY})
    check = httpx.post(
        f"{base}/graphql",
        content=body,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    ).json()
    assert len(check["data"]["mapiEwsAccounts"]["edges"]) == 50, check
    plain = httpx.get(f"{base}/baseline", headers={"Authorization": f"Bearer {token}"}).json()
    assert plain["data"] == check["data"], "the baseline must write the same page"
    results = alternate(
        {
            "baseline": (f"{base}/baseline", lua(scratch, "baseline", "GET", None, token)),
            "graphql": (f"{base}/graphql", lua(scratch, "graphql", "POST", body, token)),
        }
    )
    ratio = results["graphql"]["rps"] / results["baseline"]["rps"]
    print(
        f"\nmapiEwsAccounts(first: 50) by last login; 10,000 accounts, 5,000 enabled; PostgreSQL;"
        f" 1 worker; wrk -t1 -c{CONNECTIONS} -d{SECONDS}s; median of {ROUNDS} alternating rounds"
    )
    table(results)
    print(f"graphql / baseline throughput: {ratio:.2f} (target 0.75 or more)")
    data = {"results": results, "ratio": ratio}
    save("list", data)
    return data
