"""mapiEwsClients at hosting scale: on PostgreSQL the clients of logins are rolled up as they
become final (api/services/client_rollup.py), and the answer must stay exactly what a GROUP BY
over login_event gives, through late reports, stale days, re-rolls and retention. SQLite answers
from login_event itself: the same comparisons hold there trivially, the roll-up does nothing."""

import asyncio
import random
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta

import pytest

from api.db import connection, is_sqlite
from api.models import Domain, LoginEvent, LoginRefusal, MailProtocol
from api.services import client_rollup, login_history, login_partitions
from api.services.client_access import CLIENTS_FROM_EVENTS, MAX_CLIENTS
from tests.conftest import Factory, GraphQLClient

CLIENTS = """
query($days: Int!) {
  mapiEwsClients(days: $days) {
    clientName protocol accounts logins refusedLogins lastSeenAt allowedNow
  }
}
"""
REPORT = """
mutation($e: String!, $at: DateTime, $c: String) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: EWS, occurredAt: $at, clientName: $c}) {
    allowed
  }
}
"""
COALESCE = timedelta(minutes=5)
NAMES = [None, "Microsoft Outlook 16.0.17928", "eM Client 9.2", "Apple Mail 17"]
USERS = [f"user{n}" for n in range(25)]


def _today() -> date:
    return datetime.now(UTC).date()


async def _expected(domain: Domain, days: int) -> list[tuple[object, ...]]:
    """The answer from login_event itself, the definition the roll-up must match."""
    since = datetime.combine(_today() - timedelta(days=days), time(), tzinfo=UTC)
    conn = connection()
    sql = CLIENTS_FROM_EVENTS.format(p="?" if is_sqlite(conn) else "$")
    rows = await conn.execute_query_dict(sql, [domain.id, since, MAX_CLIENTS])
    return _ordered(
        (
            row["client_name"],
            row["protocol"],
            int(row["accounts"]),
            int(row["logins"]),
            int(row["refused"]),
            _utc(row["last_seen"]),
        )
        for row in rows
    )


def _ordered(rows: Iterable[tuple[object, ...]]) -> list[tuple[object, ...]]:
    return sorted(rows, key=lambda row: (str(row[0] or ""), str(row[1])))


def _utc(value: object) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    assert isinstance(moment, datetime)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def _answered(gql: GraphQLClient, token: str, days: int) -> list[tuple[object, ...]]:
    data = await gql.data(CLIENTS, {"days": days}, token=token)
    return _ordered(
        (
            row["clientName"],
            row["protocol"],
            row["accounts"],
            row["logins"],
            row["refusedLogins"],
            datetime.fromisoformat(row["lastSeenAt"]),
        )
        for row in data["mapiEwsClients"]
    )


async def _same(gql: GraphQLClient, token: str, domain: Domain) -> None:
    for days in (1, 3, 10, 35):
        assert await _answered(gql, token, days) == await _expected(domain, days), days


