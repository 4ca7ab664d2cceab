"""Answers that say what happened (issue 31, through the API): an enable or disable names the
accounts it did not change, a month that has not begun is refused, and the login history is
filtered by part of a username or of an account's name."""

from datetime import UTC, datetime

from api.models import AuditEntry
from tests.conftest import Factory, GraphQLClient

ENABLE = """
mutation($u: [String!]!, $p: [MailProtocol!]) {
  enableMapiEws(input: {usernames: $u, protocols: $p}) {
    accounts { username } unchanged usage { enabled } userErrors { code }
  }
}
"""
DISABLE = """
mutation($u: [String!]!) {
  disableMapiEws(input: {usernames: $u}) { unchanged sessionsEnding usage { enabled } }
}
"""
MONTH = """
query($m: String!) { mapiEwsUsageReport(month: $m) { totalCount } }
"""
HISTORY = """
query($s: String) { mapiEwsLoginEvents(search: $s, first: 50) { edges { node { username } } } }
"""
REPORT = "mutation($e: String!) { recordProtocolLogin(input: {emailAddress: $e, protocol: EWS}) { allowed } }"


async def test_an_enable_or_disable_names_what_it_did_not_change(
    gql: GraphQLClient, make: Factory
) -> None:
    domain = await make.domain(limit=5)
    admin = await make.account(domain, "admin", admin=True)
    await make.account(domain, "alice", enabled=True)
    await make.account(domain, "bob")
    token = await make.token_for(admin)
    audited = await AuditEntry.all().count()

    again = await gql.data(ENABLE, {"u": ["alice"]}, token=token)
    both = await gql.data(ENABLE, {"u": ["alice", "bob"]}, token=token)
    narrowed = await gql.data(ENABLE, {"u": ["alice"], "p": ["EWS"]}, token=token)
    off = await gql.data(DISABLE, {"u": ["bob"]}, token=token)
    off_again = await gql.data(DISABLE, {"u": ["bob"]}, token=token)

    assert again["enableMapiEws"]["unchanged"] == ["alice"]
    assert again["enableMapiEws"]["usage"] == {"enabled": 1}
    assert await AuditEntry.all().count() == audited + 0 + 1 + 1 + 1  # bob on, alice EWS, bob off
    assert both["enableMapiEws"]["unchanged"] == ["alice"]
    assert narrowed["enableMapiEws"]["unchanged"] == []  # her protocols changed
    assert off["disableMapiEws"]["unchanged"] == []
    assert off_again["disableMapiEws"]["unchanged"] == ["bob"]


async def test_a_month_that_has_not_begun_is_refused_and_this_one_is_given_so_far(
    gql: GraphQLClient, make: Factory
) -> None:
    await make.domain()
    root = await make.token_for(await make.system_admin())
    now = datetime.now(UTC)
    following = f"{now.year + now.month // 12}-{now.month % 12 + 1:02}"

    current = await gql.data(MONTH, {"m": f"{now:%Y-%m}"}, token=root)
    future = await gql.post(MONTH, {"m": following}, token=root)
    csv = await gql.http.get(
        "/reports/mapi-ews-usage.csv",
        params={"month": following},
        headers={"Authorization": f"Bearer {root}"},
    )

    assert current["mapiEwsUsageReport"]["totalCount"] == 1
    assert future["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"
    assert f"{following} has not begun" in future["errors"][0]["message"]
    assert csv.status_code == 400
    assert f"{following} has not begun" in csv.json()["error"]


async def test_the_login_history_is_filtered_by_part_of_a_username_or_name(
    gql: GraphQLClient, make: Factory
) -> None:
    domain = await make.domain()
    admin = await make.account(domain, "admin", admin=True)
    await make.account(domain, "radia.liskov0", name="Radia Perlman", enabled=True)
    await make.account(domain, "alan.kay", name="Alan Kay", enabled=True)
    gateway = await make.gateway()
    for who in ("radia.liskov0", "alan.kay"):
        await gql.data(REPORT, {"e": f"{who}@example.com"}, token=gateway)
    token = await make.token_for(admin)

    async def found(search: str | None) -> list[str]:
        data = await gql.data(HISTORY, {"s": search}, token=token)
        return sorted(e["node"]["username"] for e in data["mapiEwsLoginEvents"]["edges"])

    assert await found("radia") == ["radia.liskov0"]
    assert await found("PERLMAN") == ["radia.liskov0"]  # the account's name, without case
    assert await found("Radia Perlman") == ["radia.liskov0"]
    assert await found("kay") == ["alan.kay"]
    assert await found("nobody") == []
    assert await found(None) == ["alan.kay", "radia.liskov0"]


AUDIT = """
query($a: AuditAction, $s: String) {
  auditLog(action: $a, search: $s, first: 50) { edges { node { action target } } }
}
"""


async def test_the_audit_log_is_filtered_by_action_and_by_account(
    gql: GraphQLClient, make: Factory
) -> None:
    domain = await make.domain(limit=5)
    admin = await make.account(domain, "admin", admin=True)
    for name in ("alice", "bob"):
        await make.account(domain, name)
    token = await make.token_for(admin)
    await gql.data(ENABLE, {"u": ["alice", "bob"]}, token=token)
    await gql.data(DISABLE, {"u": ["bob"]}, token=token)

    async def found(action: str | None, search: str | None) -> list[tuple[str, str]]:
        data = await gql.data(AUDIT, {"a": action, "s": search}, token=token)
        return sorted((e["node"]["action"], e["node"]["target"]) for e in data["auditLog"]["edges"])

    assert await found("MAPI_EWS_DISABLED", None) == [("MAPI_EWS_DISABLED", "bob@example.com")]
    assert await found(None, "BOB") == [
        ("MAPI_EWS_DISABLED", "bob@example.com"),
        ("MAPI_EWS_ENABLED", "bob@example.com"),
    ]
    assert await found("MAPI_EWS_ENABLED", "alice") == [("MAPI_EWS_ENABLED", "alice@example.com")]
    assert await found("DOMAIN_REMOVED", None) == []
