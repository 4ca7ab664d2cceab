"""`python -m bench accesslog`: the tab's list with the access log on (production's default: a
JSON line per request, written by the logging thread) against the same with it off, and with
the lines written by the request itself (as before the thread); three servers on one database,
rounds alternating; and the plain /baseline route for reference."""

from __future__ import annotations

import json
from pathlib import Path

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

TARGET = 0.95


def run(env: dict[str, str], seeded: Seeded, scratch: Path) -> dict[str, object]:
    token = seeded.admin_token
    body = json.dumps({"query": LIST_QUERY})
    written = scratch / "access.log"
    inline = scratch / "access-sync.log"
    with (
        server(env) as quiet,
        server({**env, "BENCH_ACCESS_LOG": "1"}, stderr=written) as logged,
        server({**env, "BENCH_ACCESS_LOG": "sync"}, stderr=inline) as synchronous,
    ):
        results = alternate(
            {
                "baseline": (f"{quiet.url}/baseline", lua(scratch, "baseline", "GET", None, token)),
                "log off": (f"{quiet.url}/graphql", lua(scratch, "off", "POST", body, token)),
                "log on": (f"{logged.url}/graphql", lua(scratch, "on", "POST", body, token)),
                "log in request": (
                    f"{synchronous.url}/graphql",
                    lua(scratch, "sync", "POST", body, token),
                ),
            }
        )
    lines = sum(1 for line in written.open() if '"uvicorn.access"' in line)
    ratio = results["log on"]["rps"] / results["log off"]["rps"]
    before = results["log in request"]["rps"] / results["log off"]["rps"]
    print(
        f"\nmapiEwsAccounts(first: 50), access log on (JSON lines to a file) and off; PostgreSQL;"
        f" 1 worker each; wrk -t1 -c{CONNECTIONS} -d{SECONDS}s; median of {ROUNDS} alternating"
        " rounds"
    )
    table(results)
    print(
        f"log on / log off throughput: {ratio:.2f} (target {TARGET} or more; "
        f"{lines:,} access lines written); written by the request itself, as before: {before:.2f}"
    )
    assert lines > 0, "the access log wrote nothing"
    data = {"results": results, "ratio": ratio, "before": before, "access_lines": lines}
    save("accesslog", data)
    return data
