"""Signed access tokens (PyJWT, HS256) and opaque refresh tokens stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta

import jwt

from api.auth.principal import Principal, Role
from api.errors import Unauthenticated

_ALGORITHM = "HS256"
_AUDIENCE = "mapi-ews-admin"
# Gateway tokens are opaque and looked up; the prefix tells them from signed access tokens (and
# makes a leaked one easy to find for a secret scanner).
GATEWAY_TOKEN_PREFIX = "mgw_"  # noqa: S105 - a prefix, not a secret


def is_gateway_token(token: str) -> bool:
    return token.startswith(GATEWAY_TOKEN_PREFIX)


def issue_access_token(
    principal: Principal, *, key: str, lifetime: timedelta, now: datetime | None = None
) -> tuple[str, datetime]:
    issued = now or datetime.now(UTC)
    expires = issued + lifetime
    claims: dict[str, object] = {
        "sub": str(principal.subject_id),
        "usr": principal.username,
        "rol": principal.role.value,
        "aud": _AUDIENCE,
        "iat": issued,
        "exp": expires,
    }
    if principal.domain_id is not None:
        claims["did"] = principal.domain_id
        claims["dom"] = principal.domain
    return jwt.encode(claims, key, algorithm=_ALGORITHM), expires


def read_access_token(token: str, *, key: str) -> Principal:
    """The principal a valid access token names; Unauthenticated for anything else."""
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            audience=_AUDIENCE,
            options={"require": ["exp", "sub", "rol", "usr"]},
        )
        role = Role(claims["rol"])
        domain_id = claims.get("did")
        return Principal(
            role=role,
            subject_id=int(claims["sub"]),
            username=str(claims["usr"]),
            domain_id=int(domain_id) if domain_id is not None else None,
            domain=claims.get("dom"),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (jwt.PyJWTError, ValueError, KeyError, TypeError):
        raise Unauthenticated("The access token is invalid or has expired.") from None


def new_opaque_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    """What is stored for an opaque token. The token has 256 random bits, so a fast hash is safe."""
    return hashlib.sha256(token.encode()).hexdigest()
