"""The mail server's accounts mirrored here: created, updated and renamed in batches.

The mail server owns the accounts. `upsert_accounts` applies a batch of its records to one domain,
all or nothing, under the domain's lock (the lock every change of its seats takes): a new
username is created (with no password: it cannot sign in here until one is set), a known one
updated, and a known external id under a new username renamed, which keeps the account's row and
so its seat, protocols, sessions, last logins, history and audit. Nothing is written for a record
that changes nothing. Removal is api/services/removals.py; the whole-domain sync
(`mapi-ews-admin sync-accounts`) is api/sync_accounts.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from api.db import is_sqlite
from api.errors import UserError, UserErrorCode, UserErrors
from api.events import EventBus
from api.models import Account, AuditAction, Domain, ProtocolSession
from api.services import audit, domains, sign_ins, validation

MAX_RECORDS = 500
MAX_EXTERNAL_ID = 255
_FIELD = ("input", "accounts")


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account as the mail server has it. `is_domain_admin` None: unchanged (False when
    new)."""

    username: str
    name: str | None = None
    external_id: str | None = None
    is_domain_admin: bool | None = None


@dataclass(slots=True)
class Upserted:
    """What a batch did, record by record."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    renamed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # With `park`: accounts whose username a record took (index of the record, the account as it
    # was), now under a name no username can take until a later batch renames them.
    parked: list[tuple[int, Parked]] = field(default_factory=list)
    # An account became, or stopped being, a domain administrator: its access tokens no longer
    # stand (api.services.sign_ins.principals_changed, once committed).
    roles_changed: bool = False


def external_id(value: str | None) -> str | None:
    """The mail server's id as given, trimmed; None for none."""
    if value is None:
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("An externalId must not contain control characters.")
    normal = value.strip()
    if not normal:
        raise ValueError("An externalId is 1 to 255 characters; leave it out for none.")
    if len(normal) > MAX_EXTERNAL_ID:
        raise ValueError(f"An externalId is at most {MAX_EXTERNAL_ID} characters.")
    return normal


class RecordError(ValueError):
    """A record the mail server sent that cannot be applied: which field, and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_record(record: AccountRecord, *, domain: str) -> AccountRecord:
    """The record, checked and normalized (username lower-case, name and externalId trimmed);
    RecordError for a bad field."""
    try:
        username = validation.username_in_domain(record.username, domain)
    except ValueError as error:
        raise RecordError("username", str(error)) from None
    try:
        name = validation.display_name(record.name)
    except ValueError as error:
        raise RecordError("name", str(error)) from None
    try:
        given = external_id(record.external_id)
    except ValueError as error:
        raise RecordError("externalId", str(error)) from None
    return AccountRecord(username, name, given, record.is_domain_admin)


def parse_records(records: Sequence[AccountRecord], *, domain: str) -> list[AccountRecord]:
    """The records, checked and normalized; UserErrors pointing at each bad one (and at a
    username or externalId that a batch names twice)."""
    if not records:
        raise UserErrors([UserError(UserErrorCode.INVALID_INPUT, "Send at least one.", _FIELD)])
    if len(records) > MAX_RECORDS:
        message = f"At most {MAX_RECORDS} accounts at once; {len(records)} were given."
        raise UserErrors([UserError(UserErrorCode.INVALID_INPUT, message, _FIELD)])
    parsed: list[AccountRecord] = []
    problems: list[UserError] = []
    usernames: set[str] = set()
    ids: set[str] = set()
    for index, given in enumerate(records):
        at = (*_FIELD, str(index))
        try:
            record = check_record(given, domain=domain)
        except RecordError as error:
            problems.append(UserError(UserErrorCode.INVALID_INPUT, str(error), (*at, error.field)))
            continue
        if record.username in usernames:
            message = f"{record.username} is named twice in this batch."
            problems.append(UserError(UserErrorCode.INVALID_INPUT, message, (*at, "username")))
        if record.external_id is not None and record.external_id in ids:
            message = f"externalId {record.external_id[:80]!r} is named twice in this batch."
            problems.append(UserError(UserErrorCode.INVALID_INPUT, message, (*at, "externalId")))
        usernames.add(record.username)
        if record.external_id is not None:
            ids.add(record.external_id)
        parsed.append(record)
    if problems:
        raise UserErrors(problems)
    return parsed


async def find_domain(conn: BaseDBAsyncClient, name: str) -> Domain:
    """The named domain, if it exists and was not removed, locked for a change of its accounts;
    UserErrors (NOT_FOUND at input.domain) otherwise."""
    try:
        normal = validation.domain_name(name)
    except ValueError as error:
        raise UserErrors(
            [UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", "domain"))]
        ) from None
    found = await Domain.filter(name=normal, removed_at=None).using_db(conn).only("id").first()
    if found is None:
        raise UserErrors(
            [UserError(UserErrorCode.NOT_FOUND, f"No domain {normal}.", ("input", "domain"))]
        )
    return await domains.lock_domain(conn, found.id)


async def upsert_accounts(
    *, events: EventBus, actor: str, domain: str, records: Sequence[AccountRecord]
) -> Upserted:
    """Apply the mail server's records to the domain: all of them, or none (UserErrors)."""
    async with in_transaction("default") as conn:
        row = await find_domain(conn, domain)
        done = await apply_records(conn, row, parse_records(records, domain=row.name), actor=actor)
    if done.roles_changed:
        await sign_ins.principals_changed(events, row.id)
    return done


