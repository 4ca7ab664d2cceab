"""What services publish when something happens: one dataclass per kind of event.

They say what happened in the domain's own terms, never in GraphQL's field names; the GraphQL
side converts each with the one converter of its type (in its area of api/graphql/). Between
processes they travel as JSON: orjson writes dataclasses as they are, and the bus reads each
back into the class its topic names (PAYLOADS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from api.events import Topic
from api.models import BOTH_PROTOCOLS, Account, LoginRefusal, MailProtocol, SessionEndReason
from api.services.domains import Usage


class AccountRow(NamedTuple):
    """An account's own columns, as its events carry them: the one list of them that the
    batch's SQL (api/services/login_sql.py), the snapshot below and the GraphQL type's converter
    read. A batch builds these rather than Tortoise models, whose construction (each time column
    through its converter) cost a batch a fifth of its Python; a tuple is built in C."""

    id: int
    domain_id: int
    username: str
    name: str | None
    is_domain_admin: bool
    mapi_ews_enabled: bool
    mapi_ews_enabled_at: datetime | None
    last_login: datetime | None
    last_login_protocol: MailProtocol | None
    last_mapi_login: datetime | None
    last_ews_login: datetime | None
    external_id: str | None
    mapi_ews_protocols: int

    @classmethod
    def read(cls, data: dict[str, Any]) -> AccountRow:
        """The row as PostgreSQL's to_jsonb wrote it."""
        protocol = data["last_login_protocol"]
        return cls(
            id=data["id"],
            domain_id=data["domain_id"],
            username=data["username"],
            name=data["name"],
            is_domain_admin=data["is_domain_admin"],
            mapi_ews_enabled=data["mapi_ews_enabled"],
            mapi_ews_enabled_at=_time(data["mapi_ews_enabled_at"]),
            last_login=_time(data["last_login"]),
            last_login_protocol=MailProtocol(protocol) if protocol is not None else None,
            last_mapi_login=_time(data["last_mapi_login"]),
            last_ews_login=_time(data["last_ews_login"]),
            external_id=data["external_id"],
            mapi_ews_protocols=data["mapi_ews_protocols"],
        )


def _time(value: str | None) -> datetime | None:
    """A time as JSON carries it (ISO text with its offset), parsed in C, in UTC as Tortoise
    gives it."""
    return datetime.fromisoformat(value).astimezone(UTC) if value is not None else None


AccountColumns = Account | AccountRow
"""An account as stored (a Tortoise model) or as a batch read it: the same columns."""
# What a snapshot copies of them: every column but the domain's id (it carries the name).
SNAPSHOT_COLUMNS = tuple(column for column in AccountRow._fields if column != "domain_id")


@dataclass(frozen=True, slots=True)
class AccountSnapshot:
    """An account as it stood when the event happened."""

    id: int
    username: str
    domain: str
    name: str | None
    is_domain_admin: bool
    mapi_ews_enabled: bool
    mapi_ews_enabled_at: datetime | None
    last_login: datetime | None
    last_login_protocol: MailProtocol | None
    last_mapi_login: datetime | None
    last_ews_login: datetime | None
    # Its sessions open at that moment (api/services/protocol_sessions.py).
    active_session_count: int
    # Last: a process that does not know them yet still reads the others' events.
    external_id: str | None = None
    mapi_ews_protocols: int = BOTH_PROTOCOLS

    @classmethod
    def of(cls, account: AccountColumns, domain: str, *, active_sessions: int) -> AccountSnapshot:
        return cls(
            **{column: getattr(account, column) for column in SNAPSHOT_COLUMNS},
            domain=domain,
            active_session_count=active_sessions,
        )


@dataclass(frozen=True, slots=True)
class LoginReported:
    """A gateway reported a login, allowed or refused (Topic.LOGINS)."""

    id: int
    domain: str
    username: str
    protocol: MailProtocol
    # The event's first report; `count` reports up to last_occurred_at (coalesced repeats).
    occurred_at: datetime
    client_address: str | None
    client_name: str | None
    allowed: bool
    account: AccountSnapshot | None
    count: int = 1
    last_occurred_at: datetime | None = None
    refusal: LoginRefusal | None = None


@dataclass(frozen=True, slots=True)
class MapiEwsChanged:
    """MAPI/EWS was enabled or disabled for an account (Topic.ACCOUNT_CHANGES)."""

    enabled: bool
    account: AccountSnapshot
    actor: str
    occurred_at: datetime
    usage: Usage


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """A MAPI or EWS connection as its gateway reported it."""

    id: int
    session_id: str
    domain: str
    username: str
    protocol: MailProtocol
    client_address: str | None
    client_name: str | None
    gateway: str
    started_at: datetime
    last_seen_at: datetime
    account: AccountSnapshot | None


@dataclass(frozen=True, slots=True)
class SessionChanged:
    """A session opened (`reason` None) or ended (Topic.SESSION_CHANGES, to its domain)."""

    session: SessionSnapshot
    reason: SessionEndReason | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class SessionCommand:
    """The gateway holding these sessions must close them (Topic.SESSION_COMMANDS, to that
    gateway)."""

    end_session_ids: tuple[str, ...]
    email_address: str
    reason: SessionEndReason
    issued_at: datetime


@dataclass(frozen=True, slots=True)
class PrincipalsChanged:
    """Accounts of this domain that may be signed in were removed or changed role (Topic.
    PRINCIPALS, to every process): each process asks the database again before it trusts an
    access token of the domain (api/auth/credentials.py)."""

    domain_id: int


@dataclass(frozen=True, slots=True)
class AccessPolicyChanged:
    """A domain's client access policy changed (Topic.ACCESS_POLICY, to every process): each
    process reads it again before it decides the domain's next report."""

    domain_id: int
    domain: str


PAYLOADS: dict[Topic, type] = {
    Topic.LOGINS: LoginReported,
    Topic.ACCOUNT_CHANGES: MapiEwsChanged,
    Topic.SESSION_CHANGES: SessionChanged,
    Topic.SESSION_COMMANDS: SessionCommand,
    Topic.USAGE: Usage,
    Topic.PRINCIPALS: PrincipalsChanged,
    Topic.ACCESS_POLICY: AccessPolicyChanged,
}
