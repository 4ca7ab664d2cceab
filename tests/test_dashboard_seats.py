"""Idle seats in the MAPI/EWS tab, in Chromium: the "Idle for N days" filter, and "Reclaim
idle…" showing the dry run's accounts before it takes them back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from playwright.async_api import Page, expect

from tests.browser import Site, rows, shoot, signed_in, table

OLD_LOGIN = "mutation($e: String!, $at: DateTime!) { recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI, occurredAt: $at}) { allowed } }"


async def idle_domain(site: Site) -> str:
    """user01 last logged in 100 days ago, user02 45 days ago, user03 an hour ago; user04 never
    (enabled today, so not idle)."""
    domain = await site.domain(enabled=4, others=0)
    now = datetime.now(UTC)
    for user, ago in (("user01", 100), ("user02", 45), ("user03", 0)):
        at = (now - timedelta(days=ago, hours=1)).isoformat()
        data = await site.call(OLD_LOGIN, {"e": f"{user}@{domain}", "at": at}, token=site.gateway)
        assert data == {"recordProtocolLogin": {"allowed": True}}
    return domain


async def test_the_idle_filter_lists_the_accounts_idle_that_long(page: Page, site: Site) -> None:
    domain = await idle_domain(site)
    await signed_in(page, site, domain)
    await expect(rows(page)).to_have_count(4)

    show = page.get_by_label("Show")
    await show.select_option(label="Idle for 30 days")
    await expect(rows(page)).to_have_count(2)
    assert [row[0] for row in await table(page)] == ["user01", "user02"]
    await shoot(page, "30-idle-filter")
    await show.select_option(label="Idle for 90 days")
    await expect(rows(page)).to_have_count(1)
    assert [row[0] for row in await table(page)] == ["user01"]
    await page.get_by_role("searchbox", name="Search accounts").fill("user02")
    await expect(page.locator("#empty")).to_have_text(
        "No account with MAPI/EWS matches “user02” among those idle for 90 days."
    )
    await page.get_by_role("searchbox", name="Search accounts").fill("")
    await show.select_option(label="All accounts")
    await expect(rows(page)).to_have_count(4)


async def test_reclaim_idle_shows_the_dry_run_then_takes_the_seats_back(
    page: Page, site: Site
) -> None:
    domain = await idle_domain(site)
    await signed_in(page, site, domain)

    await page.get_by_role("button", name="Reclaim idle…").click()
    dialog = page.get_by_role("dialog", name="Reclaim idle MAPI/EWS seats")
    await expect(dialog.get_by_label("Accounts with no login for")).to_be_focused()
    await expect(dialog.get_by_role("listitem")).to_have_text(["user01 (User A Person)"])
    await dialog.get_by_label("Accounts with no login for").select_option(label="30 days or more")
    await expect(dialog).to_contain_text("These 2 accounts have had no login for 30 days or more.")
    await expect(dialog.get_by_role("listitem")).to_have_text(
        ["user01 (User A Person)", "user02 (User B Person)"]
    )
    assert await rows(page).count() == 4  # the dry run changed nothing
    await shoot(page, "31-reclaim-preview")
    await dialog.get_by_role("button", name="Reclaim 2 seats").click()

    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toast")).to_have_text(
        "MAPI/EWS taken back from 2 idle accounts; 0 open sessions were told to end."
    )
    await expect(rows(page)).to_have_count(2)
    assert [row[0] for row in await table(page)] == ["user03", "user04"]
    assert await site.listed(domain) == ["user03", "user04"]
    await shoot(page, "32-reclaimed")


async def test_reclaim_with_nothing_idle_says_so_and_cannot_be_confirmed(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=0)  # enabled today, never logged in
    await signed_in(page, site, domain)

    await page.get_by_role("button", name="Reclaim idle…").click()
    dialog = page.get_by_role("dialog", name="Reclaim idle MAPI/EWS seats")

    await expect(dialog).to_contain_text("No account has been idle for 90 days")
    await expect(dialog.get_by_role("button", name="Reclaim 0 seats")).to_be_disabled()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
