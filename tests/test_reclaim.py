"""Idle MAPI/EWS accounts: listed by idleForDays, reclaimed by an administrator (or a dry run),
and by each domain's policy through the daily `reclaim-idle`."""

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from starlette.applications import Starlette

from api.events import EventBus, Topic
from api.models import Account, AuditAction, AuditEntry, Domain, ProtocolSession, SessionEndReason
from api.settings import Settings
from tests.conftest import Factory, GraphQLClient
from tests.servers import run_cli

DAYS = 30
IDLE = """
query Idle($days: Int, $search: String, $first: Int, $after: String, $order: AccountOrder) {
  mapiEwsAccounts(idleForDays: $days, search: $search, first: $first, after: $after, orderBy: $order) {
    totalCount pageInfo { hasNextPage endCursor } edges { node { username } }
  }
}
"""
RECLAIM = """
mutation Reclaim($days: Int!, $dry: Boolean!) {
  reclaimIdleMapiEws(input: {idleForDays: $days, dryRun: $dry}) {
    accounts { username mapiEwsEnabled activeSessionCount }
    usage { enabled limit available }
    dryRun sessionsEnding
    userErrors { field code message }
  }
}
"""
ENABLE = (
    "mutation($u: [String!]!) { enableMapiEws(input: {usernames: $u}) { userErrors { code } } }"
)
REPORT = """
mutation($e: String!, $at: DateTime, $s: String) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: MAPI, occurredAt: $at, sessionId: $s}) {
    allowed
  }
}
"""
CREATE_DOMAIN = "mutation($n: String!, $d: Int) { createDomain(input: {name: $n, mapiEwsIdleReclaimDays: $d}) { domain { mapiEwsIdleReclaimDays } userErrors { field code } } }"
UPDATE_DOMAIN = "mutation($n: String!, $d: Int) { updateDomain(input: {name: $n, mapiEwsIdleReclaimDays: $d}) { domain { mapiEwsIdleReclaimDays } userErrors { field code } } }"


async def account(
    make: Factory,
    domain: Domain,
    username: str,
    *,
    last_login: timedelta | None = None,
    enabled: timedelta | None = timedelta(days=400),
) -> Account:
    """An account with MAPI/EWS enabled `enabled` ago (None: at no known time) and its last
    allowed login `last_login` ago (None: never)."""
    now = datetime.now(UTC)
    row = await make.account(domain, username, enabled=True)
    row.mapi_ews_enabled_at = now - enabled if enabled is not None else None
    row.last_login = now - last_login if last_login is not None else None
    await row.save()
    return row


@pytest.fixture
async def domain(make: Factory) -> tuple[Domain, str]:
    example = await make.domain("example.com", limit=10)
    await account(make, example, "exactly", last_login=timedelta(days=DAYS))
    await account(make, example, "almost", last_login=timedelta(days=DAYS) - timedelta(minutes=1))
    await account(make, example, "never", last_login=None, enabled=timedelta(days=DAYS))
    await account(make, example, "new", last_login=None, enabled=timedelta(seconds=1))
    await account(make, example, "unknown", last_login=None, enabled=None)
    await account(make, example, "ancient", last_login=timedelta(days=900))
    await make.account(example, "without")  # MAPI/EWS off: never listed
    admin = await make.account(example, "admin", admin=True)
    return example, await make.token_for(admin)


async def listed(gql: GraphQLClient, token: str, **variables: object) -> list[str]:
    data = await gql.data(IDLE, variables, token=token)
    return [e["node"]["username"] for e in data["mapiEwsAccounts"]["edges"]]


async def test_idle_accounts_are_those_past_the_days_by_last_login_or_since_enabled(
    gql: GraphQLClient, domain: tuple[Domain, str]
) -> None:
    _, token = domain

    assert await listed(gql, token, days=DAYS) == ["ancient", "exactly", "never"]
    assert await listed(gql, token, days=800) == ["ancient"]
    assert await listed(gql, token, days=1) == ["almost", "ancient", "exactly", "never"]