async def apply_records(
    conn: BaseDBAsyncClient,
    domain: Domain,
    records: Sequence[AccountRecord],
    *,
    actor: str,
    park: bool = False,
) -> Upserted:
    """Inside the caller's transaction, under the domain's lock: each record created, updated or
    renamed, one audit entry each; UserErrors for a username that belongs to another account.

    With `park` (a sync, which reads the whole list in several batches), such an account is
    instead moved under a parking name (`parking_name`) for a later batch to rename: names can
    then be swapped between accounts however far apart the file lists them. The caller refuses
    the whole list if one is still parked at its end (`Upserted.parked`)."""
    known = await _known(conn, domain.id, records)
    by_name = {a.username: a for a in known}
    by_id: dict[str | None, _Known] = {a.external_id: a for a in known if a.external_id}
    plan = _plan(records, by_name, by_id, domain.name, park=park)
    now = datetime.now(UTC)
    done = Upserted()
    # Renames first, through a name no username can take, so that names may be swapped or
    # passed along a chain in one batch without meeting the (domain, username) key.
    renames = [(account, record) for account, record in plan.renamed]
    for account in [*(a for a, _ in renames), *(a for _, a in plan.parked)]:
        await Account.filter(id=account.id).using_db(conn).update(username=parking_name(account.id))
    done.parked = [(index, Parked(a.id, a.username, a.external_id)) for index, a in plan.parked]
    for account, record in renames:
        await (
            Account.filter(id=account.id)
            .using_db(conn)
            .update(username=record.username, **_changes(account, record))
        )
        # Its sessions, told to end or open, are listed under the name it has now.
        await (
            ProtocolSession.filter(account_id=account.id)
            .using_db(conn)
            .update(username=record.username)
        )
        done.renamed.append(f"{record.username}@{domain.name}")
    for account, record in plan.updated:
        await Account.filter(id=account.id).using_db(conn).update(**_changes(account, record))
        done.updated.append(f"{record.username}@{domain.name}")
    done.roles_changed = any(
        "is_domain_admin" in _changes(account, record)
        for account, record in (*plan.updated, *plan.renamed)
    )
    if plan.created:
        await _create(conn, domain, plan.created, at=now)
        done.created = [f"{r.username}@{domain.name}" for r in plan.created]
    done.unchanged = [f"{r.username}@{domain.name}" for r in plan.unchanged]
    for action, targets in (
        (AuditAction.ACCOUNT_CREATED, done.created),
        (AuditAction.ACCOUNT_UPDATED, done.updated),
        (AuditAction.ACCOUNT_RENAMED, done.renamed),
    ):
        if targets:
            await audit.record(
                conn=conn, actor=actor, action=action, domain_id=domain.id, targets=targets, at=now
            )
    return done


async def _create(
    conn: BaseDBAsyncClient, domain: Domain, records: Sequence[AccountRecord], *, at: datetime
) -> None:
    """The new accounts, in one statement on PostgreSQL (and one run of its recency trigger)
    whatever their number, where Tortoise's bulk_create sends one per row; on SQLite one
    prepared statement run per row."""
    if is_sqlite(conn):
        await conn.execute_many(
            _CREATE_SQLITE,
            [
                [domain.id, r.username, r.name, r.external_id, bool(r.is_domain_admin), at]
                for r in records
            ],
        )
        return
    await conn.execute_query(
        _CREATE_POSTGRES,
        [
            domain.id,
            at,
            [r.username for r in records],
            [r.name for r in records],
            [r.external_id for r in records],
            [bool(r.is_domain_admin) for r in records],
        ],
    )


_CREATE_SQLITE = (
    "INSERT INTO account (domain_id, username, name, external_id, password_hash, "
    "is_domain_admin, mapi_ews_enabled, created_at) VALUES (?, ?, ?, ?, '', ?, false, ?)"
)
_CREATE_POSTGRES = (
    "INSERT INTO account (domain_id, username, name, external_id, password_hash, "
    "is_domain_admin, mapi_ews_enabled, created_at) SELECT $1, r.username, r.name, "
    "r.external_id, '', r.is_domain_admin, false, $2 FROM unnest($3::varchar[], "
    "$4::varchar[], $5::varchar[], $6::bool[]) AS r (username, name, external_id, "
    "is_domain_admin)"
)


