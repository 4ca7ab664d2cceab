"""In Chromium: when the server throttles the dashboard (its administrator's budget of query cost
is short), the page says so, waits as long as the server asked, and tries again."""

from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.browser import LOGIN, PASSWORD, _chromium_or_skip, rows, shoot, sign_in, table
from tests.servers import Server, metric, running_server


def spending(times: int) -> str:
    """The usage's four fields, `times` times (at most 30): asks for 4 * times, costs as much."""
    return (
        "{ "
        + " ".join(f"u{i}: mapiEwsUsage {{ enabled limit available }}" for i in range(times))
        + " }"
    )


@pytest.fixture(scope="module")
def limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _chromium_or_skip()
    folder = tmp_path_factory.mktemp("throttled")
    env = {
        "MAPI_EWS_DATABASE_URL": f"sqlite://{folder / 'db.sqlite3'}",
        # A page of the tab asks for some 400: a budget of 2,000 that refills at 250 a second.
        "MAPI_EWS_COST_LIMITS": "DOMAIN_ADMIN=2000/250",
        "MAPI_EWS_MAX_QUERY_COST": "2000",
    }
    with running_server(env, folder / "server.log", "--demo") as server:
        yield server


async def spend_down(url: str, token: str) -> int:
    """Spends the administrator's budget (the page's too: one principal, one budget) until
    less than 50 is left; what is left."""
    headers = {"Authorization": f"Bearer {token}"}
    left = 2000
    async with httpx.AsyncClient(base_url=url, headers=headers) as http:
        for _ in range(60):
            query = spending(max(1, min(30, (left - 20) // 4)))
            answer = await http.post("/graphql", json={"query": query})
            left = answer.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
            if left < 50:
                return left
    raise AssertionError("the budget did not run down")


async def test_a_throttled_page_says_so_waits_and_tries_again(
    page: Page, limited_server: Server
) -> None:
    url = limited_server.url
    await sign_in(page, url, "admin@example.com")
    await expect(page.locator("#live-status")).to_have_text("Live")
    await expect(rows(page)).not_to_have_count(0)
    wanted = (await table(page))[-1][0].split("@")[0]
    async with httpx.AsyncClient() as http:
        login = await http.post(
            f"{url}/graphql",
            json={"query": LOGIN, "variables": {"u": "admin@example.com", "p": PASSWORD}},
        )
    token = login.json()["data"]["login"]["accessToken"]
    notice = page.locator("#throttle-notice")

    await spend_down(url, token)
    await page.locator("#search").fill(wanted)

    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text("limiting how much this dashboard may ask for")
    await expect(notice).to_contain_text("Trying again in")
    await shoot(page, "53-throttled")
    # The budget refills (250 a second): the search goes through and the notice goes away.
    await expect(notice).to_be_hidden(timeout=10_000)
    await expect(rows(page).first).to_contain_text(wanted)
    assert await metric(url, 'throttled_total{role="DOMAIN_ADMIN"}') >= 1
    assert "Traceback" not in limited_server.output()
