"""Output types shared by every area, and one conversion function per type."""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar

import strawberry

from api import models
from api.errors import UserError as ServiceUserError
from api.errors import UserErrorCode
from api.models import AuditAction, LoginRefusal, MailProtocol, protocols_of
from api.services.accounts import AccountRow
from api.services.domains import Usage
from api.services.event_payloads import AccountSnapshot
from api.services.paging import Counter, Window

# The services' enums are GraphQL enums too: strawberry.enum registers the class itself.
strawberry.enum(MailProtocol, name="MailProtocol")
strawberry.enum(AuditAction, name="AuditAction")
strawberry.enum(LoginRefusal, name="LoginRefusal", description="Why a gateway was told no.")
strawberry.enum(UserErrorCode, name="UserErrorCode")


@strawberry.enum(name="SortDirection")
class SortDirection(StrEnum):
    ASC = "ASC"
    DESC = "DESC"


def global_id(kind: str, pk: int) -> strawberry.ID:
    return strawberry.ID(base64.urlsafe_b64encode(f"{kind}:{pk}".encode()).decode())


def named_id(kind: str, name: str) -> strawberry.ID:
    """A stable id for an object that is not stored as a row (a domain's usage, the viewer), so
    client caches can keep it; not one node(id:) fetches."""
    return strawberry.ID(base64.urlsafe_b64encode(f"{kind}:{name}".encode()).decode())


@strawberry.interface
class Node:
    id: strawberry.ID


@strawberry.type
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None
    end_cursor: str | None


@strawberry.type(description="A mailbox account of a domain.")
class Account(Node):
    username: str = strawberry.field(
        description="The Account column: the part before the @, unique within the domain, "
        "compared without case."
    )
    email_address: str
    name: str | None = strawberry.field(description="The Name column: the account's friendly name.")
    domain: str
    is_domain_admin: bool
    mapi_ews_enabled: bool = strawberry.field(
        description="True when the account holds a MAPI/EWS seat. Enabling gives it both "
        "protocols unless the administrator names fewer (mapiEwsProtocols)."
    )
    mapi_ews_protocols: list[MailProtocol] = strawberry.field(
        description="The protocols this account may use while MAPI/EWS is enabled: both unless "
        "restricted (enableMapiEws' protocols, setMapiEwsProtocols); empty when MAPI/EWS is not "
        "enabled."
    )
    external_id: str | None = strawberry.field(
        description="The mail server's own id for this account, when the mail server supplied "
        "one (upsertAccounts, sync-accounts). A changed username with the same externalId is a "
        "rename."
    )
    mapi_ews_enabled_at: datetime | None
    last_login: datetime | None = strawberry.field(
        description="The Last Login column: the most recent allowed login over either protocol; "
        "null if none."
    )
    last_login_protocol: MailProtocol | None
    last_mapi_login: datetime | None
    last_ews_login: datetime | None
    active_session_count: int = strawberry.field(
        description="MAPI/EWS sessions open right now, as the gateways report them."
    )


def account_of(
    row: models.Account | AccountRow | AccountSnapshot,
    domain: str,
    *,
    active_sessions: int | None = None,
) -> Account:
    """An account as stored, with its open sessions counted apart (`active_sessions`), or as an
    event saw it, count included: the same fields."""
    if isinstance(row, AccountSnapshot):
        active_sessions = row.active_session_count
    elif active_sessions is None:
        raise TypeError("a stored account needs its open sessions counted")
    return Account(
        id=global_id("Account", row.id),
        username=row.username,
        email_address=f"{row.username}@{domain}",
        name=row.name,
        domain=domain,
        is_domain_admin=row.is_domain_admin,
        mapi_ews_enabled=row.mapi_ews_enabled,
        mapi_ews_protocols=protocols_of(row.mapi_ews_protocols) if row.mapi_ews_enabled else [],
        external_id=row.external_id,
        mapi_ews_enabled_at=row.mapi_ews_enabled_at,
        last_login=row.last_login,
        last_login_protocol=row.last_login_protocol,
        last_mapi_login=row.last_mapi_login,
        last_ews_login=row.last_ews_login,
        active_session_count=active_sessions,
    )


@strawberry.type(description="How much of a domain's MAPI/EWS allowance is in use.")
class MapiEwsUsage:
    id: strawberry.ID = strawberry.field(
        description="Stable for the domain: a normalizing client cache (Apollo, Relay) updates "
        "the usage it holds when a mutation or an event returns it anew."
    )
    domain: str
    enabled: int
    limit: int | None = strawberry.field(
        description="Most accounts that may have MAPI/EWS at once; null means no limit."
    )
    available: int | None = strawberry.field(
        description="limit - enabled, never below 0; null when there is no limit."
    )


def usage_of(usage: Usage) -> MapiEwsUsage:
    return MapiEwsUsage(
        id=named_id("MapiEwsUsage", usage.domain),
        domain=usage.domain,
        enabled=usage.enabled,
        limit=usage.limit,
        available=usage.available,
    )


@strawberry.type(
    description="An expected failure of a mutation, caused by its input: nothing was changed."
)
class UserError:
    field: list[str] | None = strawberry.field(
        description='Path to the input field at fault, e.g. ["input", "usernames", "2"].'
    )
    message: str
    code: UserErrorCode


def user_errors_of(errors: list[ServiceUserError]) -> list[UserError]:
    return [
        UserError(field=list(e.field) if e.field else None, message=e.message, code=e.code)
        for e in errors
    ]


@strawberry.type(description="One administrative change, kept for as long as the domain exists.")
class AuditEntry(Node):
    occurred_at: datetime
    actor: str = strawberry.field(description="Username of whoever made the change.")
    action: AuditAction
    domain: str | None
    target: str | None = strawberry.field(
        description="What was changed: an email address, a domain name or a token name."
    )


def audit_entry_of(row: models.AuditEntry, domain: str | None) -> AuditEntry:
    return AuditEntry(
        id=global_id("AuditEntry", row.id),
        occurred_at=row.occurred_at,
        actor=row.actor,
        action=row.action,
        domain=domain,
        target=row.target,
    )


def page_info_of(page: Window[Any]) -> PageInfo:
    return PageInfo(
        has_next_page=page.has_next_page,
        has_previous_page=page.has_previous_page,
        start_cursor=page.cursors[0] if page.cursors else None,
        end_cursor=page.cursors[-1] if page.cursors else None,
    )


@strawberry.type
class Counted:
    """A connection's totalCount, counted only when a client selects it."""

    count: strawberry.Private[Counter]

    @strawberry.field(description="All items that match, across every page (counted if selected).")
    async def total_count(self) -> int:
        return await self.count()


NodeT = TypeVar("NodeT")


@strawberry.type
class Edge(Generic[NodeT]):
    """One item of a list and its cursor; named after its node (AccountEdge, DomainEdge ...)."""

    cursor: str
    node: NodeT


@strawberry.type
class Connection(Counted, Generic[NodeT]):
    """A page of a list (Connection[Account], Connection[Domain] ...): every list is one."""

    edges: list[Edge[NodeT]]
    page_info: PageInfo


def connection_of(window: Window[Any], nodes: Iterable[NodeT], count: Counter) -> Connection[NodeT]:
    """A page as GraphQL answers it: `nodes` are the window's items converted, in its order;
    `count` counts the whole list, only if a client selects totalCount."""
    return Connection(
        edges=[Edge(cursor=c, node=n) for c, n in zip(window.cursors, nodes, strict=True)],
        page_info=page_info_of(window),
        count=count,
    )
