"""Which domain a request acts in: decided here and nowhere else."""

from __future__ import annotations

from dataclasses import dataclass

from api.auth.principal import Permission, Principal, Role
from api.errors import BadUserInput, Forbidden
from api.models import Domain
from api.services import validation


@dataclass(frozen=True, slots=True)
class Tenant:
    """The domain a field acts in, after the domain rule has been applied."""

    domain_id: int
    domain: str


async def resolve_tenant(principal: Principal, requested: str | None) -> Tenant | None:
    """A domain administrator gets their own domain and is refused any other; a system
    administrator must name one. None only when a system administrator names an unknown domain."""
    if principal.is_system_admin:
        if requested is None:
            raise BadUserInput("A system administrator must name the domain.")
        try:
            name = validation.domain_name(requested)
        except ValueError as error:
            raise BadUserInput(str(error)) from None
        row = await Domain.filter(name=name, removed_at=None).only("id").first()
        return Tenant(domain_id=row.id, domain=name) if row else None
    if principal.domain_id is None or principal.domain is None:
        raise Forbidden("This principal does not belong to a domain.")
    if requested is not None and requested.strip().lower().rstrip(".") != principal.domain:
        raise Forbidden("Domain administrators act only in their own domain.")
    return Tenant(domain_id=principal.domain_id, domain=principal.domain)


def may_read(principal: Principal, domain_id: int | None) -> bool:
    """The domain rule for one object already found (node, nodes): a system administrator reads
    any; anyone else only their own domain's."""
    if principal.is_system_admin:
        return True
    return domain_id is not None and domain_id == principal.domain_id


async def permissions(principal: Principal, domain_id: int | None) -> frozenset[Permission]:
    """The rights `principal` holds in the domain `domain_id`: all of them for a system
    administrator; for the domain's own administrators, what a system administrator granted
    them; none for anyone else."""
    if principal.is_system_admin:
        return frozenset(Permission)
    if principal.role is not Role.DOMAIN_ADMIN or domain_id is None:
        return frozenset()
    if principal.domain_id != domain_id:
        return frozenset()
    granted = await Domain.filter(id=domain_id).values_list(
        "mapi_ews_account_management", flat=True
    )
    return frozenset({Permission.MANAGE_MAPI_EWS}) if granted and granted[0] else frozenset()
