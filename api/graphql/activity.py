"""Login activity: the gateways' reports, the login history, and its live updates."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated, Any

import strawberry

from api import models
from api.auth.principal import Role
from api.events import Topic
from api.graphql.context import Info, asks_for, tenant_of
from api.graphql.directives import auth
from api.graphql.inputs import plain_input
from api.graphql.mutations import mutation
from api.graphql.streams import follow
from api.graphql.types import (
    Account,
    Connection,
    Node,
    UserError,
    account_of,
    connection_of,
    global_id,
    user_errors_of,
)
from api.models import LoginRefusal, MailProtocol
from api.services import login_history, logins
from api.services.event_payloads import LoginReported
from api.services.paging import PageRequest


@strawberry.type(description="One login over MAPI or EWS, as a gateway reported it.")
class MapiEwsLoginEvent(Node):
    username: str
    email_address: str
    domain: str
    protocol: MailProtocol
    occurred_at: datetime
    client_address: str | None
    allowed: bool = strawberry.field(
        description="False when the login was refused; refusal says why."
    )
    refusal: LoginRefusal | None = strawberry.field(
        description="Why the login was refused; null when it was allowed."
    )
    account: Account | None = strawberry.field(
        description="The account as it stands after this login; null only if it no longer exists."
    )
    client_name: str | None = strawberry.field(
        description='The client as it named itself to the gateway, e.g. "Microsoft Outlook 16.0".'
    )
    count: int = strawberry.field(
        description="How many reports this event stands for: the same login (account, protocol, "
        "client address, client name, allowed or not) repeated within a short window is counted "
        "on one event; occurredAt is the first of them, lastOccurredAt the latest."
    )
    last_occurred_at: datetime
    # Shared by every subscriber this event reaches on this process (api.graphql.streams).
    render_memo: strawberry.Private[dict[Any, Any] | None] = None


def login_event_reported(reported: LoginReported, memo: dict[Any, Any]) -> MapiEwsLoginEvent:
    """A live event: the account as it stood right after the login."""
    account = reported.account
    return MapiEwsLoginEvent(
        id=global_id("MapiEwsLoginEvent", reported.id),
        username=reported.username,
        email_address=f"{reported.username}@{reported.domain}",
        domain=reported.domain,
        protocol=reported.protocol,
        occurred_at=reported.occurred_at,
        client_address=reported.client_address,
        allowed=reported.allowed,
        refusal=reported.refusal,
        account=account_of(account, reported.domain) if account is not None else None,
        client_name=reported.client_name,
        count=reported.count,
        last_occurred_at=reported.last_occurred_at or reported.occurred_at,
        render_memo=memo,
    )


def login_event_of(
    row: models.LoginEvent, domain: str, account: models.Account | None, active_sessions: int
) -> MapiEwsLoginEvent:
    return MapiEwsLoginEvent(
        id=global_id("MapiEwsLoginEvent", row.id),
        username=row.username,
        email_address=f"{row.username}@{domain}",
        domain=domain,
        protocol=row.protocol,
        occurred_at=row.occurred_at,
        client_address=row.client_address,
        allowed=row.allowed,
        refusal=row.refusal,
        account=(
            account_of(account, domain, active_sessions=active_sessions)
            if account is not None
            else None
        ),
        client_name=row.client_name,
        count=row.count,
        last_occurred_at=row.last_occurred_at or row.occurred_at,
    )


@plain_input
@strawberry.input
class RecordProtocolLoginInput:
    email_address: str
    protocol: MailProtocol
    client_address: str | None = None
    occurred_at: datetime | None = strawberry.field(
        default=None, description="Defaults to the time the server receives it."
    )
    session_id: str | None = strawberry.field(
        default=None,
        description="The gateway's own id for the connection this login opens (at most 128 "
        "characters). When the login is allowed, the session is tracked until the gateway ends "
        "it or stops confirming it.",
    )
    client_name: str | None = strawberry.field(
        default=None,
        description="The client as it named itself (a User-Agent, or a name and version), at "
        "most 256 characters.",
    )


@strawberry.type
class RecordProtocolLoginPayload:
    allowed: bool = strawberry.field(
        default=False, description="Whether the gateway should let this login through."
    )
    refusal: LoginRefusal | None = strawberry.field(
        default=None,
        description="Why not; null when allowed (and when the report itself was bad: see "
        "userErrors).",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@plain_input
@strawberry.input
class RecordProtocolLoginsInput:
    reports: list[RecordProtocolLoginInput] = strawberry.field(
        description="At most 500 reports; each is answered on its own, in the order given."
    )


@strawberry.type
class RecordProtocolLoginsPayload:
    results: list[RecordProtocolLoginPayload] = strawberry.field(
        default_factory=list,
        description="One answer per report, in order; a report's userErrors point into "
        "input.reports.",
    )
    user_errors: list[UserError] = strawberry.field(
        default_factory=list,
        description="Errors of the whole batch (empty, too long); then no report was recorded.",
    )


@strawberry.type
class ActivityQuery:
    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="Logins over MAPI and EWS in a domain, newest first.",
    )
    async def mapi_ews_login_events(
        self,
        info: Info,
        domain: str | None = None,
        username: str | None = None,
        first: int | None = None,
        after: str | None = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Only the events whose username, or whose account's name as it "
                "stands now, contains this (without case), as mapiEwsAccounts' search does."
            ),
        ] = None,
    ) -> Connection[MapiEwsLoginEvent]:
        tenant = tenant_of(info)
        settings = info.context.settings
        page, accounts, sessions = await login_history.login_events(
            tenant=tenant,
            username=username,
            search=search,
            request=PageRequest(first=first, after=after),
            default_size=settings.page_size_default,
            max_size=settings.page_size_max,
            count_sessions=asks_for(info, "activeSessionCount"),
        )

        async def count() -> int:
            return await login_history.count_login_events(
                tenant=tenant, username=username, search=search
            )

        return connection_of(
            page,
            (
                login_event_of(
                    row,
                    tenant.domain,
                    accounts.get(row.account_id) if row.account_id is not None else None,
                    sessions.get(row.account_id or 0, 0),
                )
                for row in page.items
            ),
            count,
        )


@strawberry.type
class ActivityMutation:
    @mutation(extensions=auth(Role.GATEWAY))
    async def record_protocol_login(
        self, info: Info, input: RecordProtocolLoginInput
    ) -> RecordProtocolLoginPayload:
        gateway = info.context.require_principal()
        refusal = await logins.record_login(
            events=info.context.events,
            email_address=input.email_address,
            protocol=input.protocol,
            client_address=input.client_address,
            occurred_at=input.occurred_at,
            client_name=input.client_name,
            session_id=input.session_id,
            gateway=logins.Gateway(gateway.subject_id, gateway.username),
            session_ttl=info.context.settings.session_ttl,
            coalesce=info.context.settings.login_event_coalesce,
            policies=info.context.policies,
        )
        return RecordProtocolLoginPayload(allowed=refusal is None, refusal=refusal, user_errors=[])

    @mutation(
        extensions=auth(Role.GATEWAY),
        description="Up to 500 logins at once, for a busy gateway: one round trip, each report "
        "answered as recordProtocolLogin would answer it.",
    )
    async def record_protocol_logins(
        self, info: Info, input: RecordProtocolLoginsInput
    ) -> RecordProtocolLoginsPayload:
        gateway = info.context.require_principal()
        settings = info.context.settings
        answers = await logins.record_logins(
            events=info.context.events,
            reports=[
                logins.ReportInput(
                    email_address=report.email_address,
                    protocol=report.protocol,
                    client_address=report.client_address,
                    occurred_at=report.occurred_at,
                    client_name=report.client_name,
                    session_id=report.session_id,
                )
                for report in input.reports
            ],
            gateway=logins.Gateway(gateway.subject_id, gateway.username),
            session_ttl=settings.session_ttl,
            coalesce=settings.login_event_coalesce,
            policies=info.context.policies,
        )
        return RecordProtocolLoginsPayload(
            results=[
                RecordProtocolLoginPayload(
                    allowed=answer.allowed,
                    refusal=answer.refusal,
                    user_errors=user_errors_of(answer.errors),
                )
                for answer in answers
            ],
            user_errors=[],
        )


@strawberry.type
class ActivitySubscription:
    @strawberry.subscription(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="Every MAPI/EWS login reported in a domain, allowed or refused, as it "
        "happens, from any server process.",
    )
    async def mapi_ews_login_updates(
        self, info: Info, domain: str | None = None
    ) -> AsyncGenerator[MapiEwsLoginEvent, None]:
        events = follow(info, Topic.LOGINS, login_event_reported)
        del info  # not kept while the subscription lasts (follow)
        async for event in events:
            yield event
