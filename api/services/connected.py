"""Who is connected now: the open MAPI/EWS sessions of a domain or an account, read, counted and
described (with their gateway's name and their account as it stands) for lists and events."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.functions import Count
from tortoise.queryset import QuerySet

from api.events import Event, Topic
from api.models import Account, Domain, GatewayToken, ProtocolSession, SessionEndReason
from api.services import validation
from api.services.event_payloads import AccountSnapshot, SessionChanged, SessionSnapshot
from api.services.paging import PageRequest, SortSpec, Window, as_models, window
from api.services.tenancy import Tenant

_NEWEST_FIRST = SortSpec(column="started_at", descending=True, is_datetime=True)


# "A session is open": not told to end, and confirmed within its TTL. Written here once, for the
# ORM (open_now), for SQL statements (open_sql) and for a row in hand (is_open).


def open_now(now: datetime | None = None) -> Q:
    """Sessions that are open, as a filter."""
    return Q(end_reason__isnull=True, expires_at__gt=now or datetime.now(UTC))


def open_sql(now: str, table: str = "") -> str:
    """Sessions that are open, as SQL: `now` is the statement's placeholder for the time,
    `table` the name or alias that qualifies the columns, if any."""
    column = f"{table}." if table else ""
    return f"{column}end_reason IS NULL AND {column}expires_at > {now}"


def is_open(session: ProtocolSession, now: datetime | None = None) -> bool:
    """Whether this session, as read, is open."""
    return session.end_reason is None and session.expires_at > (now or datetime.now(UTC))


def session_changes(
    sessions: Iterable[Described], *, reason: SessionEndReason | None, at: datetime
) -> list[Event]:
    """A STARTED (reason None) or ENDED change per session, each to its session's domain."""
    return [
        Event(
            Topic.SESSION_CHANGES,
            session.domain_id,
            SessionChanged(session=session.snapshot, reason=reason, occurred_at=at),
        )
        for session in sessions
    ]


class Described:
    """A session row with what its snapshot needs, read in bulk by `describe`."""

    __slots__ = ("domain_id", "snapshot")

    def __init__(self, domain_id: int, snapshot: SessionSnapshot) -> None:
        self.domain_id = domain_id
        self.snapshot = snapshot

    @property
    def username(self) -> str:
        return self.snapshot.username

    @property
    def domain(self) -> str:
        return self.snapshot.domain


async def describe(rows: Sequence[ProtocolSession]) -> list[Described]:
    """Snapshots of `rows` with their gateway's name and their account as it stands now: three
    reads, whatever the number of rows (none for no rows); a fourth for the domain's name only
    when a row's account was removed."""
    if not rows:
        return []
    account_ids = {row.account_id for row in rows if row.account_id is not None}
    accounts = {
        account.id: account
        for account in await Account.filter(id__in=account_ids).select_related("domain")
    }
    counts = await open_counts(account_ids)
    gateways = dict(
        await GatewayToken.filter(id__in={row.gateway_id for row in rows}).values_list("id", "name")
    )
    orphans = {row.domain_id for row in rows if row.account_id not in accounts}
    names: dict[int, str] = (
        dict(await Domain.filter(id__in=orphans).values_list("id", "name")) if orphans else {}
    )
    described = []
    for row in rows:
        account = accounts.get(row.account_id) if row.account_id is not None else None
        domain = account.domain.name if account is not None else names.get(row.domain_id, "")
        described.append(
            Described(
                row.domain_id,
                snapshot_of(
                    row,
                    domain=domain,
                    gateway=str(gateways.get(row.gateway_id, "")),
                    account=(
                        AccountSnapshot.of(
                            account, domain, active_sessions=counts.get(account.id, 0)
                        )
                        if account is not None
                        else None
                    ),
                ),
            )
        )
    return described


def snapshot_of(
    row: ProtocolSession, *, domain: str, gateway: str, account: AccountSnapshot | None
) -> SessionSnapshot:
    return SessionSnapshot(
        id=row.id,
        session_id=row.session_id,
        domain=domain,
        username=row.username,
        protocol=row.protocol,
        client_address=row.client_address,
        client_name=row.client_name,
        gateway=gateway,
        started_at=row.started_at,
        last_seen_at=row.last_seen_at,
        account=account,
    )


async def open_counts(
    account_ids: Iterable[int], *, conn: BaseDBAsyncClient | None = None
) -> dict[int, int]:
    """Open sessions per account, for these accounts: one grouped read (none for no ids)."""
    ids = set(account_ids)
    if not ids:
        return {}
    queryset = ProtocolSession.filter(open_now(), account_id__in=ids)
    if conn is not None:
        queryset = queryset.using_db(conn)
    grouped = queryset.annotate(open=Count("id")).group_by("account_id")
    return {
        int(account_id): int(n) for account_id, n in await grouped.values_list("account_id", "open")
    }


def _listed(tenant: Tenant, username: str | None) -> QuerySet[ProtocolSession]:
    queryset = ProtocolSession.filter(open_now(), domain_id=tenant.domain_id)
    if (name := validation.username_argument(username, tenant.domain)) is not None:
        queryset = queryset.filter(username=name)
    return queryset


async def open_sessions(
    *,
    tenant: Tenant,
    username: str | None,
    request: PageRequest,
    default_size: int,
    max_size: int,
) -> tuple[Window[ProtocolSession], list[Described]]:
    """A page of the domain's open sessions, newest first, each described."""
    page = await window(
        _listed(tenant, username),
        as_models,
        spec=_NEWEST_FIRST,
        request=request,
        default_size=default_size,
        max_size=max_size,
    )
    return page, await describe(page.items)


async def count_open_sessions(*, tenant: Tenant, username: str | None) -> int:
    return await _listed(tenant, username).count()
