"""Who is connected, in the MAPI/EWS tab: the Connected column kept live, the sessions on hover,
Disconnect, and a disable that closes a real gateway's sessions (simulate-gateway), in Chromium."""

from __future__ import annotations

import time
from pathlib import Path

from playwright.async_api import Locator, Page, expect

from tests.browser import Site, rows, shoot, signed_in
from tests.servers import simulated_gateway

REPORT = """
mutation($e: String!, $s: String!, $p: MailProtocol!, $c: String) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: $p, sessionId: $s, clientName: $c,
      clientAddress: "198.51.100.23"}) { allowed }
}
"""
OUTLOOK = "Microsoft Outlook 16.0.17928.20114"
APPLE_MAIL = "Apple Mail 16.0 (3774.600.62)"


async def open_session(site: Site, address: str, session_id: str, protocol: str = "MAPI") -> None:
    client = OUTLOOK if protocol == "MAPI" else APPLE_MAIL
    data = await site.call(
        REPORT, {"e": address, "s": session_id, "p": protocol, "c": client}, token=site.gateway
    )
    assert data == {"recordProtocolLogin": {"allowed": True}}


def connected(page: Page, username: str) -> Locator:
    return rows(page).filter(has_text=username).locator("td.connected")


async def test_the_connected_column_follows_sessions_live_and_lists_them_on_hover(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=0)
    await signed_in(page, site, domain)
    await expect(connected(page, "user01")).to_have_text("—")

    await open_session(site, f"user01@{domain}", f"{domain}-a")
    opened = time.monotonic()
    await expect(connected(page, "user01")).to_have_text("1 session", timeout=1000)
    assert time.monotonic() - opened < 1.0
    await open_session(site, f"user01@{domain}", f"{domain}-b", protocol="EWS")
    await expect(connected(page, "user01")).to_have_text("2 sessions")
    await expect(connected(page, "user02")).to_have_text("—")
    await expect(page.locator("#activity li").first).to_contain_text(
        f"user01 connected over EWS ({APPLE_MAIL})"
    )

    await connected(page, "user01").get_by_role("button").hover()
    tip = page.get_by_role("tooltip")
    await expect(tip).to_contain_text("user01: 2 open")
    await expect(tip.locator("li")).to_have_text(
        [
            f"EWS {APPLE_MAIL} from 198.51.100.23, since just now",
            f"MAPI {OUTLOOK} from 198.51.100.23, since just now",
        ]
    )
    await shoot(page, "20-connected-sessions")
    await page.mouse.move(0, 0)
    await expect(tip).to_be_hidden()
    # By keyboard too: the badge is a button that shows the same on focus, Escape hides it.
    await connected(page, "user01").get_by_role("button").focus()
    await expect(tip).to_contain_text("user01: 2 open")
    await page.keyboard.press("Escape")
    await expect(tip).to_be_hidden()


async def test_disconnect_the_selected_rows_after_confirming(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=3, others=0)
    for index, username in enumerate(("user01", "user01", "user02")):
        await open_session(site, f"{username}@{domain}", f"{domain}-{index}")
    await signed_in(page, site, domain)
    await expect(connected(page, "user01")).to_have_text("2 sessions")

    await page.get_by_label(f"Select user01@{domain}").check()
    await page.get_by_label(f"Select user02@{domain}").check()
    await page.get_by_role("button", name="Disconnect (2)").click()
    dialog = page.get_by_role("dialog", name="Disconnect MAPI/EWS sessions")
    await expect(dialog).to_contain_text("End the open MAPI/EWS sessions of these 2 accounts?")
    await expect(dialog).to_contain_text("MAPI/EWS stays enabled")
    await expect(dialog.get_by_role("listitem")).to_have_text(["user01", "user02"])
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await shoot(page, "21-disconnect-confirmation")
    await dialog.get_by_role("button", name="Disconnect 2 accounts").click()

    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toast")).to_have_text(
        "3 open sessions were told to end for 2 accounts."
    )
    await expect(connected(page, "user01")).to_have_text("—")
    await expect(connected(page, "user02")).to_have_text("—")
    await expect(rows(page)).to_have_count(3)  # still enabled
    await expect(page.locator("#activity li").first).to_contain_text(
        "session ended: disconnected by an administrator"
    )
    await shoot(page, "22-disconnected")


async def test_after_a_disable_the_confirmation_says_how_many_sessions_were_told_to_end(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=0)
    await open_session(site, f"user02@{domain}", f"{domain}-x")
    await open_session(site, f"user02@{domain}", f"{domain}-y", protocol="EWS")
    await signed_in(page, site, domain)

    await page.get_by_label(f"Select user02@{domain}").check()
    await page.get_by_role("button", name="Disable (1)").click()
    dialog = page.get_by_role("dialog", name="Disable MAPI/EWS")
    await expect(dialog).to_contain_text("their open sessions end now")
    await dialog.get_by_role("button", name="Disable").click()

    await expect(page.locator("#toast")).to_have_text(
        "MAPI/EWS disabled for user02; 2 open sessions were told to end."
    )
    await expect(rows(page)).to_have_count(1)
    await shoot(page, "23-disabled-sessions-ending")


async def test_a_disable_in_the_tab_closes_a_gateways_sessions_within_a_second(
    page: Page, site: Site, tmp_path: Path
) -> None:
    domain = await site.domain(enabled=3, others=0)
    accounts = [f"user0{i}@{domain}" for i in (1, 2, 3)]
    options = ("--sessions", "6")
    async with simulated_gateway(site.url, site.gateway, tmp_path, accounts, *options) as gateway:
        await gateway.until("holding")
        await signed_in(page, site, domain)
        for username in ("user01", "user02", "user03"):
            await expect(connected(page, username)).to_have_text("2 sessions")
        await shoot(page, "24-gateway-connected")

        await page.get_by_label(f"Select user02@{domain}").check()
        await page.get_by_role("button", name="Disable (1)").click()
        await (
            page.get_by_role("dialog", name="Disable MAPI/EWS")
            .get_by_role("button", name="Disable")
            .click()
        )
        await expect(page.locator("#toast")).to_contain_text("2 open sessions were told to end")
        confirmed = time.monotonic()
        closed = await gateway.until("closed", 2)
        await gateway.until("ended")

        assert gateway.last("closed") - confirmed < 1.0
        assert {line["emailAddress"] for line in closed} == {f"user02@{domain}"}
        await expect(rows(page)).to_have_count(2)
        for username in ("user01", "user03"):
            await expect(connected(page, username)).to_have_text("2 sessions")
        await shoot(page, "25-gateway-closed-the-disabled-sessions")
