"""MAPI/EWS sessions: who is connected now, the gateways' confirmations and closes, the commands
that tell a gateway to close, and the live changes dashboards follow."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from enum import StrEnum
from typing import Any

import strawberry

from api.auth.principal import Role
from api.events import Topic
from api.graphql.context import Info, tenant_of
from api.graphql.directives import auth
from api.graphql.inputs import plain_input
from api.graphql.mutations import mutation
from api.graphql.streams import follow, shared
from api.graphql.types import (
    Account,
    Connection,
    Node,
    UserError,
    account_of,
    connection_of,
    global_id,
)
from api.models import MailProtocol, SessionEndReason
from api.services import connected, protocol_sessions
from api.services.event_payloads import SessionChanged, SessionCommand, SessionSnapshot
from api.services.paging import PageRequest

strawberry.enum(SessionEndReason, name="SessionEndReason")  # the model's enum, registered


@strawberry.enum(name="MapiEwsSessionChangeKind")
class MapiEwsSessionChangeKind(StrEnum):
    STARTED = "STARTED"
    ENDED = "ENDED"


@strawberry.type(
    description="An open MAPI or EWS connection, as the gateway holding it reported it."
)
class MapiEwsSession(Node):
    session_id: str = strawberry.field(description="The gateway's own id for the connection.")
    username: str
    email_address: str
    domain: str
    protocol: MailProtocol
    client_address: str | None
    client_name: str | None
    gateway: str = strawberry.field(description="Name of the gateway token that reported it.")
    started_at: datetime
    last_seen_at: datetime = strawberry.field(
        description="When the gateway last said it was still open."
    )
    account: Account | None = strawberry.field(
        description="The account; null only if it no longer exists."
    )


def session_of(session: SessionSnapshot) -> MapiEwsSession:
    return MapiEwsSession(
        id=global_id("MapiEwsSession", session.id),
        session_id=session.session_id,
        username=session.username,
        email_address=f"{session.username}@{session.domain}",
        domain=session.domain,
        protocol=session.protocol,
        client_address=session.client_address,
        client_name=session.client_name,
        gateway=session.gateway,
        started_at=session.started_at,
        last_seen_at=session.last_seen_at,
        account=account_of(session.account, session.domain) if session.account else None,
    )


@strawberry.type(description="A session opened or ended in a domain.")
class MapiEwsSessionChange:
    kind: MapiEwsSessionChangeKind
    session: MapiEwsSession
    reason: SessionEndReason | None = strawberry.field(
        description="Why it ended; null when it started."
    )
    occurred_at: datetime
    # Shared by every subscriber this event reaches on this process (api.graphql.streams).
    render_memo: strawberry.Private[dict[Any, Any] | None] = None


def session_change_reported(change: SessionChanged, memo: dict[Any, Any]) -> MapiEwsSessionChange:
    return MapiEwsSessionChange(
        kind=MapiEwsSessionChangeKind.STARTED
        if change.reason is None
        else MapiEwsSessionChangeKind.ENDED,
        session=session_of(change.session),
        reason=change.reason,
        occurred_at=change.occurred_at,
        render_memo=memo,
    )


@strawberry.type(description="For the gateway holding these sessions: close them now.")
class ProtocolSessionCommand:
    end_session_ids: list[str] = strawberry.field(
        description="This gateway's ids of the sessions to close."
    )
    email_address: str
    reason: SessionEndReason
    issued_at: datetime
    render_memo: strawberry.Private[dict[Any, Any] | None] = None


def command_of(
    command: SessionCommand, memo: dict[Any, Any] | None = None
) -> ProtocolSessionCommand:
    return ProtocolSessionCommand(
        end_session_ids=list(command.end_session_ids),
        email_address=command.email_address,
        reason=command.reason,
        issued_at=command.issued_at,
        render_memo=memo,
    )


@plain_input
@strawberry.input
class SessionIdsInput:
    session_ids: list[str] = strawberry.field(
        description="This gateway's session ids, at most 1,000."
    )


@strawberry.type
class EndProtocolSessionsPayload:
    ended: int = strawberry.field(
        default=0, description="How many of the named sessions were open and are now ended."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class TouchProtocolSessionsPayload:
    touched: int = strawberry.field(
        default=0, description="How many of the named sessions are open and may stay open."
    )
    end_now: list[str] = strawberry.field(
        default_factory=list,
        description="Of the named sessions, those to close now (their account lost MAPI/EWS or "
        "was removed, or an administrator disconnected it); unknown or expired ones too.",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ProtocolSessionQuery:
    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="Open MAPI/EWS sessions in a domain, newest first; optionally one account's.",
    )
    async def mapi_ews_sessions(
        self,
        info: Info,
        domain: str | None = None,
        username: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[MapiEwsSession]:
        tenant = tenant_of(info)
        settings = info.context.settings
        page, described = await connected.open_sessions(
            tenant=tenant,
            username=username,
            request=PageRequest(first=first, after=after),
            default_size=settings.page_size_default,
            max_size=settings.page_size_max,
        )

        async def count() -> int:
            return await connected.count_open_sessions(tenant=tenant, username=username)

        return connection_of(page, (session_of(session.snapshot) for session in described), count)


@strawberry.type
class ProtocolSessionMutation:
    @mutation(
        extensions=auth(Role.GATEWAY),
        description="The gateway confirms these sessions are still open (every minute or so); "
        "the answer names those to close.",
    )
    async def touch_protocol_sessions(
        self, info: Info, input: SessionIdsInput
    ) -> TouchProtocolSessionsPayload:
        touched, end_now = await protocol_sessions.touch(
            gateway_id=info.context.require_principal().subject_id,
            session_ids=input.session_ids,
            ttl=info.context.settings.session_ttl,
        )
        return TouchProtocolSessionsPayload(touched=touched, end_now=end_now, user_errors=[])

    @mutation(extensions=auth(Role.GATEWAY), description="The gateway closed these sessions.")
    async def end_protocol_sessions(
        self, info: Info, input: SessionIdsInput
    ) -> EndProtocolSessionsPayload:
        ended = await protocol_sessions.end(
            events=info.context.events,
            gateway_id=info.context.require_principal().subject_id,
            session_ids=input.session_ids,
        )
        return EndProtocolSessionsPayload(ended=ended, user_errors=[])


@strawberry.type
class ProtocolSessionSubscription:
    @strawberry.subscription(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="Sessions opening and ending in a domain.",
    )
    async def mapi_ews_session_changes(
        self, info: Info, domain: str | None = None
    ) -> AsyncGenerator[MapiEwsSessionChange, None]:
        changes = follow(info, Topic.SESSION_CHANGES, session_change_reported)
        del info  # not kept while the subscription lasts (api.graphql.streams.follow)
        async for change in changes:
            yield change

    @strawberry.subscription(
        extensions=auth(Role.GATEWAY),
        description="For a gateway: sessions it holds that must close now. On subscribing it "
        "first receives a command for every open session of its own that should already have "
        "closed.",
    )
    async def protocol_session_commands(
        self, info: Info
    ) -> AsyncGenerator[ProtocolSessionCommand, None]:
        gateway_id = info.context.require_principal().subject_id
        bus = info.context.events
        del info  # not kept while the subscription lasts (api.graphql.streams.follow)
        # Listening starts before the backlog is read, so a command issued in between is
        # received (perhaps twice: closing a closed session is nothing).
        async with bus.subscribe(Topic.SESSION_COMMANDS, gateway_id) as live:
            for command in await protocol_sessions.backlog(gateway_id=gateway_id):
                yield command_of(command)
            async for event in live:
                yield shared(event, command_of)
