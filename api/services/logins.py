"""Logins reported by the protocol gateways: the decision, the last-login columns, the session.

`record_login` sits on the gateways' hot path (every MAPI and EWS login asks it): it checks the
report, has it written (api/services/login_store.py, its SQL in login_sql.py) and
publishes what happened once committed. The history is api/services/login_history.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from api.errors import UserError, UserErrorCode, UserErrors
from api.events import Event, EventBus, Topic
from api.models import LoginRefusal, MailProtocol, SessionEndReason
from api.services import client_rollup, connected, validation
from api.services.access_policy import PolicyCache
from api.services.event_payloads import AccountSnapshot, LoginReported, SessionChanged
from api.services.login_batches import MAX_REPORTS, write_reports
from api.services.login_store import Gateway, Recorded, Report, write_report

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
    policies: PolicyCache | None = None,
) -> LoginRefusal | None:
    """Why the login may not go through, None when it may: when MAPI/EWS is enabled for the
    account, over this protocol, and the domain's client access policy (from `policies`; without
    one every client) lets its client in.

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
    [report] = await _decide([report], policies)
    await _mark_late([report], coalesce)
    recorded = await write_report(report, gateway, session_ttl, coalesce)
    if recorded is None:
        raise UserErrors([_no_account(report)])
    await events.publish(await _events(report, recorded, gateway))
    return recorded.refusal


async def _decide(reports: list[Report], policies: PolicyCache | None) -> list[Report]:
    """The reports, each with whether its domain's policy lets its client in."""
    if policies is None or not reports:
        return reports
    deciders = await policies.deciders({r.domain for r in reports})
    decided: list[Report] = []
    for report in reports:
        decider = deciders[report.domain]
        if decider.lets_everyone_in:
            decided.append(report)
        else:
            ok = decider.allows(report.protocol, report.client_name)
            decided.append(report if ok else replace(report, client_ok=False))
    return decided


async def _mark_late(reports: list[Report], coalesce: timedelta) -> None:
    """Reports of old logins may change what the clients' roll-up holds: its days are read from
    login_event until rolled up again (api/services/client_rollup.py). Nothing for the others."""
    now = datetime.now(UTC)
    stale = client_rollup.stale_days(((r.domain, r.occurred_at) for r in reports), coalesce, now)
    if stale:
        await client_rollup.mark_stale(stale, now)


@dataclass(frozen=True, slots=True)
class ReportInput:
    """One report of a batch, as the gateway sent it."""

    email_address: str
    protocol: MailProtocol
    client_address: str | None = None
    occurred_at: datetime | None = None
    client_name: str | None = None
    session_id: str | None = None


@dataclass(frozen=True, slots=True)
class Answer:
    """One report's answer: whether it may go through (and if not, why), or why it was not
    recorded."""

    allowed: bool
    errors: list[UserError]
    refusal: LoginRefusal | None = None


_BATCH_FIELD = ("input", "reports")


async def record_logins(
    *,
    events: EventBus,
    reports: Sequence[ReportInput],
    gateway: Gateway | None = None,
    session_ttl: timedelta = DEFAULT_SESSION_TTL,
    coalesce: timedelta = DEFAULT_COALESCE,
    policies: PolicyCache | None = None,
) -> list[Answer]:
    """Up to MAX_REPORTS reports, each answered as record_login would, in order: a bad one gets
    its own errors (pointing into input.reports) and the rest are recorded together
    (api/services/login_batches.py). UserErrors for an empty or too long batch: nothing is
    recorded then."""
    if not reports:
        raise UserErrors(
            [UserError(UserErrorCode.INVALID_INPUT, "Send at least one report.", _BATCH_FIELD)]
        )
    if len(reports) > MAX_REPORTS:
        raise UserErrors(
            [
                UserError(
                    UserErrorCode.INVALID_INPUT,
                    f"At most {MAX_REPORTS} reports at once; {len(reports)} were given.",
                    _BATCH_FIELD,
                )
            ]
        )
    now = datetime.now(UTC)
    parsed: list[Report | list[UserError]] = []
    for index, given in enumerate(reports):
        try:
            parsed.append(
                parse_report(
                    email_address=given.email_address,
                    protocol=given.protocol,
                    client_address=given.client_address,
                    occurred_at=given.occurred_at,
                    now=now,
                    client_name=given.client_name,
                    session_id=given.session_id,
                )
            )
        except UserErrors as refused:
            parsed.append([_within(error, index) for error in refused.errors])
    valid = await _decide([report for report in parsed if isinstance(report, Report)], policies)
    decided = iter(valid)
    parsed = [next(decided) if isinstance(report, Report) else report for report in parsed]
    await _mark_late(valid, coalesce)
    recorded = iter(await write_reports(valid, gateway, session_ttl, coalesce))
    answers: list[Answer] = []
    published: list[Event] = []
    for index, report in enumerate(parsed):
        if not isinstance(report, Report):
            answers.append(Answer(False, report))
            continue
        done = next(recorded)
        if done is None:
            answers.append(Answer(False, [_within(_no_account(report), index)]))
            continue
        answers.append(Answer(done.allowed, [], done.refusal))
        published += await _events(report, done, gateway)
    await events.publish(published)
    return answers


def _within(error: UserError, index: int) -> UserError:
    """A report's error, pointing at it inside the batch: ["input", "reports", "3", field]."""
    return UserError(
        error.code, error.message, (*_BATCH_FIELD, str(index), *(error.field or ())[1:])
    )


def _no_account(report: Report) -> UserError:
    return UserError(
        UserErrorCode.NOT_FOUND,
        f"No account {report.username}@{report.domain}.",
        ("input", "emailAddress"),
    )


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
        refusal=recorded.refusal,
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
            if connected.is_open(replaced)
            else SessionEndReason.EXPIRED
        )
        published += connected.session_changes(
            await connected.describe([replaced]), reason=reason, at=report.occurred_at
        )
    return published
