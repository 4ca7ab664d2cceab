"""recordProtocolLogins: up to 500 reports in one request, each answered on its own, in order,
in a constant number of SQL statements on PostgreSQL."""

import asyncio
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import orjson
import pytest

from api import db
from api.events import EventBus, Topic
from api.models import Account, Domain, LoginEvent, MailProtocol, ProtocolSession
from api.services import logins
from api.services.event_payloads import AccountSnapshot
from api.services.login_sql import PG_BATCH
from api.settings import Settings
from tests.conftest import Factory, GraphQLClient, StatementCounter, _asyncpg_dsn

BATCH = """
mutation($reports: [RecordProtocolLoginInput!]!) {
  recordProtocolLogins(input: {reports: $reports}) {
    results { allowed userErrors { field code message } }
    userErrors { field code message }
  }
}
"""
SINGLE = """
mutation($r: RecordProtocolLoginInput!) {
  recordProtocolLogin(input: $r) { allowed userErrors { field code message } }
}
"""
START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def report(email: str, minutes: float = 0, **more: object) -> dict[str, object]:
    moment = START + timedelta(minutes=minutes)
    return {"emailAddress": email, "protocol": "MAPI", "occurredAt": moment.isoformat(), **more}


@pytest.fixture
async def example(make: Factory) -> Domain:
    domain = await make.domain("example.com")
    for name in ("alice", "carol"):
        await make.account(domain, name, enabled=True)
    await make.account(domain, "bob")
    return domain


async def state() -> list[tuple[object, ...]]:
    """Everything a report writes, in a comparable form."""
    accounts = (
        await Account.all()
        .order_by("username")
        .values_list(
            "username", "last_login", "last_login_protocol", "last_mapi_login", "last_ews_login"
        )
    )
    events = (
        await LoginEvent.all()
        .order_by("username", "occurred_at", "protocol")
        .values_list(
            "username",
            "protocol",
            "occurred_at",
            "last_occurred_at",
            "client_address",
            "allowed",
            "count",
        )
    )
    sessions = (
        await ProtocolSession.all()
        .order_by("session_id")
        .values_list("session_id", "username", "protocol", "started_at", "end_reason")
    )
    return [*accounts, *events, *sessions]


MIXED = [
    report("alice@example.com", 0, sessionId="s-1", clientName="Outlook"),
    report("bob@example.com", 1),  # refused: no MAPI/EWS
    report("not an address", 2),  # bad: its own error
    report("alice@example.com", 2, sessionId="s-1", clientName="Outlook"),  # a repeat
    report("carol@example.com", 3, protocol="EWS", clientAddress="203.0.113.9"),
    report("nobody@example.com", 4),  # no such account
    report("alice@example.com", 30, protocol="EWS"),
    report("carol@example.com", -10, protocol="EWS", clientAddress="203.0.113.9"),  # late
]


async def test_each_report_is_answered_in_order_and_a_bad_one_holds_up_none(
    gql: GraphQLClient, make: Factory, example: Domain
) -> None:
    gateway = await make.gateway()

    data = await gql.data(BATCH, {"reports": MIXED}, token=gateway)

    payload = data["recordProtocolLogins"]
    assert payload["userErrors"] == []
    answers = [
        (r["allowed"], [(e["field"], e["code"]) for e in r["userErrors"]])
        for r in payload["results"]
    ]
    assert answers == [
        (True, []),
        (False, []),
        (False, [(["input", "reports", "2", "emailAddress"], "INVALID_INPUT")]),
        (True, []),
        (True, []),
        (False, [(["input", "reports", "5", "emailAddress"], "NOT_FOUND")]),
        (True, []),
        (True, []),
    ]


async def test_a_batch_writes_what_the_same_reports_sent_one_by_one_write(
    gql: GraphQLClient, make: Factory, example: Domain
) -> None:
    gateway = await make.gateway("batch")
    await gql.data(BATCH, {"reports": MIXED}, token=gateway)
    batched = await state()

    await LoginEvent.all().delete()
    await ProtocolSession.all().delete()
    await Account.all().update(
        last_login=None, last_login_protocol=None, last_mapi_login=None, last_ews_login=None
    )
    single = await make.gateway("single")
    answers = [
        (await gql.data(SINGLE, {"r": r}, token=single))["recordProtocolLogin"]["allowed"]
        for r in MIXED
    ]

    assert answers == [True, False, False, True, True, False, True, True]
    assert await state() == batched


