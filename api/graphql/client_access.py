"""Who may connect, and with what: an account's protocols, a domain's client access policy, and
the clients its logins used."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import strawberry

from api.auth.principal import Permission, Role
from api.graphql.context import Info, tenant_of
from api.graphql.directives import auth
from api.graphql.inputs import plain_input
from api.graphql.mutations import mutation
from api.graphql.types import Account, UserError, account_of
from api.models import ClientAccessMode, MailProtocol
from api.services import client_access
from api.services.access_policy import Decider, Policy, Rule

strawberry.enum(ClientAccessMode, name="ClientAccessMode")  # the model's enum, registered

_DOMAIN = ("input", "domain")


@strawberry.type(description="One rule of a domain's client access policy.")
class ClientAccessRule:
    pattern: str = strawberry.field(
        description="Matched against the whole client name the gateway reported, without case; "
        "`*` stands for any run of characters (`Microsoft Outlook*`, `*LinkedIn*`)."
    )
    protocol: MailProtocol | None = strawberry.field(
        description="The protocol it applies to; null: both."
    )
    below_version: str | None = strawberry.field(
        description="When set, the rule names only clients whose version is lower than this: "
        "the first run of dotted numbers in the client name, compared number by number "
        "(16.0.9 < 16.0.10000). A client name without a version is not below any version."
    )


@strawberry.type(
    description="Which clients may use MAPI/EWS in a domain. The default (BLOCK_LISTED, no "
    "rules) lets every client in."
)
class ClientAccessPolicy:
    domain: str
    mode: ClientAccessMode
    rules: list[ClientAccessRule]
    allow_unnamed_clients: bool = strawberry.field(
        description="Whether a login whose gateway reported no client name may go through."
    )
    updated_at: datetime | None
    updated_by: str | None = strawberry.field(
        description="Username of whoever set it last; null for the default."
    )


def policy_of(policy: Policy, domain: str) -> ClientAccessPolicy:
    return ClientAccessPolicy(
        domain=domain,
        mode=policy.mode,
        rules=[
            ClientAccessRule(
                pattern=rule.pattern, protocol=rule.protocol, below_version=rule.below_version
            )
            for rule in policy.rules
        ],
        allow_unnamed_clients=policy.allow_unnamed_clients,
        updated_at=policy.updated_at,
        updated_by=policy.updated_by,
    )


@strawberry.type(description="A client seen in a domain's MAPI/EWS logins.")
class MapiEwsClientUsage:
    client_name: str | None = strawberry.field(
        description="As the gateways reported it; null for logins that named no client."
    )
    protocol: MailProtocol
    accounts: int = strawberry.field(description="Distinct accounts that used it.")
    logins: int = strawberry.field(
        description="Logins reported, allowed or not (repeats counted on one event count each)."
    )
    refused_logins: int
    last_seen_at: datetime
    allowed_now: bool = strawberry.field(
        description="Whether the domain's policy as it stands lets it in."
    )


def usage_of(found: client_access.ClientUsage) -> MapiEwsClientUsage:
    return MapiEwsClientUsage(
        client_name=found.client_name,
        protocol=found.protocol,
        accounts=found.accounts,
        logins=found.logins,
        refused_logins=found.refused_logins,
        last_seen_at=found.last_seen_at,
        allowed_now=found.allowed_now,
    )


@plain_input
@strawberry.input
class ClientAccessRuleInput:
    pattern: str
    protocol: MailProtocol | None = None
    below_version: str | None = None


@plain_input
@strawberry.input
class SetClientAccessPolicyInput:
    domain: str | None = None
    mode: ClientAccessMode
    rules: list[ClientAccessRuleInput] = strawberry.field(
        description="At most 100 rules; the whole list replaces the old one."
    )
    allow_unnamed_clients: bool = True
    dry_run: bool = strawberry.field(
        default=False, description="Say what the policy would refuse; change nothing."
    )


@strawberry.type
class SetClientAccessPolicyPayload:
    policy: ClientAccessPolicy | None = strawberry.field(
        default=None,
        description="The policy as it now stands (with dryRun: as it would); null when "
        "userErrors is not empty.",
    )
    sessions_ending: int = strawberry.field(
        default=0,
        description="Open sessions whose client the policy refuses: told to end (with dryRun: "
        "that would be).",
    )
    refused_clients: list[MapiEwsClientUsage] = strawberry.field(
        default_factory=list,
        description="Clients seen in the last 30 days that the policy refuses.",
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@plain_input
@strawberry.input
class SetMapiEwsProtocolsInput:
    domain: str | None = None
    usernames: list[str] = strawberry.field(
        description="Accounts with MAPI/EWS enabled; all change, or none does."
    )
    protocols: list[MailProtocol] = strawberry.field(
        description="One protocol or both; never none (disable the account instead)."
    )


@strawberry.type
class SetMapiEwsProtocolsPayload:
    accounts: list[Account] = strawberry.field(
        default_factory=list,
        description="The named accounts as they now stand; empty when userErrors is not.",
    )
    sessions_ending: int = strawberry.field(
        default=0, description="Open sessions over a protocol taken away, told to end."
    )
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ClientAccessQuery:
    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="The domain's client access policy (the default lets every client in).",
    )
    async def client_access_policy(
        self, info: Info, domain: str | None = None
    ) -> ClientAccessPolicy:
        tenant = tenant_of(info)
        return policy_of(await client_access.get_policy(tenant.domain_id), tenant.domain)

    @strawberry.field(
        extensions=auth(Role.DOMAIN_ADMIN),
        description="The clients that logged in over MAPI/EWS in the domain in the last `days` "
        "days (1 to 90: the whole UTC days before today, and today so far), most accounts first, "
        "at most 500: what a client access policy would act on. Exact, also for old logins "
        "reported late.",
    )
    async def mapi_ews_clients(
        self,
        info: Info,
        domain: str | None = None,
        days: Annotated[int, strawberry.argument(description="1 to 90.")] = 30,
    ) -> list[MapiEwsClientUsage]:
        tenant = tenant_of(info)
        decider = Decider(await client_access.get_policy(tenant.domain_id))
        return [usage_of(c) for c in await client_access.clients(tenant, days, decider)]


@strawberry.type
class ClientAccessMutation:
    @mutation(
        extensions=auth(Role.DOMAIN_ADMIN, Permission.MANAGE_MAPI_EWS, domain_input=_DOMAIN),
        description="Which of the two protocols enabled accounts may use; sessions over a "
        "protocol taken away end.",
    )
    async def set_mapi_ews_protocols(
        self, info: Info, input: SetMapiEwsProtocolsInput
    ) -> SetMapiEwsProtocolsPayload:
        tenant = tenant_of(info)
        done = await client_access.set_protocols(
            events=info.context.events,
            actor=info.context.require_principal().username,
            tenant=tenant,
            usernames=input.usernames,
            protocols=input.protocols,
            max_batch=info.context.settings.batch_size_max,
        )
        return SetMapiEwsProtocolsPayload(
            accounts=[
                account_of(row, tenant.domain, active_sessions=done.open_sessions.get(row.id, 0))
                for row in done.accounts
            ],
            sessions_ending=done.sessions_ending,
            user_errors=[],
        )

    @mutation(
        extensions=auth(Role.DOMAIN_ADMIN, Permission.MANAGE_MAPI_EWS, domain_input=_DOMAIN),
        description="Replace the domain's client access policy (or, with dryRun, only say what "
        "it would refuse); open sessions of clients it refuses end.",
    )
    async def set_client_access_policy(
        self, info: Info, input: SetClientAccessPolicyInput
    ) -> SetClientAccessPolicyPayload:
        tenant = tenant_of(info)
        done = await client_access.set_policy(
            events=info.context.events,
            policies=info.context.policies,
            actor=info.context.require_principal().username,
            tenant=tenant,
            policy=Policy(
                mode=input.mode,
                rules=tuple(
                    Rule(rule.pattern, rule.protocol, rule.below_version) for rule in input.rules
                ),
                allow_unnamed_clients=input.allow_unnamed_clients,
            ),
            dry_run=input.dry_run,
        )
        return SetClientAccessPolicyPayload(
            policy=policy_of(done.policy, tenant.domain),
            sessions_ending=done.sessions_ending,
            refused_clients=[usage_of(c) for c in done.refused_clients],
            user_errors=[],
        )
