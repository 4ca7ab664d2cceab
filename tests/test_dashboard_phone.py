"""The dashboard on a phone (issue 31, item 2), in Chromium at 320 and 390 CSS px wide (WCAG 2.2
1.4.10, reflow): the page never scrolls sideways, every action stays on the screen, wide tables
scroll inside their own box, and dialogs fit."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import Site, page_of_size, rows, shoot, sign_in, signed_in

SIZES = [(320, 640), (390, 844)]


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def phone(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    async with page_of_size(browser, *request.param) as page:
        yield page


async def _fits(page: Page, what: str) -> None:
    """Nothing wider than the screen: the page does not scroll sideways."""
    width, scrolled, wide = await page.evaluate(
        """() => {
            const name = (e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "");
            const over = [...document.querySelectorAll("body *")].filter((e) => {
                const box = e.getBoundingClientRect();
                return box.width && box.right > window.innerWidth + 0.5 && !e.closest("table");
            });
            return [window.innerWidth, document.documentElement.scrollWidth, over.map(name)];
        }"""
    )
    assert scrolled <= width, f"{what}: {scrolled} px wide on a {width} px screen: {wide[-6:]}"


async def _on_screen(page: Page, locator: object, what: str) -> None:
    box = await locator.bounding_box()  # type: ignore[attr-defined]
    width = await page.evaluate("() => window.innerWidth")
    assert box is not None, what
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{what} is cut off: {box}"


async def test_the_tab_reflows_on_a_phone(phone: Page, site: Site) -> None:
    page = phone
    domain = await site.domain(enabled=3, others=2, limit=10)
    await signed_in(page, site, domain)
    size = page.viewport_size
    assert size is not None
    label = f"{size['width']}x{size['height']}"

    await expect(rows(page)).to_have_count(3)
    await _fits(page, "accounts")
    await rows(page).first.get_by_role("checkbox").check()
    for name in ("Enable…", "Disable (1)", "Sign out"):
        await _on_screen(page, page.get_by_role("button", name=name), name)
    # The table scrolls in its own box: its last column can be brought into view.
    wrap = page.locator("#accounts").locator("xpath=..")
    await wrap.evaluate("box => box.scrollLeft = box.scrollWidth")
    await _on_screen(page, rows(page).first.locator("td").last, "the row's actions")
    await shoot(page, f"70-phone-{label}-accounts")

    await page.get_by_role("button", name="Enable…").click()
    dialog = page.get_by_role("dialog", name="Enable MAPI/EWS")
    await _on_screen(page, dialog, "the Enable dialog")
    await _on_screen(page, dialog.get_by_role("button", name="Save"), "the dialog's Save")
    await shoot(page, f"71-phone-{label}-enable")
    await dialog.get_by_role("button", name="Cancel").click()

    for tab in ("Login history", "Audit log"):
        await page.get_by_role("tab", name=tab).click()
        await _fits(page, tab)
    await shoot(page, f"72-phone-{label}-audit")


async def test_the_console_reflows_on_a_phone(phone: Page, site: Site) -> None:
    page = phone
    await site.domain(enabled=1, others=0, limit=3)
    await sign_in(page, site.url, "sysadmin")
    await expect(page.get_by_role("heading", name="Domains")).to_be_visible()
    size = page.viewport_size
    assert size is not None

    await _fits(page, "the console")
    await _on_screen(page, page.get_by_role("button", name="New domain…"), "New domain…")
    await shoot(page, f"73-phone-{size['width']}x{size['height']}-console")
