"""The domain administrator's console around the tab, in Chromium: the allowance warnings, the
views as keyboard tabs, the 90-day chart, the login history (the domain's and one account's),
the audit log, and Export CSV of what the table lists."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from tests.browser import ENABLE, Site, rows, shoot, signed_in

REPORT = "mutation($e: String!, $c: String, $ip: String) { recordProtocolLogin(input: {emailAddress: $e, protocol: EWS, clientName: $c, clientAddress: $ip}) { allowed } }"
CREATE = "mutation($e: String!, $n: String, $p: String!) { createAccount(input: {emailAddress: $e, name: $n, password: $p}) { userErrors { message } } }"


async def test_the_usage_line_warns_at_90_percent(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=9, others=1, limit=10)
    await signed_in(page, site, domain)

    await expect(page.locator("#usage-warning")).to_have_text(
        "Nearly used up: 1 of 10 MAPI/EWS seats left."
    )
    await expect(page.get_by_role("button", name="Enable…")).to_be_enabled()


async def test_the_views_are_tabs_the_keyboard_moves_between(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=3, others=1, limit=5)
    await signed_in(page, site, domain)
    accounts = page.get_by_role("tab", name="Accounts")
    await expect(accounts).to_have_attribute("aria-selected", "true")

    await accounts.focus()
    await page.keyboard.press("ArrowRight")

    usage = page.get_by_role("tab", name="Usage")
    await expect(usage).to_be_focused()
    await expect(usage).to_have_attribute("aria-selected", "true")
    await expect(page.get_by_role("tabpanel")).to_have_count(1)
    await expect(page.locator("#usage-chart-summary")).to_contain_text(
        "Today: 3 in use of 5 allowed."
    )
    await expect(page.locator("#usage-chart path.peak")).to_have_count(1)
    await expect(page.locator("#usage-chart path.limit")).to_have_count(1)
    await shoot(page, "40-usage-chart")
    await page.keyboard.press("End")
    await expect(page.get_by_role("tab", name="Client access")).to_have_attribute(
        "aria-selected", "true"
    )
    await page.keyboard.press("Home")
    await expect(rows(page)).to_have_count(3)


async def test_the_login_history_shows_clients_and_one_accounts_from_its_row(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=1)
    for address, client in (
        (f"user01@{domain}", "Apple Mail 16.0"),
        (f"user02@{domain}", "eM Client 10.1"),
        (f"user02@{domain}", "eM Client 10.1"),  # the same login again: counted on its row
        (f"other01@{domain}", "Microsoft Outlook 16.0"),
    ):
        await site.call(
            REPORT, {"e": address, "c": client, "ip": "203.0.113.9"}, token=site.gateway
        )
    await signed_in(page, site, domain)

    await page.get_by_role("tab", name="Login history").click()
    history = page.locator("#history-rows tr")
    await expect(history).to_have_count(3)
    await expect(history.first).to_contain_text("other01")
    await expect(history.first).to_contain_text("Microsoft Outlook 16.0")
    await expect(history.first).to_contain_text("Refused: MAPI/EWS is off")
    await expect(history.nth(1)).to_contain_text("eM Client 10.1")
    await expect(history.nth(1)).to_contain_text("203.0.113.9")
    await expect(history.nth(1).locator("td.logins")).to_have_text("2")
    await expect(history.first.locator("td.logins")).to_have_text("1")
    await shoot(page, "41-login-history")

    await page.get_by_role("tab", name="Accounts").click()
    await page.get_by_role("button", name=f"Login history of user01@{domain}").click()
    await expect(page.get_by_role("tab", name="Login history")).to_have_attribute(
        "aria-selected", "true"
    )
    await expect(page.get_by_label("Account", exact=True)).to_have_value("user01")
    await expect(history).to_have_count(1)
    await expect(history.first).to_contain_text("Apple Mail 16.0")


async def test_the_audit_log_pages_through_every_change(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=0, others=30)
    await site.call(ENABLE, {"d": domain, "u": [f"other{i:02}" for i in range(1, 28)]})
    await signed_in(page, site, domain)

    await page.get_by_role("tab", name="Audit log").click()
    entries = page.locator("#audit-rows tr")
    await expect(entries).to_have_count(25)
    await expect(entries.first).to_contain_text("MAPI/EWS enabled")
    await expect(entries.first).to_contain_text("sysadmin")
    await shoot(page, "42-audit-log")
    await page.get_by_role("button", name="Older").click()
    await expect(page.locator("#audit-range")).to_have_text("Page 2")
    older = await entries.count()
    await page.get_by_role("button", name="Newer").click()
    await expect(entries).to_have_count(25)

    # 27 enables, 31 accounts created and the domain: 59 entries, 25 + 25 + 9.
    assert older == 25


async def test_export_csv_downloads_every_page_of_what_the_table_lists(
    page: Page, site: Site, tmp_path: Path
) -> None:
    domain = await site.domain(enabled=0, others=0)
    formula = "=cmd|' /C calc'!A0"  # what a spreadsheet would run, if written as it is
    await site.call(CREATE, {"e": f"tricky@{domain}", "n": formula, "p": "demo-password"})
    await site.call(ENABLE, {"d": domain, "u": ["tricky"]})
    await signed_in(page, site, domain)
    await expect(rows(page)).to_have_count(1)

    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Export CSV").click()
    download = await downloading.value
    target = tmp_path / download.suggested_filename
    await download.save_as(target)

    assert download.suggested_filename == f"mapi-ews-{domain}.csv"
    assert target.read_text().splitlines() == [
        "account,email_address,name,last_login,last_login_protocol,open_sessions",
        f"tricky,tricky@{domain},'=cmd|' /C calc'!A0,,,0",
    ]
    await expect(page.locator("#toast")).to_have_text("Exported 1 account.")
