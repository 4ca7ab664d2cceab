"""The audit log of a domain, newest first."""

from __future__ import annotations

import strawberry

from api.auth.principal import Role
from api.graphql.context import Info, tenant_of
from api.graphql.directives import auth
from api.graphql.types import AuditEntry, Connection, audit_entry_of, connection_of
from api.services import audit
from api.services.paging import PageRequest


@strawberry.type
class AuditQuery:
    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="Administrative changes in a domain, newest first.",
    )
    async def audit_log(
        self,
        info: Info,
        domain: str | None = None,
        first: int | None = None,
        after: str | None = None,
    ) -> Connection[AuditEntry]:
        tenant = tenant_of(info)
        settings = info.context.settings
        page = await audit.entries(
            domain_id=tenant.domain_id,
            request=PageRequest(first=first, after=after),
            default_size=settings.page_size_default,
            max_size=settings.page_size_max,
        )
        return connection_of(
            page, (audit_entry_of(row, tenant.domain) for row in page.items), page.count
        )
