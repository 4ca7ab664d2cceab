"""Logins reported by the protocol gateways: the decision, the last-login columns, the session.

`record_login` sits on the gateways' hot path (every MAPI and EWS login asks it): it checks the
report, has it written (api/services/login_statements.py: one statement on PostgreSQL) and
publishes what happened once committed. The history is api/services/login_history.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from api.errors import UserError, UserErrorCode, UserErrors
from api.events import Event, EventBus, Topic
from api.models import MailProtocol, SessionEndReason
from api.services import connected, validation
from api.services.live import AccountSnapshot, LoginReported, SessionChanged
from api.services.login_statements import Gateway, Recorded, Report, write_report

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_COALESCE",
    "DEFAULT_SESSION_TTL",
    "Gateway",
    "parse_report",
    "record_login",
]

# A gateway's clock may run a little ahead of ours; a login further in the future than this is
# refused, as it would pin lastLogin ahead of every real login until then.
CLOCK_SKEW = timedelta(minutes=5)
DEFAULT_SESSION_TTL = timedelta(minutes=5)
DEFAULT_COALESCE = timedelta(minutes=5)
T = TypeVar("T")


def parse_report(
    *,
    email_address: str,
    protocol: MailProtocol,
    client_address: str | None,
    occurred_at: datetime | None,
    now: datetime,
    client_name: str | None = None,
    session_id: str | None = None,
) -> Report:
    problems: list[UserError] = []

    def check(field: str, read: Callable[[], T]) -> T | None:
        try:
            return read()
        except ValueError as error:
            problems.append(UserError(UserErrorCode.INVALID_INPUT, str(error), ("input", field)))
            return None

    parsed = check("emailAddress", lambda: validation.email_address(email_address))
    address = check("clientAddress", lambda: validation.client_address(client_address))
    name = check("clientName", lambda: validation.client_name(client_name))
    session = (
        check("sessionId", lambda: validation.session_id(session_id))
        if session_id is not None
        else None
    )
    when = now
    if occurred_at is not None:
        if occurred_at.tzinfo is None:
            problems.append(
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    "occurredAt needs an offset, e.g. 2026-11-24T09:30:00Z.",
                    ("input", "occurredAt"),
                )
            )
        elif occurred_at > now + CLOCK_SKEW:
            problems.append(
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    "occurredAt is in the future: check the gateway's clock.",
                    ("input", "occurredAt"),
                )
            )
        else:
            when = occurred_at.astimezone(UTC)
    if problems or parsed is None:
        raise UserErrors(problems)
    username, domain = parsed
    return Report(username, domain, protocol, when, address, name, session)


async def record_login(
    *,
    events: EventBus,
    email_address: str,
    protocol: MailProtocol,
    client_address: str | None = None,
    occurred_at: datetime | None = None,
    client_name: str | None = None,
    session_id: str | None = None,
    gateway: Gateway | None = None,
    session_ttl: timedelta = DEFAULT_SESSION_TTL,
    coalesce: timedelta = DEFAULT_COALESCE,
) -> bool:
    """Whether the login may go through: exactly when MAPI/EWS is enabled for the account.

    Either way the report is stored as a login event and published once committed. An unknown
    address is NOT_FOUND and stores nothing: there is no account or domain to file it under.
    An allowed report with a session id opens that session for `gateway` (or refreshes it). The
    same login repeated within `coalesce` is counted on its event (published with the new count)."""
    report = parse_report(
        email_address=email_address,
        protocol=protocol,
        client_address=client_address,
        occurred_at=occurred_at,
        now=datetime.now(UTC),
        client_name=client_name,
        session_id=session_id,
    )
    recorded = await write_report(report, gateway, session_ttl, coalesce)
    if recorded is None:
        raise UserErrors(
            [
                UserError(
                    UserErrorCode.NOT_FOUND,
                    f"No account {report.username}@{report.domain}.",
                    ("input", "emailAddress"),
                )
            ]
        )
    await events.publish(await _events(report, recorded, gateway))
    return recorded.allowed


async def _events(report: Report, recorded: Recorded, gateway: Gateway | None) -> list[Event]:
    """The login, and the session it opened and the one it replaced, if any."""
    account = AccountSnapshot.of(
        recorded.account, report.domain, active_sessions=recorded.open_after
    )
    reported = LoginReported(
        id=recorded.event.id,
        domain=report.domain,
        username=report.username,
        protocol=report.protocol,
        occurred_at=recorded.event.occurred_at,
        last_occurred_at=recorded.event.last_occurred_at,
        count=recorded.event.count,
        client_address=report.client_address,
        client_name=report.client_name,
        allowed=recorded.allowed,
        account=account,
    )
    published = [Event(Topic.LOGINS, recorded.account.domain_id, reported)]
    if recorded.started and recorded.session is not None and gateway is not None:
        session = connected.snapshot_of(
            recorded.session, domain=report.domain, gateway=gateway.name, account=account
        )
        published.append(
            Event(
                Topic.SESSION_CHANGES,
                recorded.account.domain_id,
                SessionChanged(session=session, reason=None, occurred_at=report.occurred_at),
            )
        )
    if (replaced := recorded.replaced) is not None:
        # Rare (a gateway reused an id): read what its announcement needs.
        reason = (
            SessionEndReason.ENDED_BY_GATEWAY
            if replaced.expires_at > datetime.now(UTC)
            else SessionEndReason.EXPIRED
        )
        published += connected.session_changes(
            await connected.describe([replaced]), reason=reason, at=report.occurred_at
        )
    return published
