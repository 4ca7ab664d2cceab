"""Signing in and the signed-in principal."""

from __future__ import annotations

from datetime import datetime, timedelta

import strawberry

from api.auth.principal import Permission, Principal, Role
from api.graphql.context import Info
from api.graphql.mutations import mutation
from api.graphql.types import UserError, named_id
from api.services import sign_ins, tenancy
from api.settings import Settings


@strawberry.type(description="The signed-in principal.")
class Viewer:
    id: strawberry.ID = strawberry.field(
        description="Stable for the signed-in principal, for client caches."
    )
    username: str
    role: Role
    domain: str | None = strawberry.field(
        description="Null for system administrators and gateways."
    )
    permissions: list[Permission]


async def viewer_of(principal: Principal) -> Viewer:
    return Viewer(
        id=named_id("Viewer", f"{principal.role.value}:{principal.subject_id}"),
        username=principal.username,
        role=principal.role,
        domain=principal.domain,
        permissions=sorted(await tenancy.permissions(principal, principal.domain_id)),
    )


@strawberry.input
class LoginInput:
    username: str = strawberry.field(
        description="user@domain for a domain account, a bare name for a system administrator."
    )
    password: str


@strawberry.input
class RefreshAccessTokenInput:
    refresh_token: str


@strawberry.input
class LogoutInput:
    refresh_token: str


@strawberry.type
class LogoutPayload:
    user_errors: list[UserError]


@strawberry.type
class LoginPayload:
    access_token: str | None = None
    refresh_token: str | None = None
    expires_at: datetime | None = strawberry.field(
        default=None, description="When the access token expires."
    )
    viewer: Viewer | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


def _policy(settings: Settings) -> sign_ins.TokenPolicy:
    return sign_ins.TokenPolicy(
        key=settings.signing_key,
        access_lifetime=timedelta(minutes=settings.access_token_minutes),
        refresh_lifetime=timedelta(days=settings.refresh_token_days),
    )


async def _payload(signed: sign_ins.SignIn) -> LoginPayload:
    return LoginPayload(
        access_token=signed.access_token,
        refresh_token=signed.refresh_token,
        expires_at=signed.expires_at,
        viewer=await viewer_of(signed.principal),
        user_errors=[],
    )


@strawberry.type
class SignInQuery:
    @strawberry.field(
        description="The signed-in principal; null when the request carries no credentials."
    )
    async def viewer(self, info: Info) -> Viewer | None:
        principal = info.context.principal
        return await viewer_of(principal) if principal else None


@strawberry.type
class SignInMutation:
    @mutation()
    async def login(self, info: Info, input: LoginInput) -> LoginPayload:
        signed = await sign_ins.sign_in(
            username=input.username,
            password=input.password,
            policy=_policy(info.context.settings),
            throttle=info.context.throttle,
            client_address=info.context.client_address,
        )
        return await _payload(signed)

    @mutation()
    async def refresh_access_token(
        self, info: Info, input: RefreshAccessTokenInput
    ) -> LoginPayload:
        signed = await sign_ins.refresh(
            refresh_token=input.refresh_token, policy=_policy(info.context.settings)
        )
        return await _payload(signed)

    @mutation(
        description=(
            "Signs out: the refresh token and every token rotated from the same sign-in stop "
            "working. The answer is the same for an unknown token. An access token already "
            "issued lasts until it expires (at most 15 minutes by default)."
        )
    )
    async def logout(self, input: LogoutInput) -> LogoutPayload:
        await sign_ins.sign_out(refresh_token=input.refresh_token)
        return LogoutPayload(user_errors=[])
