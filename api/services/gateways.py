"""Gateway tokens: what the MAPI and EWS front ends present when they report logins."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from api.auth.principal import Principal, Role
from api.auth.tokens import GATEWAY_TOKEN_PREFIX, new_opaque_token, token_digest
from api.errors import UserError, UserErrorCode, UserErrors
from api.models import AuditAction, GatewayToken
from api.services import audit, validation

_FIELD = ("input", "name")


@dataclass(frozen=True, slots=True)
class GatewayTokenInfo:
    name: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


async def create_gateway_token(*, actor: str, name: str) -> str:
    """A new token for the gateway `name`; only its hash is stored, so this is the one time it
    can be read."""
    try:
        normal = validation.token_name(name)
    except ValueError as error:
        raise UserErrors([UserError(UserErrorCode.INVALID_INPUT, str(error), _FIELD)]) from None
    token = GATEWAY_TOKEN_PREFIX + new_opaque_token()
    try:
        async with in_transaction("default") as conn:
            await GatewayToken.create(
                name=normal, token_hash=token_digest(token), created_by=actor, using_db=conn
            )
            await audit.record(
                conn=conn,
                actor=actor,
                action=AuditAction.GATEWAY_TOKEN_CREATED,
                domain_id=None,
                targets=[normal],
            )
    except IntegrityError:
        message = f"A gateway token named {normal} exists already (revoked ones keep their name)."
        raise UserErrors([UserError(UserErrorCode.ALREADY_EXISTS, message, _FIELD)]) from None
    return token


async def revoke_gateway_token(*, actor: str, name: str) -> bool:
    """Revoke the token `name`; False when there is no such token that is still live."""
    normal = validation.token_name(name)
    async with in_transaction("default") as conn:
        revoked = (
            await GatewayToken.filter(name=normal, revoked_at__isnull=True)
            .using_db(conn)
            .update(revoked_at=datetime.now(UTC))
        )
        if revoked:
            await audit.record(
                conn=conn,
                actor=actor,
                action=AuditAction.GATEWAY_TOKEN_REVOKED,
                domain_id=None,
                targets=[normal],
            )
    return bool(revoked)


async def gateway_tokens() -> list[GatewayTokenInfo]:
    return [
        GatewayTokenInfo(row.name, row.created_by, row.created_at, row.revoked_at)
        for row in await GatewayToken.all().order_by("name")
    ]


async def gateway_principal(token: str) -> Principal | None:
    """The gateway a live token belongs to, or None."""
    row = (
        await GatewayToken.filter(token_hash=token_digest(token), revoked_at__isnull=True)
        .only("id", "name")
        .first()
    )
    if row is None:
        return None
    return Principal(role=Role.GATEWAY, subject_id=row.id, username=row.name)
