"""/metrics through prometheus_client: with several workers, one scrape counts every worker."""

from pathlib import Path

import httpx

from tests.servers import running_server

REQUESTS = 40
HEALTHZ = 'mapi_ews_http_requests_total{method="GET",path="/healthz",status="200"}'


def counted(text: str, sample: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(sample + " ")]
    assert lines, f"no {sample} in:\n{text}"
    return float(lines[0].split()[-1])


def test_one_scrape_of_any_worker_counts_the_requests_of_every_worker(tmp_path: Path) -> None:
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}"}
    with running_server(env, tmp_path / "server.log", "--workers", "2") as server:
        before = counted(httpx.get(f"{server.url}/metrics").text, HEALTHZ)
        for _ in range(REQUESTS):  # a new connection each: the kernel hands them to either worker
            assert httpx.get(f"{server.url}/healthz").status_code == 200
        scrapes = [httpx.get(f"{server.url}/metrics").text for _ in range(6)]

    assert [counted(text, HEALTHZ) - before for text in scrapes] == [REQUESTS] * 6
    # Every error code starts at zero, so an alert's rate sees the series from the start.
    assert counted(scrapes[0], 'mapi_ews_graphql_errors_total{code="INTERNAL_SERVER_ERROR"}') == 0