async def test_idle_combines_with_search_sort_and_paging(
    gql: GraphQLClient, domain: tuple[Domain, str]
) -> None:
    _, token = domain
    order = {"field": "LAST_LOGIN", "direction": "DESC"}

    first = await gql.data(IDLE, {"days": DAYS, "first": 2, "order": order}, token=token)
    page = first["mapiEwsAccounts"]
    rest = await listed(
        gql, token, days=DAYS, first=2, after=page["pageInfo"]["endCursor"], order=order
    )

    assert [e["node"]["username"] for e in page["edges"]] == ["exactly", "ancient"]
    assert (page["totalCount"], page["pageInfo"]["hasNextPage"]) == (3, True)
    assert rest == ["never"]  # never logged in: last, as without the filter
    assert await listed(gql, token, days=DAYS, search="anc") == ["ancient"]


@pytest.mark.parametrize("days", [0, -1, 3651])
async def test_idle_days_outside_one_to_3650_are_refused(
    gql: GraphQLClient, domain: tuple[Domain, str], days: int
) -> None:
    _, token = domain

    query = await gql.post(IDLE, {"days": days}, token=token)
    mutation = await gql.data(RECLAIM, {"days": days, "dry": False}, token=token)

    assert [e["extensions"]["code"] for e in query["errors"]] == ["BAD_USER_INPUT"]
    payload = mutation["reclaimIdleMapiEws"]
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["input", "idleForDays"], "INVALID_INPUT")
    ]
    assert await Account.filter(mapi_ews_enabled=True).count() == 6


async def test_a_dry_run_names_the_idle_accounts_and_changes_nothing(
    gql: GraphQLClient, domain: tuple[Domain, str]
) -> None:
    _, token = domain
    before = await Account.all().order_by("id").values_list("username", "mapi_ews_enabled")
    audited = await AuditEntry.all().count()

    data = await gql.data(RECLAIM, {"days": DAYS, "dry": True}, token=token)

    payload = data["reclaimIdleMapiEws"]
    assert [a["username"] for a in payload["accounts"]] == ["ancient", "exactly", "never"]
    assert all(a["mapiEwsEnabled"] for a in payload["accounts"])
    assert payload["usage"] == {"enabled": 6, "limit": 10, "available": 4}
    assert (payload["dryRun"], payload["sessionsEnding"], payload["userErrors"]) == (True, 0, [])
    assert await Account.all().order_by("id").values_list("username", "mapi_ews_enabled") == before
    assert await AuditEntry.all().count() == audited


async def test_reclaim_disables_exactly_the_idle_accounts_audits_them_and_ends_their_sessions(
    app: Starlette, gql: GraphQLClient, make: Factory, domain: tuple[Domain, str]
) -> None:
    example, token = domain
    gateway = await make.gateway()
    # An Outlook left connected for weeks: its last login is old, its session still open.
    old = (datetime.now(UTC) - timedelta(days=400)).isoformat()
    await gql.data(REPORT, {"e": "ancient@example.com", "at": old, "s": "outlook-1"}, token=gateway)
    events: EventBus = app.state.events

    async with events.subscribe(Topic.ACCOUNT_CHANGES, example.id) as changes:
        data = await gql.data(RECLAIM, {"days": DAYS, "dry": False}, token=token)
        seen = sorted([(await anext(changes)).payload.account.username for _ in range(3)])

    payload = data["reclaimIdleMapiEws"]
    assert [a["username"] for a in payload["accounts"]] == ["ancient", "exactly", "never"]
    assert not any(a["mapiEwsEnabled"] for a in payload["accounts"])
    assert payload["usage"] == {"enabled": 3, "limit": 10, "available": 7}
    assert (payload["dryRun"], payload["sessionsEnding"]) == (False, 1)
    enabled = await Account.filter(mapi_ews_enabled=True).order_by("username")
    assert [a.username for a in enabled] == ["almost", "new", "unknown"]
    audited = await AuditEntry.filter(action=AuditAction.MAPI_EWS_DISABLED).order_by("target")
    assert [(e.actor, e.target) for e in audited] == [
        ("admin@example.com", f"{name}@example.com") for name in ("ancient", "exactly", "never")
    ]
    assert seen == ["ancient", "exactly", "never"]
    session = await ProtocolSession.get(session_id="outlook-1")
    assert session.end_reason is SessionEndReason.MAPI_EWS_DISABLED
    # Reclaiming again finds nothing more.
    again = await gql.data(RECLAIM, {"days": DAYS, "dry": False}, token=token)
    assert again["reclaimIdleMapiEws"]["accounts"] == []


