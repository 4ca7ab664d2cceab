"""Gateway reports (recordProtocolLogin), gateway tokens and the login history."""

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest

from api import db
from api.auth.credentials import Authenticator
from api.auth.principal import Principal, Role
from api.auth.tokens import issue_access_token, token_digest
from api.errors import Unauthenticated
from api.models import Account, AuditAction, AuditEntry, Domain, GatewayToken, LoginEvent
from api.services import gateways, login_history, sign_ins
from api.settings import Settings
from tests.conftest import Factory, GraphQLClient, StatementCounter

REPORT = """
mutation Report($email: String!, $protocol: MailProtocol!, $at: DateTime, $ip: String) {
  recordProtocolLogin(
    input: {emailAddress: $email, protocol: $protocol, occurredAt: $at, clientAddress: $ip}
  ) {
    allowed
    userErrors { field code message }
  }
}
"""
EVENTS = """
query Events($domain: String, $username: String, $first: Int, $after: String) {
  mapiEwsLoginEvents(domain: $domain, username: $username, first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { node {
      username emailAddress domain protocol occurredAt clientAddress allowed
      account { username lastLogin lastLoginProtocol }
    } }
  }
}
"""
CREATE_TOKEN = """
mutation Create($name: String!) {
  createGatewayToken(input: {name: $name}) { token userErrors { field code message } }
}
"""
LAST_LOGINS = "last_login", "last_login_protocol", "last_mapi_login", "last_ews_login"


def at(minutes: int) -> datetime:
    return datetime(2026, 11, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)


def iso(moment: datetime) -> str:
    return moment.isoformat()


@pytest.fixture
async def gateway(make: Factory) -> str:
    return await make.gateway()


@pytest.fixture
async def example(make: Factory) -> Domain:
    domain = await make.domain("example.com")
    await make.account(domain, "alice", enabled=True)
    await make.account(domain, "bob")
    return domain


async def columns(username: str) -> tuple[object, ...]:
    return tuple(await Account.get(username=username).values_list(*LAST_LOGINS))


async def test_an_allowed_login_moves_last_login_and_is_stored(
    gql: GraphQLClient, gateway: str, example: Domain
) -> None:
    data = await gql.data(
        REPORT,
        {"email": "Alice@Example.com", "protocol": "MAPI", "at": iso(at(0)), "ip": "192.0.2.7"},
        token=gateway,
    )

    assert data["recordProtocolLogin"] == {"allowed": True, "userErrors": []}
    assert await columns("alice") == (at(0), "MAPI", at(0), None)
    event = await LoginEvent.get()
    assert (event.username, event.protocol, event.occurred_at, event.allowed) == (
        "alice",
        "MAPI",
        at(0),
        True,
    )
    assert (event.client_address, event.domain_id) == ("192.0.2.7", example.id)


async def test_a_login_without_mapi_ews_is_refused_and_still_stored(
    gql: GraphQLClient, gateway: str, example: Domain
) -> None:
    data = await gql.data(
        REPORT, {"email": "bob@example.com", "protocol": "EWS", "at": iso(at(0))}, token=gateway
    )

    assert data["recordProtocolLogin"] == {"allowed": False, "userErrors": []}
    assert await columns("bob") == (None, None, None, None)
    event = await LoginEvent.get()
    assert (event.username, event.protocol, event.allowed) == ("bob", "EWS", False)


async def test_an_unknown_address_is_not_found_and_stores_nothing(
    gql: GraphQLClient, gateway: str, example: Domain
) -> None:
    for email in ("nobody@example.com", "alice@unknown.test"):
        data = await gql.data(REPORT, {"email": email, "protocol": "MAPI"}, token=gateway)

        assert data["recordProtocolLogin"]["allowed"] is False
        assert [(e["code"], e["field"]) for e in data["recordProtocolLogin"]["userErrors"]] == [
            ("NOT_FOUND", ["input", "emailAddress"])
        ]
    assert await LoginEvent.all().count() == 0


