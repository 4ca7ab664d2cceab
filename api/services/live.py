"""What services publish when something happens: one dataclass per kind of event.

They say what happened in the domain's own terms, never in GraphQL's field names; the GraphQL
side converts each with the one converter of its type (api/graphql/live.py). Between processes
they travel as JSON: orjson writes dataclasses as they are, and the bus reads each back into the
class its topic names (PAYLOADS).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from api.events import Topic
from api.models import MailProtocol, SessionEndReason
from api.services.domains import Usage


class AccountColumns(Protocol):
    """What a snapshot reads of an account: a Tortoise Account, or a batch's lighter row
    (api/services/login_batches.py)."""

    @property
    def id(self) -> int: ...
    @property
    def domain_id(self) -> int: ...
    @property
    def username(self) -> str: ...
    @property
    def name(self) -> str | None: ...
    @property
    def is_domain_admin(self) -> bool: ...
    @property
    def mapi_ews_enabled(self) -> bool: ...
    @property
    def mapi_ews_enabled_at(self) -> datetime | None: ...
    @property
    def last_login(self) -> datetime | None: ...
    @property
    def last_login_protocol(self) -> MailProtocol | None: ...
    @property
    def last_mapi_login(self) -> datetime | None: ...
    @property
    def last_ews_login(self) -> datetime | None: ...


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

    @classmethod
    def of(cls, account: AccountColumns, domain: str, *, active_sessions: int) -> AccountSnapshot:
        return cls(
            id=account.id,
            username=account.username,
            domain=domain,
            name=account.name,
            is_domain_admin=account.is_domain_admin,
            mapi_ews_enabled=account.mapi_ews_enabled,
            mapi_ews_enabled_at=account.mapi_ews_enabled_at,
            last_login=account.last_login,
            last_login_protocol=account.last_login_protocol,
            last_mapi_login=account.last_mapi_login,
            last_ews_login=account.last_ews_login,
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


PAYLOADS: dict[Topic, type] = {
    Topic.LOGINS: LoginReported,
    Topic.ACCOUNT_CHANGES: MapiEwsChanged,
    Topic.SESSION_CHANGES: SessionChanged,
    Topic.SESSION_COMMANDS: SessionCommand,
    Topic.USAGE: Usage,
}
