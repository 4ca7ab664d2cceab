"""Domains and their mailbox accounts."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class MailProtocol(StrEnum):
    MAPI = "MAPI"
    EWS = "EWS"


# An account's protocols, as bits of `Account.mapi_ews_protocols`.
PROTOCOL_BITS = {MailProtocol.MAPI: 1, MailProtocol.EWS: 2}
BOTH_PROTOCOLS = 3


def protocols_of(mask: int) -> list[MailProtocol]:
    """The protocols a `mapi_ews_protocols` value holds, MAPI first."""
    return [protocol for protocol, bit in PROTOCOL_BITS.items() if mask & bit]


def mask_of(protocols: list[MailProtocol] | None) -> int:
    """The `mapi_ews_protocols` value of these protocols; None: both."""
    if protocols is None:
        return BOTH_PROTOCOLS
    mask = 0
    for protocol in protocols:
        mask |= PROTOCOL_BITS[protocol]
    return mask


class Domain(Model):
    id = fields.IntField(primary_key=True)
    # Stored lower-case: domain names compare without case.
    name = fields.CharField(max_length=253, unique=True)
    mapi_ews_account_management = fields.BooleanField(default=True)
    max_mapi_ews_accounts = fields.IntField(null=True)
    # Accounts idle this many days lose MAPI/EWS by the daily reclaim-idle; NULL: never.
    mapi_ews_idle_reclaim_days = fields.IntField(null=True)
    # How many of its accounts have MAPI/EWS: kept by every change of that set, in the change's
    # transaction under this row's lock (api/services/domains.py), so usage and the allowance
    # read one row whatever the domain's size. `repair-mapi-ews-counts` recounts after an import.
    mapi_ews_enabled_count = fields.IntField(default=0)
    created_at = fields.DatetimeField(auto_now_add=True)
    # Set when the mail server's domain was removed (removeDomain): its accounts are gone, and
    # the row stays for the monthly report (a removed domain is billed for the months it
    # existed in) and its audit. Creating the domain again brings the row back.
    removed_at = fields.DatetimeField(null=True)

    accounts: fields.ReverseRelation[Account]

    class Meta:
        table = "domain"


class Account(Model):
    id = fields.IntField(primary_key=True)
    domain: fields.ForeignKeyRelation[Domain] = fields.ForeignKeyField(
        "api.Domain", related_name="accounts", on_delete=fields.CASCADE
    )
    domain_id: int
    # Stored lower-case: usernames compare without case.
    username = fields.CharField(max_length=64)
    name = fields.CharField(max_length=256, null=True)
    # The mail server's own id for the account (upsertAccounts, sync-accounts), when it gave
    # one: the same id under a new username is a rename. Unique within the domain.
    external_id = fields.CharField(max_length=255, null=True)
    # Empty for an account the mail server provisioned: it cannot sign in until one is set.
    password_hash = fields.CharField(max_length=255)
    is_domain_admin = fields.BooleanField(default=False)
    mapi_ews_enabled = fields.BooleanField(default=False)
    mapi_ews_enabled_at = fields.DatetimeField(null=True)
    # The protocols it may use while MAPI/EWS is enabled (PROTOCOL_BITS): both unless an
    # administrator named fewer. Enabling without naming any sets both again.
    mapi_ews_protocols = fields.SmallIntField(default=BOTH_PROTOCOLS, db_default=BOTH_PROTOCOLS)
    last_login = fields.DatetimeField(null=True)
    last_login_protocol = fields.CharEnumField(MailProtocol, max_length=8, null=True)
    last_mapi_login = fields.DatetimeField(null=True)
    last_ews_login = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    recency: fields.BackwardOneToOneRelation[AccountRecency]

    class Meta:
        table = "account"
        # (domain, external_id) is unique too, where there is one: a partial index that
        # migration 0012 makes (Tortoise declares no partial ones).
        unique_together = (("domain", "username"),)
        # The MAPI/EWS tab filters on (domain, enabled) and sorts by one column, id breaking ties.
        # No index here names a column a login report writes (the last-login columns): a report's
        # UPDATE then changes no indexed column, so PostgreSQL writes it as a heap-only tuple and
        # inserts into none of these indexes. Ordering by last login and finding idle accounts
        # go through AccountRecency instead.
        indexes = (
            ("domain_id", "mapi_ews_enabled", "username", "id"),
            ("domain_id", "mapi_ews_enabled", "name", "id"),
            ("domain_id", "mapi_ews_enabled", "mapi_ews_enabled_at", "id"),
        )


class AccountRecency(Model):
    """The columns the tab orders and finds idle accounts by, in a narrow row of their own.

    A copy of the account's, written only by the database: triggers on `account` (migration
    0011) keep it in step in the same statement as every insert and update, whoever writes it:
    the report statements, enable and disable, a bulk import in SQL. Its indexes are the only
    ones a login report's time reaches: a report inserts into this narrow row's key and order
    index instead of every index of the account.
    """

    account: fields.OneToOneRelation[Account] = fields.OneToOneField(
        "api.Account", primary_key=True, related_name="recency", on_delete=fields.CASCADE
    )
    account_id: int
    domain_id = fields.IntField()
    mapi_ews_enabled = fields.BooleanField()
    mapi_ews_enabled_at = fields.DatetimeField(null=True)
    last_login = fields.DatetimeField(null=True)

    class Meta:
        table = "account_recency"
        # The tab by last login, and idle accounts that logged in (last_login at most a cutoff);
        # those that never did are found by a partial index (migration 0011) that a report,
        # which always sets last_login, never writes to.
        indexes = (("domain_id", "mapi_ews_enabled", "last_login", "account_id"),)
