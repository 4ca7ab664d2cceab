"""MAPI/EWS use over time: each day's peak kept exact by every change, days carried forward,
months in UTC, the billing report as GraphQL and as CSV, and the usage pushed on a limit change."""

import asyncio
import importlib
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette

from api import db
from api.models import AuditAction, AuditEntry, Domain, UsageDay
from api.reports import csv_lines
from api.services import usage
from tests.conftest import Factory, GraphQLClient, run_subscription

HISTORY = "query($from: Date!, $to: Date!) { mapiEwsUsageHistory(from: $from, to: $to) { date peakEnabled enabledAtEnd limit } }"
REPORT = "query($m: String!, $first: Int, $after: String) { mapiEwsUsageReport(month: $m, first: $first, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { domain month peakEnabled enabledAtEnd limit } } } }"
ENABLE = (
    "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
DISABLE = (
    "mutation($u: [String!]!) { disableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
UPDATE = "mutation($n: String!, $max: Int) { updateDomain(input: {name: $n, maxMapiEwsAccounts: $max}) { userErrors { code } } }"
UPDATES = "subscription($d: String) { mapiEwsUsageUpdates(domain: $d) { domain enabled limit available } }"


async def day_row(domain: Domain, day: date, peak: int, end: int, limit: int | None = None) -> None:
    await UsageDay.create(
        domain=domain, day=day, peak_enabled=peak, enabled_at_end=end, allowance=limit
    )


async def created(domain: Domain, day: date) -> Domain:
    domain.created_at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)
    await Domain.filter(id=domain.id).update(created_at=domain.created_at)
    await UsageDay.filter(domain=domain).delete()
    return domain


async def test_peaks_are_exact_under_20_racing_enables_and_disables(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("example.com")
    for index in range(10):
        await make.account(example, f"on{index}", enabled=True)
        await make.account(example, f"off{index}")
    token = await make.token_for(await make.account(example, "admin", admin=True))

    await asyncio.gather(
        *(gql.data(ENABLE, {"u": [f"off{i}"]}, token=token) for i in range(10)),
        *(gql.data(DISABLE, {"u": [f"on{i}"]}, token=token) for i in range(10)),
    )

    # The truth: replay the changes in the order they committed (each under the domain's lock).
    count, highest = 10, 10
    for entry in await AuditEntry.filter(domain=example).order_by("id"):
        count += 1 if entry.action is AuditAction.MAPI_EWS_ENABLED else -1
        highest = max(highest, count)
    row = await UsageDay.get(domain=example, day=datetime.now(UTC).date())
    assert (row.peak_enabled, row.enabled_at_end) == (highest, 10)
    today = datetime.now(UTC).date().isoformat()
    days = (await gql.data(HISTORY, {"from": today, "to": today}, token=token))[
        "mapiEwsUsageHistory"
    ]
    assert days == [{"date": today, "peakEnabled": highest, "enabledAtEnd": 10, "limit": None}]


async def test_days_without_changes_carry_forward_and_days_before_the_domain_count_zero(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await created(await make.domain("example.com"), date(2026, 11, 3))
    await day_row(example, date(2026, 11, 3), 0, 0, 10)
    await day_row(example, date(2026, 11, 5), 4, 3, 10)
    await day_row(example, date(2026, 11, 7), 6, 5, 8)
    token = await make.token_for(await make.account(example, "admin", admin=True))

    data = await gql.data(HISTORY, {"from": "2026-11-01", "to": "2026-11-08"}, token=token)

    days = [
        (d["date"][-2:], d["peakEnabled"], d["enabledAtEnd"], d["limit"])
        for d in data["mapiEwsUsageHistory"]
    ]
    assert days == [
        ("01", 0, 0, None),
        ("02", 0, 0, None),
        ("03", 0, 0, 10),
        ("04", 0, 0, 10),
        ("05", 4, 3, 10),
        ("06", 3, 3, 10),
        ("07", 6, 5, 8),
        ("08", 5, 5, 8),
    ]


@pytest.mark.parametrize(
    "variables",
    [
        {"from": "2026-11-09", "to": "2026-11-08"},
        {"from": "2025-01-01", "to": "2026-01-02"},
    ],
    ids=["from-after-to", "over-366-days"],
)
async def test_a_bad_range_is_refused(
    gql: GraphQLClient, make: Factory, variables: dict[str, str]
) -> None:
    example = await make.domain("example.com")
    token = await make.token_for(await make.account(example, "admin", admin=True))

    body = await gql.post(HISTORY, variables, token=token)

    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


async def test_the_monthly_report_is_by_utc_month_with_domains_created_mid_month(
    gql: GraphQLClient, make: Factory
) -> None:
    old = await created(await make.domain("old.example", limit=9), date(2026, 10, 1))
    await day_row(old, date(2026, 10, 1), 0, 0, 9)
    await day_row(old, date(2026, 10, 31), 7, 6, 9)  # the last UTC day of October
    await day_row(old, date(2026, 11, 1), 8, 2, 9)  # the first of November
    mid = await created(await make.domain("mid.example"), date(2026, 11, 15))
    await day_row(mid, date(2026, 11, 15), 3, 3)
    await day_row(mid, date(2026, 11, 20), 5, 4)
    later = await created(await make.domain("later.example"), date(2026, 12, 1))
    await day_row(later, date(2026, 12, 1), 1, 1)
    root = await make.token_for(await make.system_admin())

    october = await gql.data(REPORT, {"m": "2026-10"}, token=root)
    november = await gql.data(REPORT, {"m": "2026-11"}, token=root)

    def figures(data: dict) -> list[tuple]:
        report = data["mapiEwsUsageReport"]
        return [
            (
                e["node"]["domain"],
                e["node"]["peakEnabled"],
                e["node"]["enabledAtEnd"],
                e["node"]["limit"],
            )
            for e in report["edges"]
        ]

    assert figures(october) == [("old.example", 7, 6, 9)]
    assert figures(november) == [("mid.example", 5, 4, None), ("old.example", 8, 2, 9)]
    assert november["mapiEwsUsageReport"]["totalCount"] == 2
    first = await gql.data(REPORT, {"m": "2026-11", "first": 1}, token=root)
    rest = await gql.data(
        REPORT,
        {"m": "2026-11", "first": 1, "after": first["mapiEwsUsageReport"]["pageInfo"]["endCursor"]},
        token=root,
    )
    assert figures(first) + figures(rest) == figures(november)


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "26-11", "November", ""])
async def test_a_malformed_month_is_refused(gql: GraphQLClient, make: Factory, month: str) -> None:
    root = await make.token_for(await make.system_admin())

    body = await gql.post(REPORT, {"m": month}, token=root)

    assert [e["extensions"]["code"] for e in body["errors"]] == ["BAD_USER_INPUT"]


def test_csv_cells_are_quoted_and_formulas_neutralised() -> None:
    text = csv_lines(
        [
            ("a,b", 'say "hi"', "two\nlines", 3),
            ("=HYPERLINK(1)", "+1", "-2", "@SUM(A1)"),
            ("\tx", "\rx", "plain", -4),
        ]
    )

    assert text == (
        '"a,b","say ""hi""","two\nlines",3\r\n'
        "'=HYPERLINK(1),'+1,'-2,'@SUM(A1)\r\n"
        "'\tx,\"'\rx\",plain,-4\r\n"
    )


async def test_the_csv_report_is_for_system_administrators_only(
    client: httpx.AsyncClient, make: Factory
) -> None:
    example = await created(await make.domain("example.com", limit=5), date(2026, 11, 2))
    await day_row(example, date(2026, 11, 2), 2, 2, 5)
    admin = await make.token_for(await make.account(example, "admin", admin=True))
    root = await make.token_for(await make.system_admin())
    url = "/reports/mapi-ews-usage.csv?month=2026-11"

    nobody = await client.get(url)
    forged = await client.get(url, headers={"Authorization": "Bearer forged"})
    domain_admin = await client.get(url, headers={"Authorization": f"Bearer {admin}"})
    bad_month = await client.get(
        "/reports/mapi-ews-usage.csv?month=2026-13", headers={"Authorization": f"Bearer {root}"}
    )
    answered = await client.get(url, headers={"Authorization": f"Bearer {root}"})

    assert (nobody.status_code, forged.status_code, domain_admin.status_code) == (401, 401, 403)
    assert nobody.headers["www-authenticate"] == "Bearer"
    assert bad_month.status_code == 400
    assert answered.status_code == 200
    assert answered.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="mapi-ews-usage-2026-11.csv"' in answered.headers["content-disposition"]
    assert answered.text == (
        "domain,month,peak_enabled,enabled_at_end,limit\r\nexample.com,2026-11,2,2,5\r\n"
    )


async def test_a_limit_change_is_pushed_as_the_domains_usage(
    app: Starlette, gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("example.com", limit=5)
    await make.account(example, "alice", enabled=True)
    root = await make.token_for(await make.system_admin())
    principal = await app.state.authenticator.principal(root)
    stream = run_subscription(app, UPDATES, {"d": "example.com"}, principal=principal)
    first = asyncio.ensure_future(anext(stream))
    try:
        async with asyncio.timeout(10):
            while not app.state.events.hub.subscriber_count():
                await asyncio.sleep(0.01)
        await gql.data(UPDATE, {"n": "example.com", "max": 3}, token=root)
        result = await asyncio.wait_for(first, 5)
    finally:
        await stream.aclose()

    assert result.data == {
        "mapiEwsUsageUpdates": {"domain": "example.com", "enabled": 1, "limit": 3, "available": 2}
    }
    row = await UsageDay.get(domain=example, day=datetime.now(UTC).date())
    assert (row.peak_enabled, row.enabled_at_end, row.allowance) == (1, 1, 3)


async def test_the_migration_fills_the_past_from_the_audit_log(make: Factory) -> None:
    example = await created(await make.domain("example.com", limit=7), date(2026, 11, 1))
    for username in ("a", "b", "c"):
        await make.account(example, username, enabled=username != "c")
    changes = [
        (datetime(2026, 11, 2, 8, tzinfo=UTC), AuditAction.MAPI_EWS_ENABLED),
        (datetime(2026, 11, 2, 9, tzinfo=UTC), AuditAction.MAPI_EWS_ENABLED),
        (datetime(2026, 11, 2, 10, tzinfo=UTC), AuditAction.MAPI_EWS_ENABLED),
        (datetime(2026, 11, 4, 23, 59, tzinfo=UTC), AuditAction.MAPI_EWS_DISABLED),
    ]
    for at, action in changes:
        await AuditEntry.create(
            occurred_at=at, actor="t", action=action, domain=example, target="x"
        )
    migration = importlib.import_module("api.migrations.0005_usage_days")

    await migration.fill_usage_days(db.connection())

    rows = (
        await UsageDay.filter(domain=example)
        .order_by("day")
        .values_list("day", "peak_enabled", "enabled_at_end", "allowance")
    )
    assert rows == [
        (date(2026, 11, 1), 0, 0, 7),
        (date(2026, 11, 2), 3, 3, 7),
        (date(2026, 11, 4), 3, 2, 7),
    ]
    assert usage.parse_month("2026-02") == (date(2026, 2, 1), date(2026, 2, 28))


async def test_the_demo_records_its_usage_like_any_enable(app: Starlette) -> None:
    from api.services.demo import load_demo

    await load_demo()

    rows = (
        await UsageDay.all()
        .order_by("domain__name")
        .values_list("domain__name", "peak_enabled", "enabled_at_end", "allowance")
    )
    assert rows == [("example.com", 12, 12, 25), ("readonly.example", 3, 3, 5)]