async def test_last_login_only_moves_forward_but_each_protocol_keeps_its_own_time(
    gql: GraphQLClient, gateway: str, example: Domain
) -> None:
    async def report(protocol: str, minutes: int) -> None:
        data = await gql.data(
            REPORT,
            {"email": "alice@example.com", "protocol": protocol, "at": iso(at(minutes))},
            token=gateway,
        )
        assert data["recordProtocolLogin"]["allowed"] is True

    await report("MAPI", 10)
    await report("EWS", 5)  # late, but newer than any EWS login so far
    assert await columns("alice") == (at(10), "MAPI", at(10), at(5))
    await report("MAPI", 1)  # late and older: changes nothing
    assert await columns("alice") == (at(10), "MAPI", at(10), at(5))
    await report("EWS", 20)
    assert await columns("alice") == (at(20), "EWS", at(10), at(20))
    assert await LoginEvent.all().count() == 4


async def test_racing_reports_never_move_a_time_back(
    gql: GraphQLClient, gateway: str, example: Domain
) -> None:
    rng = random.Random(7)
    reports = [(rng.choice(["MAPI", "EWS"]), rng.randrange(0, 500)) for _ in range(40)]

    results = await asyncio.gather(
        *(
            gql.data(
                REPORT,
                {"email": "alice@example.com", "protocol": p, "at": iso(at(m))},
                token=gateway,
            )
            for p, m in reports
        )
    )

    assert all(r["recordProtocolLogin"]["allowed"] for r in results)
    newest = max(m for _, m in reports)
    newest_protocols = {p for p, m in reports if m == newest}
    last, protocol, mapi, ews = await columns("alice")
    assert last == at(newest)
    assert protocol in newest_protocols
    assert mapi == at(max(m for p, m in reports if p == "MAPI"))
    assert ews == at(max(m for p, m in reports if p == "EWS"))
    assert sum(e.count for e in await LoginEvent.all()) == 40  # each counted once, coalesced


@pytest.mark.parametrize(
    ("variables", "field", "words"),
    [
        ({"email": "not-an-address"}, "emailAddress", "not"),
        ({"email": "alice@example.com", "ip": "300.1.2.3"}, "clientAddress", "IP address"),
        ({"email": "alice@example.com", "at": "2026-11-24T09:30:00"}, "occurredAt", "offset"),
        ({"email": "alice@example.com", "at": "2999-01-01T00:00:00Z"}, "occurredAt", "future"),
    ],
)
async def test_a_bad_report_is_refused_with_a_clear_error_and_changes_nothing(
    gql: GraphQLClient,
    gateway: str,
    example: Domain,
    variables: dict[str, str],
    field: str,
    words: str,
) -> None:
    data = await gql.data(REPORT, {"protocol": "MAPI", **variables}, token=gateway)

    payload = data["recordProtocolLogin"]
    assert payload["allowed"] is False
    assert [(e["code"], e["field"]) for e in payload["userErrors"]] == [
        ("INVALID_INPUT", ["input", field])
    ]
    assert words in payload["userErrors"][0]["message"]
    assert await columns("alice") == (None, None, None, None)
    assert await LoginEvent.all().count() == 0


# On SQLite: the account's UPDATE (and its read when refused), the repeated event's read and its
# count moved on.
@pytest.mark.parametrize(("email", "on_sqlite"), [("alice@example.com", 3), ("bob@example.com", 4)])
async def test_a_report_is_one_statement_on_postgresql(
    gql: GraphQLClient,
    gateway: str,
    example: Domain,
    sql: StatementCounter,
    email: str,
    on_sqlite: int,
) -> None:
    report = {"email": email, "protocol": "MAPI"}
    await gql.data(
        REPORT, report, token=gateway
    )  # the gateway token is looked up once, then cached
    sql.statements.clear()

    await gql.data(REPORT, report, token=gateway)

    assert len(sql.statements) == (on_sqlite if db.is_sqlite() else 1), sql.statements


HISTORY = """
query { mapiEwsLoginEvents(first: 20) { totalCount edges { node {
  username protocol clientAddress allowed count occurredAt lastOccurredAt
} } } }
"""


def reported(email: str, minutes: float, **more: str) -> dict[str, str]:
    moment = datetime(2026, 11, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=minutes)
    return {"email": email, "protocol": "MAPI", "at": iso(moment), "ip": "198.51.100.4", **more}


async def history(gql: GraphQLClient, make: Factory, example: Domain) -> list[dict[str, object]]:
    admin = await make.account(example, "admin", admin=True)
    data = await gql.data(HISTORY, token=await make.token_for(admin))
    return [edge["node"] for edge in data["mapiEwsLoginEvents"]["edges"]]


