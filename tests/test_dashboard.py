"""The dashboard at `/` in real headless Chromium (Debian's package), driven by Playwright,
against a real `serve` process on a free port. Each test works in a domain of its own.

Screenshots of the main states go to test-output/dashboard/ (MAPI_EWS_TEST_OUTPUT moves it).
Without Chromium these tests skip, naming the package; .ci/run sets MAPI_EWS_REQUIRE_BROWSER=1,
which makes them fail instead."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from tests.browser import (
    CANDIDATES,
    CREATE_DOMAIN,
    DASH,
    ENABLE,
    ENABLE_OWN,
    LISTED,
    LOGIN,
    PASSWORD,
    REFRESH,
    REPORT,
    Site,
    rows,
    shoot,
    sign_in,
    signed_in,
    spoil_access_token,
    stored,
    table,
)
from tests.servers import free_port, graphql_data, running_server

REMOVE_ACCOUNTS = """
mutation($d: String!, $u: [String!]!) {
  removeAccounts(input: {domain: $d, usernames: $u}) { seatsFreed userErrors { code } }
}
"""


async def test_signing_in_shows_the_table_as_the_api_lists_it(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=3, others=2, limit=5)

    await sign_in(page, site.url, f"admin@{domain}", "not-the-password")
    await expect(page.get_by_role("alert")).to_have_text("The username or password is wrong.")
    await shoot(page, "01-sign-in-refused")
    await sign_in(page, site.url, f"admin@{domain}")

    await expect(page.locator("#usage")).to_have_text("3 of 5 MAPI/EWS accounts in use")
    await expect(page.locator("#viewer-name")).to_have_text(f"admin@{domain}")
    await expect(rows(page)).to_have_count(3)
    listed = await site.call(LISTED, {"d": domain, "o": None, "n": 100})
    expected = [
        # No login since enabled just now; no session: not connected.
        [e["node"]["username"], e["node"]["name"], "Never enabled just now", "—"]
        for e in listed["mapiEwsAccounts"]["edges"]
    ]
    assert await table(page) == expected
    await expect(page.locator("#range")).to_have_text(f"1{DASH}3 of 3")
    await shoot(page, "02-accounts")


async def test_a_domain_without_mapi_ews_accounts_shows_an_empty_state(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=0, others=2, limit=3)
    await signed_in(page, site, domain)

    await expect(page.locator("#empty")).to_have_text(
        "No account has MAPI/EWS yet. Use Enable to add one."
    )
    await expect(page.locator("#usage")).to_have_text("0 of 3 MAPI/EWS accounts in use")
    await expect(rows(page)).to_have_count(0)
    await expect(page.get_by_role("button", name="Enable…")).to_be_visible()
    await shoot(page, "02b-empty")


async def test_search_sort_and_paging_follow_the_api(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=12, others=0)
    await signed_in(page, site, domain)

    await page.get_by_label("Rows per page").select_option("10")
    await expect(page.locator("#range")).to_have_text(f"1{DASH}10 of 12")
    await page.get_by_role("button", name="Next").click()
    await expect(page.locator("#range")).to_have_text(f"11{DASH}12 of 12")
    assert [row[0] for row in await table(page)] == ["user11", "user12"]
    await page.get_by_role("button", name="Previous").click()
    await expect(page.locator("#range")).to_have_text(f"1{DASH}10 of 12")

    name = page.locator("th[data-field=NAME]")
    await name.get_by_role("button").click()
    await expect(name).to_have_attribute("aria-sort", "ascending")
    await name.get_by_role("button").click()
    await expect(name).to_have_attribute("aria-sort", "descending")
    by_name = await site.listed(domain, {"field": "NAME", "direction": "DESC"})
    await expect(rows(page).first).to_contain_text(by_name[0])
    assert [row[0] for row in await table(page)] == by_name[:10]

    await page.get_by_label("Search accounts").fill("user 07")  # no such text: empty state
    await expect(page.locator("#empty")).to_have_text("No account with MAPI/EWS matches “user 07”.")
    await page.get_by_label("Search accounts").fill("User G")
    await expect(rows(page)).to_have_count(1)
    assert (await table(page))[0][:2] == ["user07", "User G Person"]
    await shoot(page, "03-search")


async def test_enable_one_account_from_the_modal_with_the_keyboard(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=1, others=3, limit=5)
    await signed_in(page, site, domain)

    await page.get_by_role("button", name="Enable…").click()
    dialog = page.get_by_role("dialog", name="Enable MAPI/EWS")
    await expect(dialog).to_be_visible()
    username = dialog.get_by_role("combobox", name="Username")
    await expect(username).to_be_focused()
    await username.press_sequentially("other0")
    options = dialog.get_by_role("option")
    await expect(options).to_have_count(3)  # accounts without MAPI/EWS only
    await shoot(page, "04-enable-suggestions")
    await username.press("ArrowDown")
    await username.press("ArrowDown")
    await username.press("Enter")  # picks the active suggestion
    await expect(username).to_have_value("other02")
    await username.press("Enter")  # saves

    await expect(dialog).to_be_hidden()
    await expect(page.locator("#toast")).to_have_text("MAPI/EWS enabled for other02.")
    await expect(rows(page)).to_have_count(2)
    await expect(page.locator("#usage")).to_have_text("2 of 5 MAPI/EWS accounts in use")
    assert await site.listed(domain) == ["other02", "user01"]


async def test_an_enable_past_the_limit_shows_the_error_in_the_modal(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=1, others=2, limit=2)
    await signed_in(page, site, domain)
    await expect(page.locator("#usage")).to_have_text("1 of 2 MAPI/EWS accounts in use")
    await expect(page.locator("#usage-warning")).to_be_hidden()

    await page.get_by_role("button", name="Enable…").click()
    dialog = page.get_by_role("dialog", name="Enable MAPI/EWS")
    await dialog.get_by_role("combobox", name="Username").fill("other01")
    # Meanwhile another administrator takes the last seat.
    await site.call(ENABLE, {"d": domain, "u": ["other02"]})
    await expect(page.locator("#usage")).to_have_text("2 of 2 MAPI/EWS accounts in use")
    await dialog.get_by_role("button", name="Save").click()

    error = dialog.get_by_role("alert")
    await expect(error).to_contain_text("limit")
    await expect(dialog).to_be_visible()
    await shoot(page, "05-enable-limit-reached")
    await dialog.get_by_role("combobox", name="Username").fill("nobody")
    await dialog.get_by_role("button", name="Save").click()
    await expect(error).to_contain_text("nobody")
    await dialog.get_by_role("button", name="Cancel").click()
    assert await site.listed(domain) == ["other02", "user01"]  # nothing more changed
    await expect(rows(page)).to_have_count(2)
    # Used up: said plainly, and Enable is not offered to fail.
    await expect(page.locator("#usage-warning")).to_contain_text("The allowance is used up")
    await expect(page.get_by_role("button", name="Enable…")).to_be_disabled()
    await shoot(page, "05b-allowance-used-up")


async def test_select_two_rows_and_disable_them_after_confirming(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=4, others=0, limit=10)
    await signed_in(page, site, domain)

    await page.get_by_label("Select all accounts on this page").check()
    await expect(page.get_by_role("button", name="Disable (4)")).to_be_enabled()
    await page.get_by_label("Select all accounts on this page").uncheck()
    await page.get_by_label(f"Select user02@{domain}").check()
    await page.get_by_label(f"Select user04@{domain}").check()
    await page.get_by_role("button", name="Disable (2)").click()

    dialog = page.get_by_role("dialog", name="Disable MAPI/EWS")
    await expect(dialog).to_contain_text("Disable MAPI/EWS for these 2 accounts?")
    await expect(dialog.get_by_role("listitem")).to_have_text(["user02", "user04"])
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()  # safe default
    await shoot(page, "06-disable-confirmation")
    await dialog.get_by_role("button", name="Disable 2 accounts").click()

    await expect(dialog).to_be_hidden()
    await expect(rows(page)).to_have_count(2)
    assert [row[0] for row in await table(page)] == ["user01", "user03"]
    await expect(page.locator("#usage")).to_have_text("2 of 10 MAPI/EWS accounts in use")
    assert await site.listed(domain) == ["user01", "user03"]


async def test_a_reported_login_appears_in_the_open_page_within_a_second(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=1)
    await signed_in(page, site, domain)
    cell = rows(page).filter(has_text="user02").locator(".last-login")
    await expect(cell).to_have_text("Never enabled just now")

    data = await site.call(REPORT, {"e": f"user02@{domain}"}, token=site.gateway)
    reported = time.monotonic()
    await expect(cell).to_have_text("MAPI just now", timeout=1000)
    assert time.monotonic() - reported < 1.0

    assert data == {"recordProtocolLogin": {"allowed": True}}
    assert re.match(r"\w+day, ", await cell.locator("time").get_attribute("title") or "")
    await expect(page.locator("#activity li").first).to_contain_text("user02 signed in over MAPI")
    # A refused login (MAPI/EWS is off for other01) shows in the activity, not in the table.
    await site.call(REPORT, {"e": f"other01@{domain}"}, token=site.gateway)
    await expect(page.locator("#activity li").first).to_contain_text("other01 was refused")
    await shoot(page, "07-live-login")


async def test_changes_made_elsewhere_appear_without_reloading(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=1, others=2, limit=3)
    await signed_in(page, site, domain)

    await site.call(ENABLE, {"d": domain, "u": ["other01", "other02"]})

    await expect(rows(page)).to_have_count(3)
    await expect(page.locator("#usage")).to_have_text("3 of 3 MAPI/EWS accounts in use")
    await expect(page.locator("#activity")).to_contain_text(
        "MAPI/EWS enabled for other02 by sysadmin"
    )


async def test_accounts_removed_by_the_mail_server_leave_the_open_page_at_once(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=1, limit=3)
    await signed_in(page, site, domain)
    await expect(rows(page)).to_have_count(2)

    removed = await site.call(REMOVE_ACCOUNTS, {"d": domain, "u": ["user01", "other01"]})

    assert removed["removeAccounts"]["seatsFreed"] == 1
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("user02")
    await expect(page.locator("#usage")).to_have_text("1 of 3 MAPI/EWS accounts in use")


async def test_a_read_only_domain_shows_the_list_without_enable_or_disable(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=1, managed=False)
    await signed_in(page, site, domain)

    await expect(rows(page)).to_have_count(2)
    await expect(page.locator("#read-only")).to_contain_text("This list is read-only")
    await expect(page.locator("#read-only")).to_contain_text("MANAGE_MAPI_EWS")
    await expect(page.get_by_role("button", name="Enable…")).to_have_count(0)
    await expect(page.get_by_role("button", name=re.compile("^Disable"))).to_have_count(0)
    await expect(page.get_by_role("checkbox")).to_have_count(0)
    await shoot(page, "08-read-only")


async def test_a_system_administrator_picks_the_domain_first(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=2, others=0, managed=False)
    await sign_in(page, site.url, "sysadmin")

    await expect(page.locator("#pick-domain")).to_be_visible()
    await shoot(page, "09-system-administrator-picks")
    await page.get_by_label("Domain", exact=True).select_option(domain)

    await expect(rows(page)).to_have_count(2)
    # The permission binds the domain's own administrators, not system administrators.
    await expect(page.get_by_role("button", name="Enable…")).to_be_visible()
    await expect(page.locator("#read-only")).to_contain_text("as a system administrator, you can")
    await expect(page.locator("#live-status")).to_have_text("Live")


async def test_the_domain_picker_lists_every_domain_past_the_first_page(
    page: Page, site: Site
) -> None:
    for index in range(101):
        await site.call(CREATE_DOMAIN, {"n": f"many{index:03}.example", "max": None, "m": True})
    total = (await site.call("{ domains { totalCount } }"))["domains"]["totalCount"]

    await sign_in(page, site.url, "sysadmin")

    options = page.get_by_label("Domain", exact=True).locator("option")
    await expect(options).to_have_count(total + 1)  # and "Choose a domain..."
    assert total > 100


async def test_an_expired_access_token_is_refreshed_without_asking(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=1, others=0)
    await signed_in(page, site, domain)

    await spoil_access_token(page)
    await page.reload()

    await expect(rows(page)).to_have_count(1)
    await expect(page.locator("#live-status")).to_have_text("Live")
    assert await stored(page, "accessToken") != "expired.or.forged"


async def test_a_session_that_cannot_be_refreshed_asks_to_sign_in_again(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=1, others=0)
    await signed_in(page, site, domain)
    refresh_token = await stored(page, "refreshToken")
    # The sign-in ends elsewhere (signed out in another tab) and the access token runs out.
    await site.call(
        "mutation($t: String!) { logout(input: {refreshToken: $t}) { userErrors { code } } }",
        {"t": refresh_token},
    )
    await spoil_access_token(page)
    await page.reload()

    await expect(page.locator("#sign-in-notice")).to_have_text(
        "Your session has expired. Please sign in again."
    )
    await expect(page.locator("#sign-in-form").get_by_label("Username")).to_be_focused()
    await shoot(page, "10-session-expired")


async def test_signing_out_ends_the_session_on_the_server(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=1, others=0)
    await signed_in(page, site, domain)
    refresh_token = await stored(page, "refreshToken")

    await page.get_by_role("button", name="Sign out").click()

    await expect(page.locator("#sign-in-notice")).to_have_text("You have signed out.")
    assert await page.evaluate('sessionStorage.getItem("mapi-ews-admin.session")') is None
    data = await site.call(REFRESH, {"t": refresh_token})
    assert data["refreshAccessToken"]["userErrors"] == [{"code": "INVALID_CREDENTIALS"}]


async def test_an_administrator_demoted_while_watching_is_shown_no_access(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=1, others=0)
    await signed_in(page, site, domain)

    # No mutation demotes an administrator: the database is changed directly, as an operator
    # (or the mail server's own admin tool) would.
    with sqlite3.connect(site.database) as connection:
        connection.execute(
            "UPDATE account SET is_domain_admin = 0 WHERE username = 'admin' AND domain_id = "
            "(SELECT id FROM domain WHERE name = ?)",
            (domain,),
        )

    # The server closes the connection (4403), the page refreshes its token, learns it is no
    # longer an administrator and says so.
    await expect(page.locator("#no-access-view")).to_be_visible(timeout=10_000)
    await expect(page.locator("#tab-view")).to_be_hidden()
    await shoot(page, "12-no-longer-an-administrator")


async def test_every_control_has_a_label_and_dialogs_close_with_escape(
    page: Page, site: Site
) -> None:
    domain = await site.domain(enabled=2, others=1)
    await signed_in(page, site, domain)

    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll("input, select, button")]
            .filter(el => !(el.labels?.length || el.getAttribute("aria-label") || el.textContent.trim()))
            .map(el => el.outerHTML)"""
    )
    assert unlabelled == []
    await page.get_by_role("button", name="Enable…").focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Enable MAPI/EWS")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("option")).to_have_count(2)  # admin and other01
    await page.keyboard.press("Escape")  # closes the suggestion list, not the dialog
    await expect(dialog.get_by_role("listbox")).to_be_hidden()
    await expect(dialog).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(page.get_by_role("button", name="Enable…")).to_be_focused()


