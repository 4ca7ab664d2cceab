"""Signing in: passwords, access tokens and rotating refresh tokens."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from api.auth.passwords import hash_password, verify_password
from api.auth.principal import Principal, Role
from api.auth.throttle import SignInThrottle
from api.auth.tokens import issue_access_token, new_opaque_token, token_digest
from api.errors import UserError, UserErrorCode, UserErrors
from api.events import Event, EventBus, Topic
from api.models import Account, Domain, GatewayToken, RefreshToken, SystemAdmin
from api.services import validation
from api.services.event_payloads import PrincipalsChanged

_BAD_CREDENTIALS = UserErrors(
    [UserError(UserErrorCode.INVALID_CREDENTIALS, "The username or password is wrong.", None)]
)
_BAD_REFRESH = UserErrors(
    [
        UserError(
            UserErrorCode.INVALID_CREDENTIALS,
            "The refresh token is invalid, expired or already used; sign in again.",
            ("input", "refreshToken"),
        )
    ]
)


@dataclass(frozen=True, slots=True)
class TokenPolicy:
    key: str
    access_lifetime: timedelta
    refresh_lifetime: timedelta


@dataclass(frozen=True, slots=True)
class SignIn:
    access_token: str
    refresh_token: str
    expires_at: datetime
    principal: Principal


def account_principal(account: Account, domain: Domain) -> Principal:
    return Principal(
        role=Role.DOMAIN_ADMIN if account.is_domain_admin else Role.USER,
        subject_id=account.id,
        username=f"{account.username}@{domain.name}",
        domain_id=domain.id,
        domain=domain.name,
    )


def _admin_principal(admin: SystemAdmin) -> Principal:
    return Principal(role=Role.SYSTEM_ADMIN, subject_id=admin.id, username=admin.username)


async def _find(username: str) -> tuple[str | None, Principal | None]:
    """(password hash, principal) for a sign-in name; (None, None) when there is no such one."""
    try:
        if "@" in username:
            user, domain_name = validation.email_address(username)
            account = (
                await Account.filter(username=user, domain__name=domain_name)
                .select_related("domain")
                .first()
            )
            if account is None:
                return None, None
            # No password (an account the mail server provisioned): no sign-in, in the time
            # an unknown name takes.
            return account.password_hash or None, account_principal(account, account.domain)
        admin = await SystemAdmin.filter(username=validation.system_admin_name(username)).first()
        return (admin.password_hash, _admin_principal(admin)) if admin else (None, None)
    except ValueError:
        return None, None


async def _start(principal: Principal, policy: TokenPolicy, family: str) -> SignIn:
    access, expires = issue_access_token(principal, key=policy.key, lifetime=policy.access_lifetime)
    refresh = new_opaque_token()
    await RefreshToken.create(
        token_hash=token_digest(refresh),
        family=family,
        account_id=principal.subject_id if principal.domain_id is not None else None,
        system_admin_id=principal.subject_id if principal.is_system_admin else None,
        expires_at=datetime.now(UTC) + policy.refresh_lifetime,
    )
    return SignIn(access, refresh, expires, principal)


def _too_many(wait: int) -> UserErrors:
    when = f"{wait} second{'s' if wait != 1 else ''}" if wait < 120 else f"{-(-wait // 60)} minutes"
    message = f"Too many failed sign-ins: try again in {when}."
    return UserErrors([UserError(UserErrorCode.TOO_MANY_ATTEMPTS, message, None)])


async def sign_in(
    *,
    username: str,
    password: str,
    policy: TokenPolicy,
    throttle: SignInThrottle | None = None,
    client_address: str | None = None,
) -> SignIn:
    """INVALID_CREDENTIALS, in the same time, whether the name is unknown or the password wrong.
    With a throttle, guessing is slowed and then locked per name and per client address; a
    refused attempt checks no password at all (api/auth/throttle.py)."""
    if throttle is not None:
        wait = await throttle.attempt(username, client_address)
        if wait:
            raise _too_many(wait)
    password_hash, principal = await _find(username[:400])
    verified = await verify_password(password_hash, password[: validation.MAX_PASSWORD])
    if not verified or principal is None:
        if throttle is not None:
            throttle.failed()
        raise _BAD_CREDENTIALS
    if throttle is not None:
        await throttle.succeeded(username, client_address)
    return await _start(principal, policy, family=secrets.token_hex(16))


async def refresh(*, refresh_token: str, policy: TokenPolicy) -> SignIn:
    """Trade a refresh token for a new pair. A token is good once: presenting a used token again
    revokes every token of its sign-in, since one of the two presenters stole it."""
    now = datetime.now(UTC)
    row = await RefreshToken.filter(token_hash=token_digest(refresh_token[:200])).first()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        raise _BAD_REFRESH
    claimed = await RefreshToken.filter(id=row.id, used_at=None).update(used_at=now)
    if not claimed:
        await RefreshToken.filter(family=row.family).update(revoked_at=now)
        raise _BAD_REFRESH
    principal: Principal | None = None
    if row.account_id is not None:
        account = await Account.filter(id=row.account_id).select_related("domain").first()
        principal = account_principal(account, account.domain) if account else None
    elif row.system_admin_id is not None:
        admin = await SystemAdmin.filter(id=row.system_admin_id).first()
        principal = _admin_principal(admin) if admin else None
    if principal is None:
        raise _BAD_REFRESH
    return await _start(principal, policy, family=row.family)


async def sign_out(*, refresh_token: str) -> None:
    """Ends a sign-in: every refresh token of its family is revoked, so neither this one nor one
    already rotated out of it can start a session again. Unknown tokens are ignored: the answer
    is the same, so it tells nobody whether a token existed. Access tokens already issued run
    out by themselves (they are not stored)."""
    row = await RefreshToken.filter(token_hash=token_digest(refresh_token[:200])).first()
    if row is not None:
        await RefreshToken.filter(family=row.family, revoked_at=None).update(
            revoked_at=datetime.now(UTC)
        )


async def still_allowed(principal: Principal) -> bool:
    """Whether `principal` still stands as its credentials say: the account exists, in the same
    domain, with the same role; the system administrator exists; the gateway token is not
    revoked. Each process asks this about an access token's principal at most once per
    `credential_check_seconds` (api/auth/credentials.py), and again at once after
    `principals_changed`; long-lived connections ask it again from time to time."""
    if principal.role is Role.GATEWAY:
        return await GatewayToken.filter(id=principal.subject_id, revoked_at=None).exists()
    if principal.is_system_admin:
        return await SystemAdmin.filter(id=principal.subject_id).exists()
    account = (
        await Account.filter(id=principal.subject_id, domain_id=principal.domain_id)
        .only("id", "is_domain_admin")
        .first()
    )
    return account is not None and account.is_domain_admin == (principal.role is Role.DOMAIN_ADMIN)


async def principals_changed(events: EventBus, domain_id: int) -> None:
    """Once committed: accounts of the domain that may hold access tokens were removed or
    changed role. Every process asks the database again before it trusts one of the domain's
    tokens (`still_allowed`)."""
    await events.publish([Event(Topic.PRINCIPALS, 0, PrincipalsChanged(domain_id))])


async def create_system_admin(*, username: str, password: str) -> SystemAdmin:
    try:
        name = validation.system_admin_name(username)
        validation.password(password)
    except ValueError as error:
        raise UserErrors([UserError(UserErrorCode.INVALID_INPUT, str(error), None)]) from None
    password_hash = await hash_password(password)
    try:
        async with in_transaction("default") as conn:
            return await SystemAdmin.create(
                username=name, password_hash=password_hash, using_db=conn
            )
    except IntegrityError:
        raise UserErrors(
            [UserError(UserErrorCode.ALREADY_EXISTS, f"{name} already exists.", None)]
        ) from None
