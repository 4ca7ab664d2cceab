"""The dashboard current and honest (issue 31), in Chromium: a new allowance reaches an open tab
live, a limit below the accounts in use says so (in the domain's dialog, its toast and the
domain's banner), an enable or disable that changes nothing says that, and a month that has not
begun has no figures, in the console and in the CSV."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser import REPORT, Site, page_of_size, rows, sign_in, signed_in
from tests.browser import shoot as shoot_as

SIZES = [(1280, 800), (390, 844)]


@pytest.fixture(params=SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    """Each test at a desktop's size and at a phone's."""
    async with page_of_size(browser, *request.param) as opened:
        yield opened


@asynccontextmanager
async def other_person(page: Page) -> AsyncIterator[Page]:
    """A second page, of the same size, in a browser context of its own: another person."""
    browser = page.context.browser
    size = page.viewport_size
    assert browser is not None and size is not None
    async with page_of_size(browser, size["width"], size["height"]) as other:
        yield other


async def shoot(page: Page, name: str) -> None:
    size = page.viewport_size or {"width": 0, "height": 0}
    await shoot_as(page, f"{name}-{size['width']}x{size['height']}")


UPDATE_LIMIT = (
    "mutation($n: String!, $max: Int) { updateDomain(input: {name: $n, "
    "maxMapiEwsAccounts: $max}) { userErrors { message } } }"
)


async def test_a_new_allowance_reaches_the_open_tab_and_over_the_limit_is_said(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=3, others=1, limit=5)
    await signed_in(page, site, domain)
    await expect(page.locator("#usage")).to_have_text("3 of 5 MAPI/EWS accounts in use")

    # Another person, a system administrator in a page of their own, lowers the limit.
    async with other_person(page) as root:
        await sign_in(root, site.url, "sysadmin")
        await root.get_by_label("Search domains").fill(domain)
        await root.get_by_role("button", name=f"Edit {domain}").click()
        edit = root.get_by_role("dialog", name=f"Edit {domain}")
        await edit.get_by_label("MAPI/EWS allowance").fill("1")
        await edit.get_by_role("button", name="Save").click()
        await expect(edit).to_be_hidden()

    await expect(page.locator("#usage")).to_have_text(
        "3 of 1 MAPI/EWS accounts in use: 2 over the allowance"
    )
    await expect(page.locator("#usage-warning")).to_contain_text(
        "2 accounts are over the allowance of 1"
    )
    await expect(page.get_by_role("button", name="Enable…")).to_be_disabled()
    await shoot(page, "60-over-the-allowance")

    await site.call(UPDATE_LIMIT, {"n": domain, "max": 10})
    await expect(page.locator("#usage")).to_have_text("3 of 10 MAPI/EWS accounts in use")
    await expect(page.locator("#usage-warning")).to_be_hidden()
    await expect(page.get_by_role("button", name="Enable…")).to_be_enabled()


async def test_an_enable_or_disable_that_changes_nothing_says_so(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=2, others=1, limit=5)
    await signed_in(page, site, domain)

    await page.get_by_role("button", name="Enable…").click()
    dialog = page.get_by_role("dialog", name="Enable MAPI/EWS")
    await dialog.get_by_role("combobox", name="Username").fill("user01")
    await dialog.get_by_role("button", name="Save").click()
    await expect(page.locator("#toast")).to_have_text(
        "user01 already has MAPI/EWS with these protocols: nothing changed."
    )
    await expect(page.locator("#usage")).to_have_text("2 of 5 MAPI/EWS accounts in use")

    await rows(page).filter(has_text="user02").get_by_role("checkbox").check()
    await page.get_by_role("button", name="Disable (1)").click()
    await (
        page.get_by_role("dialog", name="Disable MAPI/EWS")
        .get_by_role("button", name="Disable")
        .click()
    )
    # No session was open: nothing about sessions.
    await expect(page.locator("#toast")).to_have_text("MAPI/EWS disabled for user02.")


async def test_a_limit_below_the_accounts_in_use_is_said_before_and_after_saving(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=3, others=0, limit=5)
    await sign_in(page, site.url, "sysadmin")
    await page.get_by_label("Search domains").fill(domain)
    await page.get_by_role("button", name=f"Edit {domain}").click()
    dialog = page.get_by_role("dialog", name=f"Edit {domain}")
    warning = dialog.locator("#domain-form-limit-warning")
    await expect(warning).to_be_hidden()

    await dialog.get_by_label("MAPI/EWS allowance").fill("1")
    await expect(warning).to_have_text(
        "3 accounts have MAPI/EWS now: a limit of 1 leaves 2 over the allowance. Nobody loses "
        "MAPI/EWS, but no more can get it until 3 are disabled."
    )
    await shoot(page, "61-limit-below-use")
    await dialog.get_by_role("button", name="Save").click()

    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toast")).to_have_text(
        f"{domain} saved: 2 accounts are over the new allowance."
    )


async def test_a_month_that_has_not_begun_has_no_figures(page: Page, site: Site) -> None:
    await site.domain(enabled=1, others=0, limit=5)
    await sign_in(page, site.url, "sysadmin")
    month = page.get_by_role("textbox", name="Month")
    await expect(page.locator("#report-rows tr").first).to_be_visible()
    this_month = await month.input_value()
    assert await month.get_attribute("max") == this_month

    await month.fill("2030-01")
    await month.dispatch_event("change")

    await expect(page.locator("#report-error")).to_contain_text("2030-01 has not begun")
    await expect(page.locator("#report-rows tr")).to_have_count(0)
    async with httpx.AsyncClient() as http:
        csv = await http.get(
            f"{site.url}/reports/mapi-ews-usage.csv",
            params={"month": "2030-01"},
            headers={"Authorization": f"Bearer {site.root}"},
        )
        current = await http.get(
            f"{site.url}/reports/mapi-ews-usage.csv",
            params={"month": this_month},
            headers={"Authorization": f"Bearer {site.root}"},
        )
    assert csv.status_code == 400
    assert "has not begun" in csv.json()["error"]
    assert current.status_code == 200


async def test_the_history_filters_by_part_of_a_username_or_a_name(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=2, others=0, limit=5)
    for user in ("user01", "user01", "user02"):
        await site.call(REPORT, {"e": f"{user}@{domain}"}, token=site.gateway)
    await signed_in(page, site, domain)
    await page.get_by_role("tab", name="Login history").click()
    history = page.locator("#history-rows tr")
    await expect(history).to_have_count(2)  # user01's two logins are one event with a count

    await page.locator("#history-account").fill("user0")
    await expect(history).to_have_count(2)
    await page.locator("#history-account").fill("B Pers")  # user02 is "User B Person"
    await expect(history).to_have_count(1)
    await expect(history.first).to_contain_text("user02")
    await page.locator("#history-account").fill("nobody")
    await expect(history).to_have_count(0)
    await expect(page.locator("#history-empty")).to_have_text("No login matches “nobody”.")


SESSION_REPORT = """
mutation($e: String!, $s: String, $c: String) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI, sessionId: $s, clientName: $c}) {
    allowed
  }
}
"""


async def test_live_activity_says_a_login_once_and_filters_by_kind(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=2, others=1, limit=5)
    await signed_in(page, site, domain)
    activity = page.locator("#activity li")

    await site.call(
        SESSION_REPORT,
        {"e": f"user01@{domain}", "s": f"{domain}-1", "c": "Outlook"},
        token=site.gateway,
    )
    await expect(activity.first).to_have_text(
        re.compile("user01 connected over MAPI \\(Outlook\\)")
    )
    await expect(activity).to_have_count(1)  # the login and the session it opened: one line
    await site.call(SESSION_REPORT, {"e": f"other01@{domain}"}, token=site.gateway)
    await expect(activity).to_have_count(2)

    await page.get_by_label("Filter").select_option(label="Refused logins")
    await expect(activity.filter(visible=True)).to_have_count(1)
    await expect(activity.filter(visible=True)).to_contain_text("other01 was refused")
    await page.get_by_label("Filter").select_option(label="Everything (the last 20)")
    await expect(activity.filter(visible=True)).to_have_count(2)


async def test_ticking_a_row_moves_nothing_and_a_dialog_takes_the_last_toast_away(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=1, limit=5)
    await signed_in(page, site, domain)
    table = page.locator("#accounts")
    before = await table.bounding_box()

    await rows(page).first.get_by_role("checkbox").check()
    await expect(page.get_by_role("button", name="Disable (1)")).to_be_enabled()

    assert await table.bounding_box() == before
    await page.get_by_role("button", name="Disconnect (1)").click()
    await page.get_by_role("dialog").get_by_role("button", name="Disconnect").click()
    await expect(page.locator("#toast")).to_contain_text("had no open MAPI/EWS session")
    await page.get_by_role("button", name="Enable…").click()
    await expect(page.locator("#toast")).to_be_hidden()


async def test_a_read_only_administrator_may_export_what_the_table_lists(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=1, others=0, limit=5, managed=False)
    await signed_in(page, site, domain)

    await expect(page.get_by_role("button", name="Export CSV")).to_be_visible()
    await expect(page.get_by_role("button", name="Enable…")).to_be_hidden()


CREATE = (
    "mutation($n: String!) { createDomain(input: {name: $n, maxMapiEwsAccounts: 5, "
    "mapiEwsAccountManagement: true}) { userErrors { message } } }"
)
ADMIN = (
    'mutation($e: String!) { createAccount(input: {emailAddress: $e, password: "demo-password", '
    "isDomainAdmin: true}) { userErrors { message } } }"
)
ACCOUNT = (
    'mutation($e: String!) { createAccount(input: {emailAddress: $e, password: "demo-password"}) '
    "{ userErrors { message } } }"
)


async def test_the_console_follows_domains_and_this_months_report_live(
    page: Page, site: Site
) -> None:
    await sign_in(page, site.url, "sysadmin")
    await expect(page.get_by_role("heading", name="Domains")).to_be_visible()
    name = f"a-live-{time.monotonic_ns()}.example"  # sorts first in the report
    await page.get_by_label("Search domains").fill(name)
    await expect(page.locator("#domain-rows tr")).to_have_count(0)

    # Another system administrator creates the domain and an account (through the API); the
    # domain's administrator, in a page of their own, gives the account a seat.
    await site.call(CREATE, {"n": name})
    row = page.locator("#domain-rows tr", has_text=name)
    await expect(row).to_contain_text("0 of 5")
    await site.call(ACCOUNT, {"e": f"ada@{name}"})
    await site.call(ADMIN, {"e": f"admin@{name}"})
    async with other_person(page) as admin:
        await sign_in(admin, site.url, f"admin@{name}")
        await admin.get_by_role("button", name="Enable…").click()
        dialog = admin.get_by_role("dialog", name="Enable MAPI/EWS")
        await dialog.get_by_role("combobox", name="Username").fill("ada")
        await dialog.get_by_role("button", name="Save").click()
        await expect(dialog).to_be_hidden()

    await expect(row).to_contain_text("1 of 5")
    await expect(page.locator("#report-rows tr", has_text=name)).to_have_text(f"{name}115")
    await site.call(UPDATE_LIMIT, {"n": name, "max": 9})
    await expect(row).to_contain_text("1 of 9")


async def test_the_audit_log_filters_by_action_and_account(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=2, others=0, limit=5)
    await signed_in(page, site, domain)
    await page.get_by_role("tab", name="Audit log").click()
    entries = page.locator("#audit-rows tr")
    # The domain, three accounts created and two enabled.
    await expect(entries).to_have_count(6)

    await page.get_by_label("Account or actor").fill("user02")
    await expect(entries).to_have_count(2)  # created, enabled
    await page.get_by_label("Action").select_option(label="MAPI/EWS enabled")
    await expect(entries).to_have_count(1)
    await expect(entries.first).to_contain_text("user02")
    await page.get_by_label("Action").select_option(label="MAPI/EWS disabled")
    await expect(entries).to_have_count(0)
    await expect(page.locator("#audit-empty")).to_have_text("No change matches this filter.")


async def test_several_accounts_are_enabled_at_once_typed_pasted_or_picked(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=1, others=4, limit=10)
    await signed_in(page, site, domain)

    await page.get_by_role("button", name="Enable…").click()
    dialog = page.get_by_role("dialog", name="Enable MAPI/EWS")
    field = dialog.get_by_role("combobox", name="Username")
    await field.fill("other01, other02 user01, other0")
    await dialog.get_by_role("option", name="other03").click()  # picks the name being typed
    await expect(field).to_have_value("other01, other02, user01, other03")
    await dialog.get_by_role("button", name="Save").click()

    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toast")).to_have_text(
        "MAPI/EWS enabled for 3 accounts (1 had it already)."
    )
    await expect(page.locator("#usage")).to_have_text("4 of 10 MAPI/EWS accounts in use")


async def test_a_new_domains_usage_chart_shows_its_own_days(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=2, others=0, limit=5)
    await signed_in(page, site, domain)

    await page.get_by_role("tab", name="Usage").click()

    labels = page.locator("#usage-chart text.axis")
    await expect(labels).to_have_count(5)  # 0, the middle, the top; the first and last day
    today = datetime.now(UTC).date()
    # Not 89 empty days before today's: two weeks, ending today.
    await expect(labels.nth(3)).to_have_text((today - timedelta(days=13)).isoformat())
    await expect(labels.nth(4)).to_have_text(today.isoformat())
    await shoot(page, "62-new-domain-usage")


async def test_live_activity_is_in_view_beside_the_table_on_a_wide_screen(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=3, others=0, limit=5)
    await signed_in(page, site, domain)
    activity = await page.locator("section.activity").bounding_box()
    table = await page.locator("#accounts").bounding_box()
    assert activity is not None and table is not None
    size = page.viewport_size
    assert size is not None

    await shoot(page, "63-live-activity-placed")
    if size["width"] >= 1280:  # beside the table, at its height
        assert activity["x"] >= table["x"] + table["width"]
        assert activity["y"] < table["y"] + table["height"]
    else:  # a phone: below it, the page's width
        assert activity["y"] >= table["y"] + table["height"]


async def test_the_sessions_tooltip_stays_on_the_screen_near_its_bottom(
    page: Page, site: Site
) -> None:
    width = (page.viewport_size or {"width": 1280})["width"]
    await page.set_viewport_size({"width": width, "height": 480})  # the rows below the fold
    domain = await site.domain(enabled=3, others=0, limit=5)
    await signed_in(page, site, domain)
    await site.call(
        SESSION_REPORT,
        {"e": f"user03@{domain}", "s": f"{domain}-tip", "c": "Outlook"},
        token=site.gateway,
    )
    badge = rows(page).filter(has_text="user03").locator("td.connected").get_by_role("button")
    await expect(badge).to_have_text("1 session")
    # Scroll until the badge is a few pixels above the screen's bottom edge.
    await badge.evaluate(
        "b => window.scrollBy(0, b.getBoundingClientRect().bottom - window.innerHeight + 8)"
    )

    near = await badge.bounding_box()
    assert near is not None and near["y"] + near["height"] > 480 - 40  # at the bottom edge

    await badge.hover()

    tip = page.get_by_role("tooltip")
    await expect(tip).to_contain_text("user03: 1 open")
    box = await tip.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], box