async def test_reclaim_racing_with_enables_stays_within_the_limit_and_exact(
    gql: GraphQLClient, make: Factory
) -> None:
    example = await make.domain("race.example", limit=5)
    for index in range(3):
        await account(make, example, f"idle{index}", last_login=timedelta(days=90))
    for index in range(2):
        await account(make, example, f"busy{index}", last_login=timedelta(minutes=5))
    for index in range(6):
        await make.account(example, f"waiting{index}")
    token = await make.token_for(await make.account(example, "admin", admin=True))

    results = await asyncio.gather(
        gql.data(RECLAIM, {"days": DAYS, "dry": False}, token=token),
        *(gql.data(ENABLE, {"u": [f"waiting{i}"]}, token=token) for i in range(6)),
    )

    reclaimed = {a["username"] for a in results[0]["reclaimIdleMapiEws"]["accounts"]}
    enabled_now = {a.username for a in await Account.filter(domain=example, mapi_ews_enabled=True)}
    granted = {
        f"waiting{i}" for i, r in enumerate(results[1:]) if not r["enableMapiEws"]["userErrors"]
    }
    refused = [
        r["enableMapiEws"]["userErrors"] for r in results[1:] if r["enableMapiEws"]["userErrors"]
    ]
    assert reclaimed == {"idle0", "idle1", "idle2"}
    assert enabled_now == {"busy0", "busy1"} | granted
    assert len(enabled_now) <= 5
    assert all(errors[0]["code"] == "LIMIT_EXCEEDED" for errors in refused)
    disabled = await AuditEntry.filter(action=AuditAction.MAPI_EWS_DISABLED, domain=example).count()
    enables = await AuditEntry.filter(action=AuditAction.MAPI_EWS_ENABLED, domain=example).count()
    assert (disabled, enables) == (3, len(granted))


async def test_the_idle_policy_is_a_domain_setting_checked_like_any_input(
    gql: GraphQLClient, make: Factory
) -> None:
    root = await make.token_for(await make.system_admin())

    created = await gql.data(CREATE_DOMAIN, {"n": "policy.example", "d": 90}, token=root)
    refused = await gql.data(UPDATE_DOMAIN, {"n": "policy.example", "d": 3651}, token=root)
    refused_new = await gql.data(CREATE_DOMAIN, {"n": "bad.example", "d": 0}, token=root)
    cleared = await gql.data(UPDATE_DOMAIN, {"n": "policy.example", "d": None}, token=root)

    assert created["createDomain"] == {"domain": {"mapiEwsIdleReclaimDays": 90}, "userErrors": []}
    for payload in (refused["updateDomain"], refused_new["createDomain"]):
        assert payload == {
            "domain": None,
            "userErrors": [{"field": ["input", "mapiEwsIdleReclaimDays"], "code": "INVALID_INPUT"}],
        }
    assert await Domain.exists(name="bad.example") is False
    assert cleared["updateDomain"]["domain"] == {"mapiEwsIdleReclaimDays": None}


async def test_the_daily_command_reclaims_in_policy_domains_only_and_twice_is_harmless(
    make: Factory, settings: Settings
) -> None:
    policy = await make.domain("policy.example")
    policy.mapi_ews_idle_reclaim_days = 60
    await policy.save(update_fields=["mapi_ews_idle_reclaim_days"])
    other = await make.domain("other.example")
    await account(make, policy, "gone", last_login=timedelta(days=61))
    await account(make, policy, "here", last_login=timedelta(days=59))
    await account(make, other, "gone", last_login=timedelta(days=400))
    env = {"MAPI_EWS_DATABASE_URL": settings.database_url}

    first = await run_cli("reclaim-idle", env=env)
    second = await run_cli("reclaim-idle", env=env)

    assert (
        "policy.example: 1 account(s) idle for 60 days or more lost MAPI/EWS (gone); "
        "0 open session(s) told to end; 1 in use now." in first
    )
    assert "policy.example: 0 account(s) idle for 60 days or more lost MAPI/EWS;" in second
    assert "other.example" not in first + second
    still = (
        await Account.filter(mapi_ews_enabled=True)
        .order_by("username")
        .values_list("username", "domain__name")
    )
    assert still == [("gone", "other.example"), ("here", "policy.example")]
    entry = await AuditEntry.get(action=AuditAction.MAPI_EWS_DISABLED)
    assert (entry.actor, entry.target) == ("policy:idle-reclaim", "gone@policy.example")
