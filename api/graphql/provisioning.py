"""Accounts follow the mail server: upsertAccounts, removeAccounts, removeDomain."""

from __future__ import annotations

import strawberry

from api.auth.principal import Role
from api.graphql.context import Info
from api.graphql.directives import auth
from api.graphql.mutations import mutation
from api.graphql.types import MapiEwsUsage, UserError, usage_of
from api.services import provisioning, removals


@strawberry.input(description="An account as the mail server has it.")
class AccountRecordInput:
    username: str = strawberry.field(
        description="The username within the domain (the part before the @)."
    )
    name: str | None = None
    external_id: str | None = strawberry.field(
        default=None,
        description="The mail server's own id. With it, a known externalId under a new username "
        "is a rename: seat, protocols, sessions, history and audit stay with the account.",
    )
    is_domain_admin: bool | None = strawberry.field(
        default=None, description="Absent: unchanged (false for a new account)."
    )


@strawberry.input
class UpsertAccountsInput:
    domain: str
    accounts: list[AccountRecordInput] = strawberry.field(
        description="At most 500: each is created when new, updated when known (by externalId "
        "when given, else by username). All are applied, or none is."
    )


@strawberry.type
class UpsertAccountsPayload:
    created: int = 0
    updated: int = 0
    renamed: int = 0
    unchanged: int = 0
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RemoveAccountsInput:
    domain: str
    usernames: list[str] = strawberry.field(
        description="At most 500 usernames; all are removed, or none is."
    )


@strawberry.type
class RemoveAccountsPayload:
    removed: int = 0
    seats_freed: int = strawberry.field(
        default=0, description="Removed accounts that held a MAPI/EWS seat."
    )
    sessions_ending: int = strawberry.field(
        default=0, description="Their open sessions, told to end (ACCOUNT_REMOVED)."
    )
    usage: MapiEwsUsage | None = None
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.input
class RemoveDomainInput:
    name: str
    confirm: str = strawberry.field(
        description="The domain's name once more: nothing is removed by a slip."
    )


@strawberry.type
class RemoveDomainPayload:
    removed_accounts: int = 0
    sessions_ending: int = 0
    user_errors: list[UserError] = strawberry.field(default_factory=list)


@strawberry.type
class ProvisioningMutation:
    @mutation(
        extensions=auth(Role.SYSTEM_ADMIN),
        description="The mail server's accounts, created or updated in batches (provisioning, "
        "sync-accounts).",
    )
    async def upsert_accounts(
        self, info: Info, input: UpsertAccountsInput
    ) -> UpsertAccountsPayload:
        done = await provisioning.upsert_accounts(
            events=info.context.events,
            actor=info.context.require_principal().username,
            domain=input.domain,
            records=[
                provisioning.AccountRecord(
                    username=r.username,
                    name=r.name,
                    external_id=r.external_id,
                    is_domain_admin=r.is_domain_admin,
                )
                for r in input.accounts
            ],
        )
        return UpsertAccountsPayload(
            created=len(done.created),
            updated=len(done.updated),
            renamed=len(done.renamed),
            unchanged=len(done.unchanged),
            user_errors=[],
        )

    @mutation(
        extensions=auth(Role.SYSTEM_ADMIN),
        description="Accounts gone from the mail server: seats freed, sessions ended, history "
        "and audit kept.",
    )
    async def remove_accounts(
        self, info: Info, input: RemoveAccountsInput
    ) -> RemoveAccountsPayload:
        done = await removals.remove_accounts(
            events=info.context.events,
            actor=info.context.require_principal().username,
            domain=input.domain,
            usernames=input.usernames,
            max_batch=provisioning.MAX_RECORDS,
        )
        return RemoveAccountsPayload(
            removed=done.removed,
            seats_freed=done.seats_freed,
            sessions_ending=done.sessions_ending,
            usage=usage_of(done.usage),
            user_errors=[],
        )

    @mutation(
        extensions=auth(Role.SYSTEM_ADMIN),
        description="A domain gone from the mail server, with all its accounts.",
    )
    async def remove_domain(self, info: Info, input: RemoveDomainInput) -> RemoveDomainPayload:
        done = await removals.remove_domain(
            events=info.context.events,
            actor=info.context.require_principal().username,
            name=input.name,
            confirm=input.confirm,
        )
        return RemoveDomainPayload(
            removed_accounts=done.removed, sessions_ending=done.sessions_ending, user_errors=[]
        )