def _events(domain: Domain, count: int, seed: int) -> list[LoginEvent]:
    """Events over the last 40 days, some repeated (count), some refused, some unnamed."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    events = []
    for _ in range(count):
        at = now - timedelta(seconds=rng.randrange(40 * 86_400))
        allowed = rng.random() > 0.2
        events.append(
            LoginEvent(
                domain_id=domain.id,
                username=rng.choice(USERS),
                protocol=rng.choice([MailProtocol.MAPI, MailProtocol.EWS]),
                occurred_at=at,
                allowed=allowed,
                refusal=None if allowed else LoginRefusal.CLIENT_NOT_ALLOWED,
                client_name=rng.choice(NAMES),
                count=rng.choice([1, 1, 2, 5]),
                last_occurred_at=at + timedelta(seconds=rng.randrange(300)),
            )
        )
    return events


@pytest.fixture
async def busy(make: Factory) -> tuple[Domain, str]:
    """A domain with 40 days of logins (another domain's alongside), and its administrator."""
    if login_partitions.partitioned():
        await login_partitions.create_partitions([_today() - timedelta(days=n) for n in range(42)])
    domain = await make.domain()
    other = await make.domain("other.example")
    await LoginEvent.bulk_create(_events(domain, 1_500, seed=1) + _events(other, 300, seed=2))
    admin = await make.account(domain, "admin", admin=True)
    return domain, await make.token_for(admin)


async def test_the_rolled_up_answer_is_the_answer_from_the_events(
    gql: GraphQLClient, busy: tuple[Domain, str]
) -> None:
    domain, token = busy
    await _same(gql, token, domain)  # nothing rolled up yet: all from login_event

    rolled = await client_rollup.roll_up(COALESCE)

    if login_partitions.partitioned():
        # Every day of the last 90 up to the last final minutes, today's in part.
        assert len(rolled.days) == client_rollup.MAX_DAYS + 1
        assert rolled.days[-1] == (datetime.now(UTC) - COALESCE - client_rollup.ROLL_MARGIN).date()
    else:
        assert rolled.days == []
    await _same(gql, token, domain)
    # A second sweep finds nothing new to roll up.
    assert (await client_rollup.roll_up(COALESCE)).days in ([], [_today()])


async def test_a_late_report_is_counted_at_once_and_rolled_up_again_later(
    gql: GraphQLClient, make: Factory, busy: tuple[Domain, str]
) -> None:
    domain, token = busy
    await make.account(domain, "late", enabled=True)
    await make.account(domain, "user1", enabled=True)
    gateway = await make.gateway()
    await client_rollup.roll_up(COALESCE)
    three_days_ago = datetime.now(UTC) - timedelta(days=3)

    # A gateway reports an old login (a new account, and a known one with a new client), after
    # its day was rolled up: that day is read from login_event at once.
    for who, client in (("late", "Late Client 1.0"), ("user1", "Late Client 1.0")):
        await gql.data(
            REPORT,
            {"e": f"{who}@example.com", "at": three_days_ago.isoformat(), "c": client},
            token=gateway,
        )
    await gql.data(REPORT, {"e": "late@example.com", "c": "Late Client 1.0"}, token=gateway)

    await _same(gql, token, domain)
    if login_partitions.partitioned():
        stale = await connection().execute_query_dict(
            "SELECT day FROM login_rollup_stale WHERE domain_id = $1", [domain.id]
        )
        assert {row["day"] for row in stale} == {three_days_ago.date()}
        # Within ROLL_MARGIN of the last late report the day stays stale; after it, it is
        # rolled up again, whole, and read from the roll-up.
        assert (await client_rollup.roll_up(COALESCE)).stale == []
        later = datetime.now(UTC) + client_rollup.ROLL_MARGIN
        again = await client_rollup.roll_up(COALESCE, now=later)
        assert again.stale == [(domain.id, three_days_ago.date())]
    await _same(gql, token, domain)
    late = [row for row in await _answered(gql, token, 10) if row[0] == "Late Client 1.0"]
    assert [row[2:4] for row in late] == [(2, 3)]  # two accounts, three logins


async def test_a_report_of_now_marks_nothing_stale() -> None:
    now = datetime.now(UTC)
    assert client_rollup.stale_days([("example.com", now)], COALESCE, now) == set()
    old = now - client_rollup.LATE - timedelta(seconds=1)
    assert client_rollup.stale_days([("example.com", old)], COALESCE, now) == {
        ("example.com", old.date()),
        ("example.com", (old - COALESCE).date()),
    }


async def test_retention_forgets_what_it_prunes_and_the_answer_stays_exact(
    gql: GraphQLClient, busy: tuple[Domain, str]
) -> None:
    domain, token = busy
    await client_rollup.roll_up(COALESCE)

    await login_history.prune_login_events(older_than=timedelta(days=20))

    await _same(gql, token, domain)
    await client_rollup.roll_up(COALESCE)
    await _same(gql, token, domain)
    if login_partitions.partitioned():
        # No username is kept for a day that retention pruned whole.
        rows = await connection().execute_query_dict(
            "SELECT min(last_day) AS first FROM login_client_account"
        )
        assert rows[0]["first"] >= _today() - timedelta(days=20)


async def test_one_process_rolls_up_at_a_time(gql: GraphQLClient, busy: tuple[Domain, str]) -> None:
    """Two sweeps at once (two processes): each day is rolled up once, the answer stays exact."""
    first, second = await asyncio.gather(
        client_rollup.roll_up(COALESCE), client_rollup.roll_up(COALESCE)
    )

    domain, token = busy
    await _same(gql, token, domain)
    if login_partitions.partitioned():
        # Whole days once each; today's final minutes perhaps by both, one after the other.
        whole = [day for day in first.days + second.days if day != _today()]
        assert sorted(whole) == sorted(set(whole))
        assert len(whole) == client_rollup.MAX_DAYS
