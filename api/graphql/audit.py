"""The audit log of a domain, newest first."""

from __future__ import annotations

from typing import Annotated

import strawberry

from api.auth.principal import Role
from api.graphql.context import Info, tenant_of
from api.graphql.directives import auth
from api.graphql.types import AuditEntry, Connection, audit_entry_of, connection_of
from api.models import AuditAction
from api.services import audit, validation
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
        action: Annotated[
            AuditAction | None, strawberry.argument(description="Only entries of this action.")
        ] = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="Only entries whose target (an account, a domain) or actor "
                "contains this, without case."
            ),
        ] = None,
    ) -> Connection[AuditEntry]:
        tenant = tenant_of(info)
        settings = info.context.settings
        page = await audit.entries(
            domain_id=tenant.domain_id,
            action=action,
            search=validation.search_argument(search),
            request=PageRequest(first=first, after=after),
            default_size=settings.page_size_default,
            max_size=settings.page_size_max,
        )
        return connection_of(
            page, (audit_entry_of(row, tenant.domain) for row in page.items), page.count
        )
