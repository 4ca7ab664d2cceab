"""What the browser tests share: a real `serve` process with the demo, headless Chromium (Debian's
package) driven by Playwright, a page per test, and helpers to read the MAPI/EWS tab.

Screenshots go to test-output/dashboard/ (MAPI_EWS_TEST_OUTPUT moves it). Without Chromium the
tests skip, naming the package; .ci/run sets MAPI_EWS_REQUIRE_BROWSER=1, which makes them fail
instead. The fixtures are a plugin (tests/conftest.py): each test module that uses them gets a
server of its own."""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.servers import ROOT, Server, graphql_data, running_server

CHROMIUM = Path(os.environ.get("MAPI_EWS_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOTS = Path(os.environ.get("MAPI_EWS_TEST_OUTPUT", ROOT / "test-output")) / "dashboard"
PASSWORD = "demo-password"
DASH = "\u2013"  # the page writes ranges as "1-10 of 12" with an en dash

LOGIN = "mutation($u: String!, $p: String!) { login(input: {username: $u, password: $p}) { accessToken refreshToken } }"
CREATE_DOMAIN = "mutation($n: String!, $max: Int, $m: Boolean!) { createDomain(input: {name: $n, maxMapiEwsAccounts: $max, mapiEwsAccountManagement: $m}) { userErrors { message } } }"
CREATE_ACCOUNT = "mutation($e: String!, $n: String, $p: String!, $a: Boolean!) { createAccount(input: {emailAddress: $e, name: $n, password: $p, isDomainAdmin: $a}) { userErrors { message } } }"
ENABLE = "mutation($d: String!, $u: [String!]!) { enableMapiEws(input: {domain: $d, usernames: $u}) { userErrors { message } } }"
GATEWAY = 'mutation { createGatewayToken(input: {name: "browser-tests"}) { token } }'
REPORT = "mutation($e: String!) { recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI}) { allowed } }"
REFRESH = "mutation($t: String!) { refreshAccessToken(input: {refreshToken: $t}) { userErrors { code } } }"
LISTED = "query($d: String!, $o: AccountOrder, $n: Int) { mapiEwsAccounts(domain: $d, orderBy: $o, first: $n) { totalCount edges { node { username name lastLoginProtocol } } } }"
CANDIDATES = "{ accounts(mapiEwsEnabled: false, first: 1) { edges { node { username } } } }"
ENABLE_OWN = (
    "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)

_domains = itertools.count(1)


def _chromium_or_skip() -> None:
    if CHROMIUM.exists():
        return
    message = (
        f"Chromium is not at {CHROMIUM}: install Debian's chromium package "
        "(apt-get install chromium), or set MAPI_EWS_CHROMIUM"
    )
    if os.environ.get("MAPI_EWS_REQUIRE_BROWSER"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class Site:
    """The server, signed in as its system administrator, with a gateway token."""

    server: Server
    root: str
    gateway: str
    database: Path

    @property
    def url(self) -> str:
        return self.server.url

    async def call(self, query: str, variables: dict[str, Any] | None = None, **kw: Any) -> Any:
        return await graphql_data(self.url, query, variables, token=kw.get("token", self.root))

    async def domain(
        self, *, enabled: int, others: int = 3, limit: int | None = None, managed: bool = True
    ) -> str:
        """A new domain with an administrator `admin`, `enabled` accounts with MAPI/EWS
        (user01, user02, ...) and `others` without (other01, ...)."""
        name = f"d{next(_domains)}-{time.monotonic_ns()}.example"
        await self.call(CREATE_DOMAIN, {"n": name, "max": limit, "m": managed})
        await self._account(f"admin@{name}", "Domain Administrator", admin=True)
        users = [f"user{i:02}" for i in range(1, enabled + 1)]
        for index, user in enumerate(users):
            await self._account(f"{user}@{name}", f"User {chr(ord('A') + index)} Person")
        for index in range(1, others + 1):
            await self._account(f"other{index:02}@{name}", f"Other {index}")
        if users:
            data = await self.call(ENABLE, {"d": name, "u": users})
            assert data["enableMapiEws"]["userErrors"] == []
        return name

    async def _account(self, address: str, name: str, *, admin: bool = False) -> None:
        variables = {"e": address, "n": name, "p": PASSWORD, "a": admin}
        data = await self.call(CREATE_ACCOUNT, variables)
        assert data["createAccount"]["userErrors"] == []

    async def listed(self, domain: str, order: dict[str, str] | None = None) -> list[str]:
        data = await self.call(LISTED, {"d": domain, "o": order, "n": 100})
        return [edge["node"]["username"] for edge in data["mapiEwsAccounts"]["edges"]]


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _chromium_or_skip()
    folder = tmp_path_factory.mktemp("dashboard")
    env = {
        "MAPI_EWS_DATABASE_URL": f"sqlite://{folder / 'db.sqlite3'}",
        # Open connections re-check their principal every second (60 by default).
        "MAPI_EWS_CONNECTION_RECHECK_SECONDS": "1",
    }
    with running_server(env, folder / "server.log", "--demo") as server:
        yield server


@pytest.fixture(scope="module")
async def site(dashboard_server: Server) -> Site:
    server = dashboard_server
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{server.url}/graphql",
            json={"query": LOGIN, "variables": {"u": "sysadmin", "p": PASSWORD}},
        )
    root = response.json()["data"]["login"]["accessToken"]
    gateway = (await graphql_data(server.url, GATEWAY, token=root))["createGatewayToken"]["token"]
    return Site(server, root, gateway, server.log.parent / "db.sqlite3")


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    _chromium_or_skip()
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox"]
        )
        yield chromium
        await chromium.close()


@asynccontextmanager
async def page_of_size(
    browser: Browser, width: int, height: int, *, bypass_csp: bool = False
) -> AsyncIterator[Page]:
    """A page in a browser context of its own, `width` x `height` CSS px; no uncaught script
    error may happen in it."""
    context = await browser.new_context(
        viewport={"width": width, "height": height}, bypass_csp=bypass_csp
    )
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    yield page
    await context.close()
    assert problems == [], problems


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    async with page_of_size(browser, 1200, 900) as opened:
        yield opened


async def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


async def sign_in(page: Page, url: str, username: str, password: str = PASSWORD) -> None:
    await page.goto(f"{url}/")
    form = page.locator("#sign-in-form")
    await form.get_by_label("Username").fill(username)
    await form.get_by_label("Password").fill(password)
    await form.get_by_role("button", name="Sign in").click()


async def signed_in(page: Page, site: Site, domain: str) -> None:
    await sign_in(page, site.url, f"admin@{domain}")
    await expect(page.locator("#live-status")).to_have_text("Live")


async def stored(page: Page, name: str) -> Any:
    """A field of the session the page keeps in sessionStorage."""
    return await page.evaluate(
        f'JSON.parse(sessionStorage.getItem("mapi-ews-admin.session")).{name}'
    )


async def spoil_access_token(page: Page) -> None:
    """Replaces the page's access token with one the server refuses, as an expired one is."""
    await page.evaluate(
        """() => {
            const key = "mapi-ews-admin.session";
            const session = JSON.parse(sessionStorage.getItem(key));
            session.accessToken = "expired.or.forged";
            sessionStorage.setItem(key, JSON.stringify(session));
        }"""
    )


def rows(page: Page) -> Any:
    return page.locator("#rows tr")


async def table(page: Page) -> list[list[str]]:
    """The table's cells, row by row: account, name, last login, connected."""
    cells: list[list[str]] = await page.locator("#rows tr").evaluate_all(
        "trs => trs.map(tr => [...tr.querySelectorAll('td:not(.select):not(.row-actions)')]"
        ".map(td => td.innerText.replace(/\\s+/g, ' ').trim()))"
    )
    return cells
