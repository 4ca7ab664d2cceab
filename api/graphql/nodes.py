"""Global object identification: `node(id:)` and `nodes(ids:)` (Relay's refetching).

An id is the base64 of "<Type>:<primary key>" (api/graphql/types.py `global_id`), and only
that one spelling of it is accepted: a known type, a positive key within its column's range,
written as `global_id` writes it (no spaces, signs, leading zeros, other digits or padding).
A malformed id is a null with BAD_USER_INPUT at its path. The domain rule is applied to each
object on its own: a domain administrator gets the objects of their domain, a system
administrator any; an object of another domain and one that does not exist are the same null
with NOT_FOUND, so ids tell nobody what another domain holds. `nodes` reads each kind's table
once, whatever the number of ids.
"""

from __future__ import annotations

import base64
import binascii
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import strawberry

from api import models
from api.auth.principal import Principal, Role
from api.errors import AppError, BadUserInput, NotFound
from api.graphql.activity import login_event_of
from api.graphql.context import Info, asks_for
from api.graphql.directives import auth
from api.graphql.domains import domain_of
from api.graphql.protocol_sessions import session_of
from api.graphql.types import Node, account_of, audit_entry_of, global_id
from api.internals.tortoise_private import largest_key
from api.services import connected, tenancy

MAX_IDS = 100

# Builds one kind's objects from their rows (with the domains' names and the selection, to read
# only what it asks for).
Builder = Callable[[list[Any], "Reading"], Awaitable[dict[int, Node]]]


class Reading:
    """One request's reads: the domains' names, and whether open sessions are asked for."""

    def __init__(self, info: Info) -> None:
        self.count_sessions = asks_for(info, "activeSessionCount")
        self._names: dict[int, str] = {}

    async def names(self, domain_ids: set[int]) -> dict[int, str]:
        missing = domain_ids - set(self._names)
        if missing:
            rows = await models.Domain.filter(id__in=missing).values_list("id", "name")
            self._names.update({int(i): str(n) for i, n in rows})
        return self._names


def parse_id(value: str) -> tuple[str, int]:
    """(type name, primary key) of a global id; BadUserInput when it is not one of ours, as
    `global_id` writes it."""
    try:
        kind, _, pk = base64.urlsafe_b64decode(value.encode()).decode().partition(":")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        kind, pk = "", ""
    # 19 digits hold every BIGINT; int() refuses strings past 4,300 digits with ValueError.
    number = int(pk) if pk.isascii() and pk.isdigit() and len(pk) <= 19 else 0
    if (
        kind not in KINDS
        or not 1 <= number <= largest_key(KINDS[kind][0])
        or global_id(kind, number) != value
    ):
        raise BadUserInput(f"{value[:80]!r} is not an id of this API.")
    return kind, number


async def _accounts(rows: list[Any], reading: Reading) -> dict[int, Node]:
    names = await reading.names({row.domain_id for row in rows})
    sessions = await connected.open_counts(r.id for r in rows) if reading.count_sessions else {}
    return {
        row.id: account_of(row, names[row.domain_id], active_sessions=sessions.get(row.id, 0))
        for row in rows
    }


async def _domains(rows: list[Any], _: Reading) -> dict[int, Node]:
    return {row.id: domain_of(row) for row in rows}


async def _login_events(rows: list[Any], reading: Reading) -> dict[int, Node]:
    names = await reading.names({row.domain_id for row in rows})
    ids = {row.account_id for row in rows if row.account_id is not None}
    accounts = {a.id: a for a in await models.Account.filter(id__in=ids)} if ids else {}
    sessions = await connected.open_counts(accounts) if reading.count_sessions else {}
    return {
        row.id: login_event_of(
            row,
            names[row.domain_id],
            accounts.get(row.account_id) if row.account_id is not None else None,
            sessions.get(row.account_id or 0, 0),
        )
        for row in rows
    }


async def _audit_entries(rows: list[Any], reading: Reading) -> dict[int, Node]:
    names = await reading.names({row.domain_id for row in rows if row.domain_id is not None})
    return {
        row.id: audit_entry_of(row, names.get(row.domain_id) if row.domain_id else None)
        for row in rows
    }


async def _sessions(rows: list[Any], _: Reading) -> dict[int, Node]:
    described = await connected.describe(rows)
    return {row.id: session_of(d.snapshot) for row, d in zip(rows, described, strict=True)}


# Each kind: its table, and how its readable rows become objects.
KINDS: dict[str, tuple[Any, Builder]] = {
    "Account": (models.Account, _accounts),
    "Domain": (models.Domain, _domains),
    "MapiEwsLoginEvent": (models.LoginEvent, _login_events),
    "AuditEntry": (models.AuditEntry, _audit_entries),
    "MapiEwsSession": (models.ProtocolSession, _sessions),
}


async def resolve(ids: Sequence[str], info: Info) -> list[Node | AppError]:
    """Each id's object, or the error its place in the answer gets, in the order given."""
    principal: Principal = info.context.require_principal()
    wanted: list[tuple[str, int] | AppError] = []
    for value in ids:
        try:
            wanted.append(parse_id(value))
        except BadUserInput as error:
            wanted.append(error)
    by_kind: dict[str, list[int]] = defaultdict(list)
    for item in wanted:
        if isinstance(item, tuple):
            by_kind[item[0]].append(item[1])
    # One read per kind; the domain rule applied to each row, and only readable rows built.
    allowed: dict[tuple[str, int], bool] = {}
    reading = Reading(info)
    built: dict[tuple[str, int], Node] = {}
    for kind, pks in by_kind.items():
        model, build = KINDS[kind]
        readable = []
        for row in await model.filter(id__in=pks):
            domain_id = row.id if kind == "Domain" else row.domain_id
            allowed[(kind, row.id)] = tenancy.may_read(principal, domain_id)
            if allowed[(kind, row.id)]:
                readable.append(row)
        if readable:
            objects = await build(readable, reading)
            built.update({(kind, pk): node for pk, node in objects.items()})
    answers: list[Node | AppError] = []
    for value, item in zip(ids, wanted, strict=True):
        if isinstance(item, AppError):
            answers.append(item)
        elif not allowed.get(item, False):
            answers.append(NotFound(f"Nothing you may read has the id {value[:80]!r}."))
        else:
            answers.append(built[item])
    return answers


@strawberry.type
class NodeQuery:
    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN, per_object=True),
        description="Any object by its global id (Relay's object identification). An object "
        "that does not exist and one outside the caller's domain are alike: null, with a "
        "NOT_FOUND error at its path; a malformed id is BAD_USER_INPUT.",
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        answer = (await resolve([id], info))[0]
        if isinstance(answer, AppError):
            raise answer
        return answer

    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN, per_object=True),
        description=f"Objects by their global ids, in the order given (at most {MAX_IDS}); each "
        "that cannot be read is null, with its error (NOT_FOUND, or BAD_USER_INPUT for a malformed "
        "id) at its place; the others are answered.",
    )
    async def nodes(self, info: Info, ids: list[strawberry.ID]) -> list[Node | None]:
        if len(ids) > MAX_IDS:
            raise BadUserInput(f"At most {MAX_IDS} ids at once; {len(ids)} were given.")
        # graphql-core raises an exception returned in a list at that item's path: the item is
        # null and the error names where it is.
        return await resolve(ids, info)  # type: ignore[return-value]
