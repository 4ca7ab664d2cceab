"""Log lines off the request path: a served request's access line (JSON Lines in production)
is formatted and written by the logging thread, and still carries the request's id."""

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from tests.servers import running_server


# With workers, each is a process of its own, which must log as the one process does.
@pytest.mark.parametrize("workers", [1, 2])
async def test_the_access_log_line_carries_the_request_id(tmp_path: Path, workers: int) -> None:
    env = {
        "MAPI_EWS_ENV": "production",
        "MAPI_EWS_SECRET_KEY": "x" * 40,
        "MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
    }
    log = tmp_path / "server.log"
    with running_server(env, log, "--workers", str(workers)) as server:
        async with httpx.AsyncClient() as http:
            answer = await http.get(
                f"{server.url}/healthz?from=the-test", headers={"X-Request-ID": "req-42"}
            )
        # This request's line, not the readiness probe's: with workers, each writes its own
        # lines, in no order between them. The writing thread may be a moment behind.
        ours: list[dict[str, str]] = []
        lines: list[dict[str, str]] = []
        for _ in range(200):
            lines = [json.loads(li) for li in log.read_text().splitlines() if li.startswith("{")]
            ours = [
                line
                for line in lines
                if line["logger"] == "uvicorn.access" and "from=the-test" in line["message"]
            ]
            if ours:
                break
            await asyncio.sleep(0.05)

    assert answer.status_code == 200
    assert ours and ours[-1]["request_id"] == "req-42", lines
    assert "/healthz" in ours[-1]["message"]