def parking_name(account_id: int) -> str:
    """A name no username can take (usernames start with a letter or digit)."""
    return f"~{account_id}"


class Parked(NamedTuple):
    """An account whose username another account took in a sync, as it was."""

    id: int
    username: str
    external_id: str | None


class _Known(NamedTuple):
    """An account a record may name: the columns a record compares and changes."""

    id: int
    username: str
    name: str | None
    external_id: str | None
    is_domain_admin: bool


async def _known(
    conn: BaseDBAsyncClient, domain_id: int, records: Sequence[AccountRecord]
) -> list[_Known]:
    """The domain's accounts the records name, by username or by external id, in one read of
    plain rows (a sync reads a million: model objects cost more than the query)."""
    names = [r.username for r in records]
    ids = [r.external_id for r in records if r.external_id is not None]
    if is_sqlite(conn):
        rows = await conn.execute_query_dict(
            _KNOWN_SQLITE.format(
                names=", ".join("?" for _ in names), ids=", ".join("?" for _ in ids) or "NULL"
            ),
            [domain_id, *names, *ids],
        )
    else:
        rows = await conn.execute_query_dict(_KNOWN_POSTGRES, [domain_id, names, ids])
    return [
        _Known(
            int(r["id"]),
            r["username"],
            r["name"],
            r["external_id"],
            bool(r["is_domain_admin"]),
        )
        for r in rows
    ]


_KNOWN_SQLITE = (
    "SELECT id, username, name, external_id, is_domain_admin FROM account WHERE domain_id = ? "
    "AND (username IN ({names}) OR external_id IN ({ids}))"
)
_KNOWN_POSTGRES = (
    "SELECT id, username, name, external_id, is_domain_admin FROM account WHERE domain_id = $1 "
    "AND (username = ANY($2::varchar[]) OR external_id = ANY($3::varchar[]))"
)


@dataclass(slots=True)
class _Plan:
    created: list[AccountRecord] = field(default_factory=list)
    updated: list[tuple[_Known, AccountRecord]] = field(default_factory=list)
    renamed: list[tuple[_Known, AccountRecord]] = field(default_factory=list)
    unchanged: list[AccountRecord] = field(default_factory=list)
    parked: list[tuple[int, _Known]] = field(default_factory=list)


def _plan(
    records: Sequence[AccountRecord],
    by_name: dict[str, _Known],
    by_id: dict[str | None, _Known],
    domain: str,
    *,
    park: bool,
) -> _Plan:
    """What each record does to the accounts as they stand; UserErrors for a record whose
    username another account keeps (one not renamed away in the same batch), or whose known
    account has another externalId; with `park`, that other account is parked instead."""
    plan = _Plan()
    moved = {
        account.id
        for record in records
        if (account := by_id.get(record.external_id)) is not None
        and account.username != record.username
    }
    problems: list[UserError] = []
    for index, record in enumerate(records):
        at = (*_FIELD, str(index))
        known = by_id.get(record.external_id) if record.external_id is not None else None
        holder = by_name.get(record.username)
        if holder is not None and holder.id in moved and holder is not known:
            holder = None  # renamed away by another record: the name is free for this one
        if known is not None and known.username != record.username:
            if holder is not None and holder.id not in moved and park:
                plan.parked.append((index, holder))
            elif holder is not None and holder.id not in moved:
                problems.append(
                    UserError(
                        UserErrorCode.ALREADY_EXISTS,
                        f"{record.username}@{domain} is another account (externalId "
                        f"{holder.external_id!r}): remove or rename it first.",
                        (*at, "username"),
                    )
                )
                continue
            plan.renamed.append((known, record))
        elif (account := known or holder) is not None:
            if record.external_id is not None and account.external_id not in (
                None,
                record.external_id,
            ):
                if park:  # the name goes to a new account; a later line may rename this one
                    plan.parked.append((index, account))
                    plan.created.append(record)
                    continue
                problems.append(
                    UserError(
                        UserErrorCode.ALREADY_EXISTS,
                        f"{record.username}@{domain} has externalId {account.external_id!r}, "
                        "not this one: remove it first to give the name to another account.",
                        (*at, "externalId"),
                    )
                )
                continue
            if _changes(account, record):
                plan.updated.append((account, record))
            else:
                plan.unchanged.append(record)
        else:
            plan.created.append(record)
    if problems:
        raise UserErrors(problems)
    return plan


def _changes(account: _Known, record: AccountRecord) -> dict[str, object]:
    """The columns the record changes (a rename's username apart)."""
    changes: dict[str, object] = {}
    if record.name != account.name:
        changes["name"] = record.name
    if record.external_id is not None and record.external_id != account.external_id:
        changes["external_id"] = record.external_id
    if record.is_domain_admin is not None and record.is_domain_admin != account.is_domain_admin:
        changes["is_domain_admin"] = record.is_domain_admin
    return changes
