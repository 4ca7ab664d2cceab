"""The system administrator's console, in Chromium: the domains table (use, right, idle policy;
searchable, sortable by use, paged), a new domain, a domain's settings in a dialog, and the
monthly report with its CSV."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.async_api import Page, expect

from tests.browser import ENABLE, Site, shoot, sign_in

DOMAIN = "query($n: String!) { domain(name: $n) { maxMapiEwsAccounts mapiEwsAccountManagement mapiEwsIdleReclaimDays } }"


async def as_system_admin(page: Page, site: Site) -> None:
    await sign_in(page, site.url, "sysadmin")
    await expect(page.get_by_role("heading", name="Domains")).to_be_visible()


def domain_rows(page: Page):  # type: ignore[no-untyped-def]
    return page.locator("#domain-rows tr")


async def test_the_domains_table_shows_use_rights_and_policy_searchable_and_sortable(
    page: Page, site: Site
) -> None:
    full = await site.domain(enabled=2, others=0, limit=2)
    half = await site.domain(enabled=1, others=0, limit=2)
    read_only = await site.domain(enabled=0, others=0, managed=False)
    await as_system_admin(page, site)

    search = page.get_by_label("Search domains")
    await search.fill(full)
    await expect(domain_rows(page)).to_have_count(1)
    await expect(domain_rows(page).first).to_contain_text("2 of 2")
    await expect(domain_rows(page).first).to_contain_text("Yes")
    await expect(domain_rows(page).first).to_contain_text("Off")
    await search.fill(read_only)
    await expect(domain_rows(page).first).to_contain_text("0 (no limit)")
    await expect(domain_rows(page).first.locator("td").nth(2)).to_have_text("No")
    await search.fill("")
    await expect(domain_rows(page)).not_to_have_count(1)  # every domain again

    await page.get_by_role("button", name="In use").click()  # fullest first
    await expect(page.locator('#domains th[data-sort="use"]')).to_have_attribute(
        "aria-sort", "descending"
    )
    uses = await domain_rows(page).locator("td:nth-child(2)").all_inner_texts()
    fill = [int(u.split()[0]) / int(u.split()[2]) if " of " in u else -1.0 for u in uses]
    assert fill == sorted(fill, reverse=True), uses
    assert fill[0] == 1.0, uses
    await shoot(page, "50-domains-table")
    await page.get_by_role("button", name="In use").click()  # emptiest first
    await expect(page.locator('#domains th[data-sort="use"]')).to_have_attribute(
        "aria-sort", "ascending"
    )
    assert half != full


async def test_a_system_administrator_creates_a_domain_and_edits_its_settings(
    page: Page, site: Site
) -> None:
    await as_system_admin(page, site)
    name = f"new-{time.monotonic_ns()}.example"

    await page.get_by_role("button", name="New domain…").click()
    dialog = page.get_by_role("dialog", name="New domain")
    await expect(dialog.get_by_label("Domain name")).to_be_focused()
    await dialog.get_by_label("Domain name").fill(name)
    await dialog.get_by_label("MAPI/EWS allowance").fill("15")
    await dialog.get_by_label("Reclaim seats idle for").select_option(label="90 days")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toast")).to_have_text(f"{name} created.")

    await page.get_by_label("Search domains").fill(name)
    await expect(domain_rows(page).first).to_contain_text("0 of 15")
    await expect(domain_rows(page).first).to_contain_text("After 90 days idle")
    await page.get_by_role("button", name=f"Edit {name}").click()
    edit = page.get_by_role("dialog", name=f"Edit {name}")
    await expect(edit.get_by_label("MAPI/EWS allowance")).to_have_value("15")
    await shoot(page, "51-domain-dialog")
    await edit.get_by_label("MAPI/EWS allowance").fill("-3")
    await edit.get_by_role("button", name="Save").click()
    await expect(edit.get_by_role("alert")).to_contain_text("0 or more")
    await edit.get_by_label("MAPI/EWS allowance").fill("")
    await edit.get_by_label("The domain's administrators may enable and disable MAPI/EWS").uncheck()
    await edit.get_by_label("Reclaim seats idle for").select_option(label="Never (no idle policy)")
    await edit.get_by_role("button", name="Save").click()
    await expect(edit).to_be_hidden()

    stored = await site.call(DOMAIN, {"n": name})
    assert stored["domain"] == {
        "maxMapiEwsAccounts": None,
        "mapiEwsAccountManagement": False,
        "mapiEwsIdleReclaimDays": None,
    }
    await expect(domain_rows(page).first).to_contain_text("0 (no limit)")
    await expect(page.get_by_role("combobox", name="Domain")).to_contain_text(name)


async def test_a_system_administrator_removes_a_domain_by_typing_its_name(
    page: Page, site: Site
) -> None:
    name = await site.domain(enabled=2, others=1, limit=5)
    await as_system_admin(page, site)
    await page.get_by_role("combobox", name="Domain").select_option(name)
    await expect(page.locator("#domain-content")).to_be_visible()
    await page.get_by_label("Search domains").fill(name)

    await page.get_by_role("button", name=f"Remove {name}").click()
    dialog = page.get_by_role("dialog", name=f"Remove {name}?")
    remove = dialog.get_by_role("button", name="Remove")
    await expect(dialog.get_by_label("Type the domain's name to confirm")).to_be_focused()
    await expect(remove).to_be_disabled()
    await dialog.get_by_label("Type the domain's name to confirm").fill(name[:-1])
    await expect(remove).to_be_disabled()
    await dialog.get_by_label("Type the domain's name to confirm").fill(name.upper())
    await shoot(page, "52-remove-domain")
    await remove.click()

    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toast")).to_have_text(f"{name} removed with 4 accounts.")
    await expect(domain_rows(page)).to_have_count(0)
    await expect(page.locator("#domain-content")).to_be_hidden()
    await expect(page.get_by_role("combobox", name="Domain")).not_to_contain_text(name)
    assert (await site.call(DOMAIN, {"n": name}))["domain"] is None


async def test_the_monthly_report_lists_every_domain_and_downloads_as_csv(
    page: Page, site: Site, tmp_path: Path
) -> None:
    domain = await site.domain(enabled=0, others=3, limit=4)
    await site.call(ENABLE, {"d": domain, "u": ["other01", "other02", "other03"]})
    await site.call(
        "mutation($d: String!, $u: [String!]!) { disableMapiEws(input: {domain: $d, usernames: $u}) { userErrors { message } } }",
        {"d": domain, "u": ["other03"]},
    )
    await as_system_admin(page, site)

    month = page.get_by_role("textbox", name="Month")
    this_month = await month.input_value()
    row = page.locator("#report-rows tr", has_text=domain)
    await expect(row).to_have_text(f"{domain}324")
    await shoot(page, "52-monthly-report")
    async with page.expect_download() as downloading:
        await page.get_by_role("button", name="Download CSV").click()
    download = await downloading.value
    target = tmp_path / "report.csv"
    await download.save_as(target)

    assert download.suggested_filename == f"mapi-ews-usage-{this_month}.csv"
    lines = target.read_text().splitlines()
    assert lines[0] == "domain,month,peak_enabled,enabled_at_end,limit"
    assert f"{domain},{this_month},3,2,4" in lines
    await month.fill("2020-01")
    await expect(page.locator("#report-empty")).to_be_visible()


async def test_no_view_of_either_administrator_requests_another_origin(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=1, limit=5)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    await as_system_admin(page, site)
    await expect(page.locator("#report-rows tr").first).to_be_visible()
    await page.get_by_label("Search domains").fill(domain)
    await page.get_by_role("button", name=f"Open {domain}").click()
    await expect(page.locator("#rows tr")).to_have_count(2)
    for view in ("Usage", "Login history", "Audit log", "Accounts"):
        await page.get_by_role("tab", name=view).click()
        await expect(page.get_by_role("tab", name=view)).to_have_attribute("aria-selected", "true")
    await page.get_by_role("button", name="Reclaim idle…").click()
    await page.keyboard.press("Escape")
    await page.get_by_role("button", name="New domain…").click()
    await page.keyboard.press("Escape")

    assert len(requested) > 10
    outside = [u for u in requested if not u.startswith((site.url, "data:", "ws://127.0.0.1"))]
    assert outside == []
