"""The principal: who a request acts as, as the access token says."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Role(StrEnum):
    USER = "USER"
    DOMAIN_ADMIN = "DOMAIN_ADMIN"
    SYSTEM_ADMIN = "SYSTEM_ADMIN"
    GATEWAY = "GATEWAY"


class Permission(StrEnum):
    MANAGE_MAPI_EWS = "MANAGE_MAPI_EWS"


@dataclass(frozen=True, slots=True)
class Principal:
    """Signed-in identity. `username` is user@domain for accounts, a bare name otherwise."""

    role: Role
    subject_id: int
    username: str
    domain_id: int | None = None
    domain: str | None = None
    # When the credentials that named this principal expire (access tokens); None: no expiry
    # (gateway tokens, which are revoked instead).
    expires_at: datetime | None = field(default=None, compare=False)

    @property
    def is_system_admin(self) -> bool:
        return self.role is Role.SYSTEM_ADMIN

    def satisfies(self, required: Role) -> bool:
        """Whether this principal's role meets `required` (before any domain rule)."""
        if required is Role.GATEWAY or self.role is Role.GATEWAY:
            return self.role is required
        rank = {Role.USER: 0, Role.DOMAIN_ADMIN: 1, Role.SYSTEM_ADMIN: 2}
        return rank[self.role] >= rank[required]


ANONYMOUS = "ANONYMOUS"


def caller_key(principal: Principal | None, address: str | None) -> str:
    """Whose share a request spends (a budget of query cost, places for subscriptions): the
    principal's, or without a token its client address's."""
    if principal is None:
        return f"{ANONYMOUS}:{address or '-'}"
    return f"{principal.role}:{principal.subject_id}"