async def test_the_same_login_repeated_within_the_window_is_counted_on_one_event(
    gql: GraphQLClient, gateway: str, example: Domain, make: Factory
) -> None:
    for minutes in (0, 1, 2.5, 4.9):
        await gql.data(REPORT, reported("alice@example.com", minutes), token=gateway)

    events = await history(gql, make, example)

    assert [(e["count"], e["occurredAt"], e["lastOccurredAt"]) for e in events] == [
        (4, iso(at(0)), "2026-11-01T09:04:54+00:00")
    ]
    assert await LoginEvent.all().count() == 1
    assert (await columns("alice"))[0] == datetime(2026, 11, 1, 9, 4, 54, tzinfo=UTC)


async def test_a_different_login_or_one_past_the_window_is_an_event_of_its_own(
    gql: GraphQLClient, gateway: str, example: Domain, make: Factory
) -> None:
    alice = "alice@example.com"
    sent = [
        reported(alice, 0),
        reported(alice, 1, protocol="EWS"),  # another protocol
        reported(alice, 2, ip="203.0.113.9"),  # another client address
        reported(alice, 3),  # the first again: counted on it
        reported(alice, 5),  # five minutes after the first report: a new window
        reported("bob@example.com", 1),  # refused: bob has no MAPI/EWS
        reported("bob@example.com", 2),
    ]
    for variables in sent:
        await gql.data(REPORT, variables, token=gateway)

    events = await history(gql, make, example)

    assert sorted(
        (e["username"], e["protocol"], e["clientAddress"], e["allowed"], e["count"]) for e in events
    ) == [
        ("alice", "EWS", "198.51.100.4", True, 1),
        ("alice", "MAPI", "198.51.100.4", True, 1),
        ("alice", "MAPI", "198.51.100.4", True, 2),
        ("alice", "MAPI", "203.0.113.9", True, 1),
        ("bob", "MAPI", "198.51.100.4", False, 2),
    ]


