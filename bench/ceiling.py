"""`python -m bench ceiling`: the MAPI/EWS tab's page as deployed against an independent ceiling.

The app runs as production runs it: `mapi-ews-admin serve` (MAPI_EWS_ENV=production, its access
log on, JSON log lines to a file, cost budgets charged and settled, Redis for events when there
is one). The ceiling is bench/plain.py, a plain Starlette + Tortoise route in a process of its own
with no middleware: the same token check, the same SQL statements and the same JSON; and beside
it the same statements run as text, without the ORM's work, for reference. All on one database,
one uvicorn worker each; wrk rounds alternate between them, and /healthz of the app is measured
in the same rounds.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from bench.common import (
    CONNECTIONS,
    ROUNDS,
    SECONDS,
    Seeded,
    alternate,
    lua,
    save,
    server,
    table,
)
from bench.list_query import LIST_QUERY

TARGET = 0.85


def run(env: dict[str, str], seeded: Seeded, scratch: Path) -> dict[str, object]:
    token = seeded.admin_token
    body = json.dumps({"query": LIST_QUERY})
    written = scratch / "serve.log"
    with (
        server(env, stderr=written, command=("api", "serve", "--port")) as app,
        server(env, command=("bench.plain",)) as plain,
    ):
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        response = httpx.post(f"{app.url}/graphql", content=body, headers=headers)
        assert response.status_code == 200, (response.status_code, response.text[:300])
        answered = response.json()
        assert len(answered["data"]["mapiEwsAccounts"]["edges"]) == 50, answered
        for route in ("/page", "/page/raw"):
            # The app's answer also carries its cost budget under `extensions`, as production
            # answers do; the ceilings write the data alone.
            got = httpx.get(f"{plain.url}{route}", headers=headers)
            assert got.status_code == 200, (route, got.status_code, got.text[:300])
            ceiling = got.json()
            assert ceiling["data"] == answered["data"], f"{route} must write the app's page"
        print(f"the app's extensions, which the ceiling does not write: {answered['extensions']}")
        results = alternate(
            {
                "ceiling": (f"{plain.url}/page", lua(scratch, "ceiling", "GET", None, token)),
                "no ORM": (f"{plain.url}/page/raw", lua(scratch, "raw", "GET", None, token)),
                "app": (f"{app.url}/graphql", lua(scratch, "app", "POST", body, token)),
                "healthz": (f"{app.url}/healthz", lua(scratch, "healthz", "GET", None, token)),
            }
        )
    lines = sum(1 for line in written.open() if '"uvicorn.access"' in line)
    ratio = results["app"]["rps"] / results["ceiling"]["rps"]
    without_orm = results["app"]["rps"] / results["no ORM"]["rps"]
    print(
        "\nmapiEwsAccounts(first: 50) by last login, `serve` with production defaults (access"
        " log on) against a plain Starlette route with the same SQL and JSON, no middleware;"
        f" 10,000 accounts; PostgreSQL; 1 worker each; wrk -t1 -c{CONNECTIONS} -d{SECONDS}s;"
        f" median of {ROUNDS} alternating rounds"
    )
    table(results)
    print(
        f"app / ceiling throughput: {ratio:.2f} (target {TARGET} or more; {lines:,} access lines"
        f" written); app / the same statements without the ORM: {without_orm:.2f}"
    )
    assert lines > 0, "serve wrote no access line: it was not running with production defaults"
    data = {
        "results": results,
        "ratio": ratio,
        "without_orm": without_orm,
        "access_lines": lines,
    }
    save("ceiling", data)
    return data
