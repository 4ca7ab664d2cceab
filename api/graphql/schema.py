"""Assembles the areas into one schema. How requests run on it is api/transport's business."""

from __future__ import annotations

import strawberry
from strawberry.tools import merge_types

from api.graphql.accounts import AccountMutation, AccountQuery
from api.graphql.activity import ActivityMutation, ActivityQuery, ActivitySubscription
from api.graphql.audit import AuditQuery
from api.graphql.client_access import ClientAccessMutation, ClientAccessQuery
from api.graphql.directives import AuthDirective
from api.graphql.domains import DomainMutation, DomainQuery
from api.graphql.gateways import GatewayMutation
from api.graphql.nodes import NodeQuery
from api.graphql.protocol_sessions import (
    ProtocolSessionMutation,
    ProtocolSessionQuery,
    ProtocolSessionSubscription,
)
from api.graphql.provisioning import ProvisioningMutation
from api.graphql.seats import SeatsMutation, SeatsSubscription
from api.graphql.sign_in import SignInMutation, SignInQuery
from api.graphql.usage import UsageQuery, UsageSubscription

Query = merge_types(
    "Query",
    (
        SignInQuery,
        AccountQuery,
        ActivityQuery,
        DomainQuery,
        AuditQuery,
        ProtocolSessionQuery,
        UsageQuery,
        ClientAccessQuery,
        NodeQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        SignInMutation,
        SeatsMutation,
        AccountMutation,
        DomainMutation,
        GatewayMutation,
        ActivityMutation,
        ProtocolSessionMutation,
        ProvisioningMutation,
        ClientAccessMutation,
    ),
)
Subscription = merge_types(
    "Subscription",
    (ActivitySubscription, SeatsSubscription, ProtocolSessionSubscription, UsageSubscription),
)


def build_schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        schema_directives=[AuthDirective],
    )


def schema_sdl() -> str:
    return build_schema().as_str() + "\n"