async def test_the_page_loads_nothing_from_other_origins(page: Page, site: Site) -> None:
    domain = await site.domain(enabled=1, others=0)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    await signed_in(page, site, domain)

    assert requested
    outside = [u for u in requested if not u.startswith((site.url, "data:", "ws://127.0.0.1"))]
    assert outside == []
    response = await page.request.get(f"{site.url}/")
    assert "script-src 'self'" in response.headers["content-security-policy"]


async def test_when_the_access_token_expires_the_page_reconnects_with_a_fresh_one(
    browser: Browser, tmp_path: Path
) -> None:
    env = {
        "MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}",
        "MAPI_EWS_ACCESS_TOKEN_MINUTES": "0.1",  # six seconds
    }
    context = await browser.new_context()
    page = await context.new_page()
    with running_server(env, tmp_path / "server.log", "--demo") as server:
        await sign_in(page, server.url, "admin@example.com")
        status = page.locator("#live-status")
        await expect(status).to_have_text("Live")
        first = await stored(page, "accessToken")

        # The server closes the connection at the token's expiry (4403); the page refreshes
        # its token and reconnects, without asking anything of the person watching.
        async with asyncio.timeout(20):
            while await stored(page, "accessToken") == first:
                await asyncio.sleep(0.2)
        await expect(status).to_have_text("Live", timeout=10_000)
        token = (await graphql_data(server.url, LOGIN, {"u": "sysadmin", "p": PASSWORD}))["login"][
            "accessToken"
        ]
        await graphql_data(server.url, ENABLE, {"d": "example.com", "u": ["admin"]}, token=token)
        await expect(page.locator("#activity")).to_contain_text("MAPI/EWS enabled for admin")
        await expect(page.locator("#sign-in-view")).to_be_hidden()
        assert "closing a WebSocket connection of admin@example.com: credentials expired" in (
            server.output()
        )
    await context.close()