async def test_a_batchs_repeats_are_counted_together_window_by_window(
    gql: GraphQLClient, make: Factory, example: Domain
) -> None:
    gateway = await make.gateway()
    await gql.data(SINGLE, {"r": report("alice@example.com", 0)}, token=gateway)
    minutes = [4, 1, 2, 6, 9, 12]  # out of order; the windows are 0-5, 6-11 and 12-

    await gql.data(
        BATCH, {"reports": [report("alice@example.com", m) for m in minutes]}, token=gateway
    )

    events = (
        await LoginEvent.all()
        .order_by("occurred_at")
        .values_list("occurred_at", "last_occurred_at", "count")
    )
    at = [START + timedelta(minutes=m) for m in (0, 4, 6, 9, 12)]
    assert events == [(at[0], at[1], 4), (at[2], at[3], 2), (at[4], at[4], 1)]


async def test_a_batch_is_a_constant_number_of_statements_on_postgresql(
    gql: GraphQLClient, make: Factory, sql: StatementCounter
) -> None:
    domain = await make.domain("example.com")
    await make.accounts(domain, 300, enabled=200)
    gateway = await make.gateway()
    await gql.data(SINGLE, {"r": report("user00000@example.com")}, token=gateway)  # token cached
    now = datetime.now(UTC)
    counts = []
    # Reports of the last minutes, then old ones (a gateway catching up): these first mark
    # their days stale for the clients' roll-up (api/services/client_rollup.py).
    for size, at in ((5, now), (300, now), (5, START), (300, START)):
        sql.statements.clear()
        users = [i * (300 // size) for i in range(size)]  # allowed and refused, either way
        reports = [
            {
                "emailAddress": f"user{u:05d}@example.com",
                "protocol": "MAPI",
                "occurredAt": (at - timedelta(seconds=u % 7)).isoformat(),
                "sessionId": f"s{size}-{u}-{at:%j}",
            }
            for u in users
        ]
        data = await gql.data(BATCH, {"reports": reports}, token=gateway)
        allowed = [r["allowed"] for r in data["recordProtocolLogins"]["results"]]
        assert allowed == [u < 200 for u in users]
        counts.append(len(sql.statements))

    if db.is_sqlite():
        assert counts[1] > counts[0]  # SQLite writes report by report
    else:
        # One statement, for 5 reports or 300; old ones one more (their days marked stale).
        assert counts == [1, 1, 2, 2]


@pytest.mark.parametrize(
    ("reports", "message"),
    [([], "at least one report"), ([report("alice@example.com")] * 501, "At most 500 reports")],
)
async def test_an_empty_or_too_long_batch_is_refused_whole(
    gql: GraphQLClient, make: Factory, example: Domain, reports: list[object], message: str
) -> None:
    gateway = await make.gateway()

    data = await gql.data(BATCH, {"reports": reports}, token=gateway)

    payload = data["recordProtocolLogins"]
    assert payload["results"] == []
    assert [(e["field"], e["code"]) for e in payload["userErrors"]] == [
        (["input", "reports"], "INVALID_INPUT")
    ]
    assert message in payload["userErrors"][0]["message"]
    assert await LoginEvent.all().count() == 0


async def test_only_gateways_may_send_batches(
    gql: GraphQLClient, make: Factory, example: Domain
) -> None:
    admin = await make.account(example, "admin", admin=True)

    result = await gql.post(
        BATCH, {"reports": [report("alice@example.com")]}, token=await make.token_for(admin)
    )

    assert [e["extensions"]["code"] for e in result["errors"]] == ["FORBIDDEN"]
    assert await LoginEvent.all().count() == 0


async def test_racing_batches_over_the_same_accounts_all_land(
    gql: GraphQLClient, make: Factory
) -> None:
    """Accounts are locked in id order: batches naming the same accounts in any order wait for
    each other instead of deadlocking, and every report is counted once."""
    domain = await make.domain("example.com")
    await make.accounts(domain, 20, enabled=20)
    gateway = await make.gateway()
    rng = random.Random(3)
    batches = []
    for _ in range(6):
        users = [rng.randrange(20) for _ in range(50)]
        batches.append([report(f"user{u:05d}@example.com", rng.randrange(60)) for u in users])

    results = await asyncio.gather(
        *(gql.data(BATCH, {"reports": b}, token=gateway) for b in batches)
    )

    assert all(r["allowed"] for data in results for r in data["recordProtocolLogins"]["results"])
    assert sum(await LoginEvent.all().values_list("count", flat=True)) == 300
    newest = max(datetime.fromisoformat(str(r["occurredAt"])) for b in batches for r in b)
    assert max(await Account.all().values_list("last_login", flat=True)) == newest


async def test_a_batch_naming_no_account_answers_each_with_not_found(
    gql: GraphQLClient, make: Factory, example: Domain
) -> None:
    gateway = await make.gateway()
    reports = [report("nobody@example.com"), report("noone@example.com", sessionId="s")]

    data = await gql.data(BATCH, {"reports": reports}, token=gateway)

    results = data["recordProtocolLogins"]["results"]
    assert [[e["code"] for e in r["userErrors"]] for r in results] == [["NOT_FOUND"]] * 2
    assert await LoginEvent.all().count() == 0


async def test_a_batchs_events_carry_its_accounts_as_tortoise_reads_them(
    make: Factory, example: Domain
) -> None:
    """A batch reads its accounts from its statement's answer, not through Tortoise: each event
    carries its account as the batch left it, exactly as Tortoise reads that row afterwards, to
    the time zone and the protocol's enum."""
    alice = await Account.get(username="alice")
    alice.name, alice.is_domain_admin = "Alice A.", True
    alice.last_login = alice.last_ews_login = START - timedelta(days=3)
    await alice.save()
    reports = [
        logins.ReportInput(
            email_address=str(r["emailAddress"]),
            protocol=MailProtocol(str(r.get("protocol", "MAPI"))),
            client_address=cast(str | None, r.get("clientAddress")),
            occurred_at=datetime.fromisoformat(str(r["occurredAt"])),
            client_name=cast(str | None, r.get("clientName")),
        )
        for r in MIXED
    ]
    bus = EventBus(1000)
    async with bus.subscribe(Topic.LOGINS, example.id) as events:
        await logins.record_logins(events=bus, reports=reports)
        received = [(await anext(events)).payload for _ in range(6)]  # six name an account

    # As dashboards receive them (JSON). PostgreSQL's every event carries its account as the
    # whole batch left it; SQLite writes report by report, so there its last one does.
    checked = (
        received if not db.is_sqlite() else list({e["username"]: e for e in received}.values())
    )
    for event in checked:
        account = await Account.get(username=event["username"])
        expected = AccountSnapshot.of(account, "example.com", active_sessions=0)
        assert event["account"] == orjson.loads(orjson.dumps(expected))
    first = next(e["account"] for e in checked if e["username"] == "alice")
    assert (first["name"], first["is_domain_admin"], first["last_login_protocol"]) == (
        "Alice A.",
        True,
        "EWS",
    )
    assert first["last_ews_login"] == "2026-11-01T09:30:00+00:00"


async def test_a_batchs_text_reaches_the_database_as_sent(
    gql: GraphQLClient, make: Factory, example: Domain
) -> None:
    """The reports travel to PostgreSQL as one JSON text: quotes, backslashes and any Unicode
    arrive as they were sent."""
    gateway = await make.gateway()
    name = 'Outlook "16.0" \\ Mac \u2028 ünïcödé 😀'
    reports = [
        report("alice@example.com", 0, clientName=name, clientAddress="2001:db8::1", sessionId=name)
    ]

    data = await gql.data(BATCH, {"reports": reports}, token=gateway)

    assert data["recordProtocolLogins"]["results"] == [{"allowed": True, "userErrors": []}]
    assert await LoginEvent.all().values_list("client_name", "client_address") == [
        (name, "2001:db8::1")
    ]
    assert await ProtocolSession.all().values_list("session_id", "client_name") == [(name, name)]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def test_a_batch_reads_each_of_its_parts_once(
    gql: GraphQLClient, make: Factory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch statement's plan, run (EXPLAIN ANALYZE, rolled back) on a batch of 100: no
    part of it is read again per row of another (each CTE scanned once), which is what made a
    batch's time grow with its size squared, inside its row locks."""
    if db.is_sqlite():
        return  # SQLite writes report by report (the test above counts them)
    domain = await make.domain("example.com")
    await make.accounts(domain, 300, enabled=200)
    gateway = await make.gateway()
    conn = db.gateway_connection()
    original = conn.execute_query
    plans: list[Any] = []

    async def explained(query: str, values: list[Any] | None = None) -> Any:
        if query == PG_BATCH:
            raw = await asyncpg.connect(_asyncpg_dsn(settings.database_url))
            try:
                tx = raw.transaction()
                await tx.start()
                plans.append(
                    orjson.loads(
                        await raw.fetchval(
                            "EXPLAIN (ANALYZE, FORMAT JSON) " + query, *(values or [])
                        )
                    )
                )
                await tx.rollback()
            finally:
                await raw.close()
        return await original(query, values)

    monkeypatch.setattr(conn, "execute_query", explained)
    reports = [
        report(f"user{u * 3:05d}@example.com", u % 7, sessionId=f"p-{u}") for u in range(100)
    ]

    await gql.data(BATCH, {"reports": reports}, token=gateway)

    [[plan]] = plans
    scans = [n for n in _nodes(plan["Plan"]) if n["Node Type"] == "CTE Scan"]
    assert scans and all(n["Actual Loops"] <= 1 for n in scans), [
        (n["CTE Name"], n["Actual Loops"]) for n in scans if n["Actual Loops"] > 1
    ]
