"""What the browser loads comes from this origin: GraphiQL (development mode only) works without
internet, its page loading every file from api/web/static/graphiql (Chromium opens it with every
other origin blocked, runs a query and a subscription); the dashboard's graphql-ws client is the
npm package's own file."""

import asyncio
import json
from typing import Any

from playwright.async_api import Page, Route, expect

from tests.browser import REPORT, Site
from tests.servers import NODE_CLIENTS, ROOT, metric, node_with

QUERY = '{ domain(name: "example.com") { name mapiEwsUsage { limit } } }'
SUBSCRIPTION = 'subscription { mapiEwsLoginUpdates(domain: "example.com") { username allowed } }'


async def offline(page: Page, site: Site, query: str) -> list[str]:
    """The page, with only this server reachable: the system administrator's token in its
    headers editor (GraphiQL's own storage key), `query` in its query editor."""
    blocked: list[str] = []

    async def gate(route: Route) -> None:
        url = route.request.url
        if url.startswith(site.url) or url.startswith("data:"):
            await route.continue_()
        else:
            blocked.append(url)
            await route.abort()

    await page.route("**/*", gate)
    headers = json.dumps({"Authorization": f"Bearer {site.root}"})
    await page.add_init_script(f"localStorage.setItem('graphiql:headers', {json.dumps(headers)});")
    await page.goto(f"{site.url}/graphql")
    editor = page.locator(".graphiql-query-editor .CodeMirror")
    await editor.wait_for()
    await editor.evaluate("(element, text) => element.CodeMirror.setValue(text)", query)
    await page.wait_for_timeout(500)  # GraphiQL reads an edit after a short debounce
    return blocked


def result(page: Page) -> Any:
    return page.locator(".result-window")


async def test_graphiql_runs_a_query_with_every_other_origin_blocked(
    page: Page, site: Site
) -> None:
    blocked = await offline(page, site, QUERY)

    await page.locator(".graphiql-execute-button").click()

    await expect(result(page)).to_contain_text('"name": "example.com"')
    await expect(result(page)).to_contain_text('"limit": 25')
    assert blocked == []


async def test_graphiql_runs_a_subscription_offline(page: Page, site: Site) -> None:
    blocked = await offline(page, site, SUBSCRIPTION)
    before = await metric(site.url, "open_subscriptions")
    await page.locator(".graphiql-execute-button").click()
    async with asyncio.timeout(10):  # open over the page's WebSocket, as the server counts it
        while await metric(site.url, "open_subscriptions") <= before:
            await asyncio.sleep(0.05)

    await site.call(REPORT, {"e": "admin@example.com"}, token=site.gateway)

    await expect(result(page)).to_contain_text('"username": "admin"')
    assert blocked == []


def test_the_dashboards_graphql_ws_is_the_tested_package_unchanged() -> None:
    """The browser client the dashboard loads is byte for byte the npm package (the version
    tests/js pins and test_one_pipeline drives), so the two cannot drift apart."""
    vendored = ROOT / "api" / "web" / "static" / "vendor" / "graphql-ws"
    node_with("graphql-ws")
    package = NODE_CLIENTS / "node_modules" / "graphql-ws"
    pinned = json.loads((ROOT / "tests" / "js" / "package.json").read_text())
    installed = json.loads((package / "package.json").read_text())

    assert installed["version"] == pinned["dependencies"]["graphql-ws"] == "6.4.2"
    for name in ("client.js", "common-CGW11Fyb.js"):
        assert (vendored / name).read_bytes() == (package / "dist" / name).read_bytes(), name
    assert (vendored / "LICENSE.md").read_bytes() == (package / "LICENSE.md").read_bytes()