async def test_a_window_of_zero_stores_every_report_on_its_own(
    gql: GraphQLClient,
    gateway: str,
    example: Domain,
    make: Factory,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(settings, "login_event_coalesce_seconds", 0)
    for minutes in (0, 0, 1):
        await gql.data(REPORT, reported("alice@example.com", minutes), token=gateway)

    events = await history(gql, make, example)

    assert [e["count"] for e in events] == [1, 1, 1]


async def test_gateway_tokens_are_shown_once_stored_as_hashes_and_audited(
    gql: GraphQLClient, make: Factory
) -> None:
    root = await make.token_for(await make.system_admin())

    data = await gql.data(CREATE_TOKEN, {"name": "MAPI-Frontend-1"}, token=root)

    token = data["createGatewayToken"]["token"]
    assert token.startswith("mgw_") and len(token) > 40
    row = await GatewayToken.get()
    assert (row.name, row.token_hash, row.created_by) == (
        "mapi-frontend-1",
        token_digest(token),
        "root",
    )
    assert token not in str(await GatewayToken.all().values())
    entry = await AuditEntry.get()
    assert (entry.action, entry.actor, entry.target, entry.domain_id) == (
        AuditAction.GATEWAY_TOKEN_CREATED,
        "root",
        "mapi-frontend-1",
        None,
    )
    viewer = await gql.data("{ viewer { username role domain permissions } }", token=token)
    assert viewer["viewer"] == {
        "username": "mapi-frontend-1",
        "role": "GATEWAY",
        "domain": None,
        "permissions": [],
    }


@pytest.mark.parametrize(
    ("name", "code"), [("mapi-frontend-1", "ALREADY_EXISTS"), ("no spaces", "INVALID_INPUT")]
)
async def test_a_gateway_token_name_must_be_valid_and_new(
    gql: GraphQLClient, make: Factory, name: str, code: str
) -> None:
    root = await make.token_for(await make.system_admin())
    await make.gateway("mapi-frontend-1")
    before = await GatewayToken.all().count(), await AuditEntry.all().count()

    data = await gql.data(CREATE_TOKEN, {"name": name}, token=root)

    assert data["createGatewayToken"]["token"] is None
    assert [(e["code"], e["field"]) for e in data["createGatewayToken"]["userErrors"]] == [
        (code, ["input", "name"])
    ]
    assert (await GatewayToken.all().count(), await AuditEntry.all().count()) == before


async def test_a_revoked_gateway_token_stops_working_once_its_cache_entry_expires(
    make: Factory, settings: Settings
) -> None:
    token = await make.gateway("ews-frontend")
    cached = Authenticator(
        settings.model_copy(update={"gateway_token_cache_seconds": 30}),
        gateways.gateway_principal,
        sign_ins.still_allowed,
    )
    uncached = Authenticator(
        settings.model_copy(update={"gateway_token_cache_seconds": 0}),
        gateways.gateway_principal,
        sign_ins.still_allowed,
    )
    assert (await cached.principal(token)).username == "ews-frontend"
    assert (await uncached.principal(token)).username == "ews-frontend"

    assert await gateways.revoke_gateway_token(actor="ops", name="ews-frontend") is True

    assert (await cached.principal(token)).username == "ews-frontend"  # within its 30 s
    with pytest.raises(Unauthenticated):
        await uncached.principal(token)
    assert await gateways.revoke_gateway_token(actor="ops", name="ews-frontend") is False
    assert await AuditEntry.filter(action=AuditAction.GATEWAY_TOKEN_REVOKED).count() == 1


async def test_an_unknown_gateway_token_is_unauthenticated(gql: GraphQLClient) -> None:
    response = await gql.http.post(
        "/graphql",
        json={"query": REPORT, "variables": {"email": "a@example.com", "protocol": "MAPI"}},
        headers={"Authorization": "Bearer mgw_not-a-real-token"},
    )

    assert response.status_code == 401
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_the_login_history_is_newest_first_paged_filtered_and_scoped(
    gql: GraphQLClient, gateway: str, make: Factory, example: Domain
) -> None:
    other = await make.domain("other.org")
    await make.account(other, "alice", enabled=True)
    admin = await make.token_for(await make.account(example, "admin", admin=True))
    for email, protocol, minutes in [
        ("alice@example.com", "MAPI", 1),
        ("bob@example.com", "EWS", 3),
        ("alice@example.com", "EWS", 2),
        ("alice@other.org", "MAPI", 4),
    ]:
        await gql.data(
            REPORT,
            {"email": email, "protocol": protocol, "at": iso(at(minutes))},
            token=gateway,
        )

    first = await gql.data(EVENTS, {"first": 2}, token=admin)
    rest = await gql.data(
        EVENTS,
        {"first": 2, "after": first["mapiEwsLoginEvents"]["pageInfo"]["endCursor"]},
        token=admin,
    )
    alice = await gql.data(EVENTS, {"username": "alice@example.com"}, token=admin)

    page = first["mapiEwsLoginEvents"]
    assert page["totalCount"] == 3
    assert page["pageInfo"]["hasNextPage"] is True
    nodes = [e["node"] for e in page["edges"] + rest["mapiEwsLoginEvents"]["edges"]]
    assert [(n["emailAddress"], n["protocol"], n["allowed"]) for n in nodes] == [
        ("bob@example.com", "EWS", False),
        ("alice@example.com", "EWS", True),
        ("alice@example.com", "MAPI", True),
    ]
    assert nodes[1]["occurredAt"] == iso(at(2))
    # `account` is the account as it stands now: its last login is the newest one.
    assert nodes[2]["account"] == {
        "username": "alice",
        "lastLogin": iso(at(2)),
        "lastLoginProtocol": "EWS",
    }
    assert rest["mapiEwsLoginEvents"]["pageInfo"]["hasNextPage"] is False
    assert [e["node"]["protocol"] for e in alice["mapiEwsLoginEvents"]["edges"]] == ["EWS", "MAPI"]
    refused = await gql.post(EVENTS, {"domain": "other.org"}, token=admin)
    assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN"


HISTORY_ONLY = "query($n: Int) { mapiEwsLoginEvents(first: $n) { edges { node { username account { username } } } } }"


async def test_the_login_history_costs_two_statements_and_a_count_only_when_asked(
    gql: GraphQLClient, gateway: str, example: Domain, make: Factory, sql: StatementCounter
) -> None:
    admin = await make.token_for(await make.account(example, "admin", admin=True))
    for minutes in range(12):
        await gql.data(
            REPORT,
            {"email": "alice@example.com", "protocol": "MAPI", "at": iso(at(minutes))},
            token=gateway,
        )
    counts = []
    for query in (HISTORY_ONLY, EVENTS):
        for size in (1, 10):
            sql.statements.clear()
            await gql.data(query, {"n": size, "first": size}, token=admin)
            counts.append(len(sql.statements))

    # The page and the accounts it names; a COUNT on top only when totalCount is selected.
    assert counts == [2, 2, 3, 3]


async def test_an_event_of_a_deleted_account_keeps_its_name_and_has_no_account(
    gql: GraphQLClient, gateway: str, example: Domain, make: Factory
) -> None:
    admin = await make.token_for(await make.account(example, "admin", admin=True))
    await gql.data(REPORT, {"email": "bob@example.com", "protocol": "EWS"}, token=gateway)
    await Account.filter(username="bob").delete()

    data = await gql.data(EVENTS, {}, token=admin)

    node = data["mapiEwsLoginEvents"]["edges"][0]["node"]
    assert (node["emailAddress"], node["account"]) == ("bob@example.com", None)


async def test_pruning_deletes_only_events_older_than_the_retention(
    gql: GraphQLClient, gateway: str, example: Domain
) -> None:
    now = datetime.now(UTC)
    for age in (200, 100, 1):
        moment = now - timedelta(days=age)
        await gql.data(
            REPORT,
            {"email": "alice@example.com", "protocol": "MAPI", "at": iso(moment)},
            token=gateway,
        )

    pruned = await login_history.prune_login_events(older_than=timedelta(days=90))

    assert pruned.deleted == 2  # no day of theirs has a partition (PostgreSQL): both deleted
    remaining = await LoginEvent.all().values_list("occurred_at", flat=True)
    assert [round((now - moment).total_seconds() / 86400) for moment in remaining] == [1]
    assert await columns("alice") != (None, None, None, None)  # accounts keep their last login


async def test_unknown_gateway_tokens_from_one_address_stop_costing_lookups(
    make: Factory, settings: Settings, sql: StatementCounter
) -> None:
    real = await make.gateway("ews-frontend")
    authenticator = Authenticator(settings, gateways.gateway_principal, sign_ins.still_allowed)
    await authenticator.principal(real, address="198.51.100.9")  # a gateway at work, cached
    for attempt in range(20):
        with pytest.raises(Unauthenticated, match="unknown or revoked"):
            await authenticator.principal(f"mgw_guess{attempt}", address="198.51.100.9")
    sql.statements.clear()

    with pytest.raises(Unauthenticated, match="Too many unknown gateway tokens"):
        await authenticator.principal("mgw_guess-more", address="198.51.100.9")
    refused_cost = len(sql.statements)
    # Another address, and tokens verified already, are not held up.
    with pytest.raises(Unauthenticated, match="unknown or revoked"):
        await authenticator.principal("mgw_guess-more", address="203.0.113.5")
    known = await authenticator.principal(real, address="198.51.100.9")

    assert refused_cost == 0
    assert known.username == "ews-frontend"


async def test_access_tokens_are_checked_only_after_their_domain_changed(
    settings: Settings,
) -> None:
    asked: list[int] = []
    removed: set[int] = set()

    async def standing(principal: Principal) -> bool:
        asked.append(principal.subject_id)
        return principal.subject_id not in removed

    authenticator = Authenticator(settings, gateways.gateway_principal, standing)

    def token(subject: int, domain: int) -> str:
        principal = Principal(
            role=Role.DOMAIN_ADMIN, subject_id=subject, username=f"a{subject}@d", domain_id=domain
        )
        lifetime = timedelta(minutes=settings.access_token_minutes)
        return issue_access_token(principal, key=settings.signing_key, lifetime=lifetime)[0]

    alice, bob, carol = token(1, 10), token(2, 10), token(3, 20)
    for each in (alice, bob, carol):
        await authenticator.principal(each)
    assert asked == []  # by signature alone

    removed.add(1)
    authenticator.forget(10)
    with pytest.raises(Unauthenticated, match="Sign in again"):
        await authenticator.principal(alice)
    for _ in range(3):
        await authenticator.principal(bob)
        await authenticator.principal(carol)
    assert asked == [1, 2]  # the changed domain's tokens, each once; not the other domain's

    authenticator.forget_all()  # events may have been lost: every older token, once
    await authenticator.principal(carol)
    await authenticator.principal(carol)
    assert asked == [1, 2, 3]
