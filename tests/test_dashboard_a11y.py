"""Accessibility of every view of the dashboard, checked by axe-core (tests/js, pinned) in
Chromium at a desktop's 1280x800 and a phone's 390x844: no serious or critical violation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import Site, page_of_size, shoot, sign_in, signed_in
from tests.servers import NODE_CLIENTS, node_with

SIZES = [(1280, 800), (390, 844)]
AXE = NODE_CLIENTS / "node_modules" / "axe-core" / "axe.min.js"


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def sized(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    node_with("axe-core")
    # The page's Content-Security-Policy admits only its own scripts: axe-core is added
    # by the test, so the context lets it in (the page's own behaviour is unchanged).
    async with page_of_size(browser, *request.param, bypass_csp=True) as page:
        yield page


async def _serious(page: Page) -> list[str]:
    """axe-core's serious and critical violations on the page as it stands."""
    if not await page.evaluate("() => typeof window.axe !== 'undefined'"):
        await page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = await page.evaluate(
        "() => axe.run(document, { resultTypes: ['violations'] })"
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in result["violations"]
        if v["impact"] in ("serious", "critical")
    ]


async def test_every_view_of_the_tab_passes_axe(sized: Page, site: Site) -> None:
    page = sized
    domain = await site.domain(enabled=3, others=2, limit=4)
    await signed_in(page, site, domain)
    size = page.viewport_size
    assert size is not None
    found: dict[str, list[str]] = {}

    found["accounts"] = await _serious(page)
    for tab in ("Usage", "Login history", "Audit log", "Client access"):
        await page.get_by_role("tab", name=tab).click()
        await expect(page.get_by_role("tab", name=tab)).to_have_attribute("aria-selected", "true")
        found[tab] = await _serious(page)
    await page.get_by_role("tab", name="Accounts").click()
    await page.get_by_role("button", name="Enable…").click()
    await expect(page.get_by_role("dialog", name="Enable MAPI/EWS")).to_be_visible()
    found["the Enable dialog"] = await _serious(page)
    await shoot(page, f"80-axe-{size['width']}x{size['height']}-enable")

    assert {view: problems for view, problems in found.items() if problems} == {}


async def test_the_console_passes_axe(sized: Page, site: Site) -> None:
    page = sized
    await site.domain(enabled=1, others=0, limit=3)
    await sign_in(page, site.url, "sysadmin")
    await expect(page.get_by_role("heading", name="Domains")).to_be_visible()
    found = {"console": await _serious(page)}
    await page.get_by_role("button", name="New domain…").click()
    found["the domain dialog"] = await _serious(page)
    size = page.viewport_size
    assert size is not None
    await shoot(page, f"81-axe-{size['width']}x{size['height']}-console")

    assert {view: problems for view, problems in found.items() if problems} == {}


async def test_the_sign_in_page_passes_axe(sized: Page, site: Site) -> None:
    await sized.goto(f"{site.url}/")
    await expect(sized.get_by_role("button", name="Sign in")).to_be_visible()

    assert await _serious(sized) == []