async def test_live_updates_reconnect_after_the_server_restarts(
    browser: Browser, tmp_path: Path
) -> None:
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}"}
    port = free_port()
    context = await browser.new_context()
    page = await context.new_page()
    with running_server(env, tmp_path / "server.log", "--demo", port=port) as server:
        await sign_in(page, server.url, "admin@example.com")
        await expect(page.locator("#live-status")).to_have_text("Live")
    status = page.locator("#live-status")
    await expect(status).to_have_attribute("data-state", "offline")
    await expect(status).to_contain_text("Live updates interrupted")
    await shoot(page, "11-reconnecting")

    with running_server(env, tmp_path / "server.log", port=port) as server:
        await expect(status).to_have_text("Live", timeout=20_000)
        # The subscriptions were started again: a change made now shows up.
        token = (await graphql_data(server.url, LOGIN, {"u": "admin@example.com", "p": PASSWORD}))[
            "login"
        ]["accessToken"]
        candidates = await graphql_data(server.url, CANDIDATES, token=token)
        username = candidates["accounts"]["edges"][0]["node"]["username"]
        await graphql_data(server.url, ENABLE_OWN, {"u": [username]}, token=token)
        await expect(page.locator("#activity")).to_contain_text(f"MAPI/EWS enabled for {username}")
        await expect(rows(page).filter(has_text=username)).to_have_count(1)
        await context.close()
