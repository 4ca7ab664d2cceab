"""Gateway tokens: what a protocol gateway signs in with (created by a system administrator)."""

from __future__ import annotations

import strawberry

from api.auth.principal import Role
from api.graphql.context import Info
from api.graphql.directives import auth
from api.graphql.mutations import mutation
from api.graphql.types import UserError
from api.services import gateways


@strawberry.input
class CreateGatewayTokenInput:
    name: str


@strawberry.type
class CreateGatewayTokenPayload:
    token: str | None = strawberry.field(
        default=None, description="Shown once; only a hash of it is stored."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class GatewayMutation:
    @mutation(extensions=auth(Role.SYSTEM_ADMIN))
    async def create_gateway_token(
        self, info: Info, input: CreateGatewayTokenInput
    ) -> CreateGatewayTokenPayload:
        token = await gateways.create_gateway_token(
            actor=info.context.require_principal().username, name=input.name
        )
        return CreateGatewayTokenPayload(token=token, user_errors=[])
