"""Who may connect, and with what, in the dashboard: protocols chosen in the Enable dialog and
changed for selected rows, the Client access view with its check before Save, the clients in
use, and each refusal's reason in the history and in Live activity (headless Chromium)."""

from __future__ import annotations

from playwright.async_api import Page, expect

from tests.browser import Site, rows, shoot, signed_in

REPORT = """
mutation($e: String!, $p: MailProtocol!, $c: String, $s: String) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: $p, clientName: $c, sessionId: $s}) {
    allowed refusal
  }
}
"""


async def test_an_account_enabled_for_ews_only_shows_it_and_a_mapi_login_says_why_it_failed(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=1, others=1, limit=5)
    await signed_in(page, site, domain)

    await page.get_by_role("button", name="Enable…").click()
    dialog = page.get_by_role("dialog", name="Enable MAPI/EWS")
    await dialog.get_by_role("combobox", name="Username").fill("other01")
    await dialog.get_by_label("MAPI (Outlook for Windows)").uncheck()
    await shoot(page, "30-enable-ews-only")
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog).to_be_hidden()
    row = rows(page).filter(has_text="other01")
    await expect(row.locator(".protocols")).to_have_text("EWS only")
    refused = await site.call(
        REPORT, {"e": f"other01@{domain}", "p": "MAPI", "c": "Outlook"}, token=site.gateway
    )

    assert refused["recordProtocolLogin"] == {"allowed": False, "refusal": "PROTOCOL_NOT_ALLOWED"}
    await expect(page.locator("#activity li").first).to_contain_text(
        "other01 was refused over MAPI: protocol not allowed for this account"
    )
    await page.get_by_role("tab", name="Login history").click()
    await expect(page.locator("#history-rows tr").first).to_contain_text(
        "Refused: protocol not allowed for this account"
    )


async def test_protocols_change_for_the_selected_rows(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=3, others=0, limit=5)
    await signed_in(page, site, domain)
    await site.call(
        REPORT,
        {"e": f"user01@{domain}", "p": "MAPI", "c": "Outlook", "s": "p-1"},
        token=site.gateway,
    )

    for user in ("user01", "user02"):
        await rows(page).filter(has_text=user).get_by_role("checkbox").check()
    await page.get_by_role("button", name="Protocols… (2)").click()
    dialog = page.get_by_role("dialog", name="Protocols")
    await expect(dialog.get_by_role("listitem")).to_have_text(["user01", "user02"])
    await dialog.get_by_label("MAPI").uncheck()
    await dialog.get_by_label("EWS").uncheck()
    await dialog.get_by_role("button", name="Save").click()
    await expect(dialog.get_by_role("alert")).to_contain_text("Choose MAPI, EWS or both")
    await dialog.get_by_label("EWS").check()
    await shoot(page, "31-protocols-dialog")
    await dialog.get_by_role("button", name="Save").click()

    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toast")).to_have_text(
        "2 accounts may use EWS; 1 open session was told to end."
    )
    for user in ("user01", "user02"):
        await expect(rows(page).filter(has_text=user).locator(".protocols")).to_have_text(
            "EWS only"
        )
    await expect(rows(page).filter(has_text="user03").locator(".protocols")).to_have_count(0)


async def test_the_client_access_view_checks_what_a_policy_refuses_before_it_saves_it(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=0, limit=5)
    for user, client in (("user01", "Scraper 1.0"), ("user02", "Microsoft Outlook 16.0.17928")):
        await site.call(
            REPORT,
            {"e": f"{user}@{domain}", "p": "EWS", "c": client, "s": f"{user}-s"},
            token=site.gateway,
        )
    await signed_in(page, site, domain)

    await page.get_by_role("tab", name="Client access").click()
    clients = page.locator("#client-rows tr")
    await expect(clients).to_have_count(2)
    await expect(page.locator("#policy-updated")).to_have_text(
        "The default: every client may connect."
    )
    await page.get_by_role("button", name="Add rule").click()
    await page.get_by_role("textbox", name="Client name pattern").fill("scraper*")
    await page.get_by_role("button", name="Save").click()
    check = page.locator("#policy-check")
    await expect(check).to_contain_text(
        "This policy would end 1 open session and refuse 1 client seen in the last 30 days:"
    )
    await expect(check).to_contain_text("Scraper 1.0 over EWS: 1 account")
    await shoot(page, "32-client-access-check")
    await page.get_by_role("button", name="Save anyway").click()

    await expect(page.locator("#toast")).to_have_text(
        "Client access policy saved; 1 open session was told to end."
    )
    await expect(clients.filter(has_text="Scraper 1.0")).to_contain_text("Refused")
    await expect(page.locator("#policy-updated")).to_contain_text("Saved by admin@")
    blocked = await site.call(
        REPORT, {"e": f"user02@{domain}", "p": "EWS", "c": "Scraper 2.0"}, token=site.gateway
    )
    assert blocked["recordProtocolLogin"] == {"allowed": False, "refusal": "CLIENT_NOT_ALLOWED"}
    await expect(page.locator("#activity li").first).to_contain_text(
        "user02 was refused over EWS: client not allowed by the access policy"
    )


async def test_a_bad_rule_is_named_and_nothing_is_saved(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=1, others=0)
    await signed_in(page, site, domain)
    await page.get_by_role("tab", name="Client access").click()

    await page.get_by_role("button", name="Add rule").click()
    await page.get_by_role("textbox", name="Client name pattern").fill("Outlook*")
    await page.get_by_role("textbox", name="Only versions below").fill("sixteen")
    await page.get_by_role("button", name="Check").click()

    await expect(page.locator("#policy-error")).to_contain_text("Rule 1 (belowVersion): ")
    policy = await site.call(
        "query($d: String!) { clientAccessPolicy(domain: $d) { rules { pattern } } }", {"d": domain}
    )
    assert policy["clientAccessPolicy"]["rules"] == []
