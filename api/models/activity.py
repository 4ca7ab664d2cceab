"""Protocol gateways and the logins they report."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from api.models.domains import Account, Domain, MailProtocol


class LoginRefusal(StrEnum):
    """Why a gateway was told no (the first of these that applies)."""

    MAPI_EWS_DISABLED = "MAPI_EWS_DISABLED"
    PROTOCOL_NOT_ALLOWED = "PROTOCOL_NOT_ALLOWED"
    CLIENT_NOT_ALLOWED = "CLIENT_NOT_ALLOWED"


# A gateway token is stored only as its SHA-256; it is shown once, when created. Revoked tokens
# stay (with revoked_at) so their names cannot be reused by mistake.
class GatewayToken(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    created_by = fields.CharField(max_length=320)
    created_at = fields.DatetimeField(auto_now_add=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "gateway_token"


# One login a gateway reported, allowed or refused, and the same login repeated within
# MAPI_EWS_LOGIN_EVENT_COALESCE_SECONDS of it: `count` reports from occurred_at to
# last_occurred_at. Username and protocol are kept even if the account goes, so the history still
# reads; rows older than the retention setting are pruned. On PostgreSQL the table is partitioned
# by day of occurred_at (api/services/login_partitions.py), so retention drops whole days.
class LoginEvent(Model):
    id = fields.BigIntField(primary_key=True)
    domain: fields.ForeignKeyRelation[Domain] = fields.ForeignKeyField(
        "api.Domain", related_name=False, on_delete=fields.CASCADE
    )
    domain_id: int
    account: fields.ForeignKeyNullableRelation[Account] = fields.ForeignKeyField(
        "api.Account", null=True, related_name=False, on_delete=fields.SET_NULL
    )
    account_id: int | None
    username = fields.CharField(max_length=64)
    protocol = fields.CharEnumField(MailProtocol, max_length=8)
    occurred_at = fields.DatetimeField()
    client_address = fields.CharField(max_length=45, null=True)
    allowed = fields.BooleanField()
    # Why it was refused; NULL when allowed. Part of the coalescing key, as `allowed` is.
    refusal = fields.CharEnumField(LoginRefusal, max_length=24, null=True)
    # The client as it named itself to the gateway (a User-Agent, or a name and version).
    client_name = fields.CharField(max_length=256, null=True)
    count = fields.IntField(default=1)
    # The latest report counted on this event; NULL on rows from before coalescing (one report).
    last_occurred_at = fields.DatetimeField(null=True)

    class Meta:
        table = "login_event"
        # Newest first within a domain, optionally for one username; an account's latest (the
        # event a report repeats, and the account's deletion); pruning goes by age (on SQLite:
        # PostgreSQL drops whole days and has no such index, migration 0010).
        indexes = (
            ("domain_id", "occurred_at", "id"),
            ("domain_id", "username", "occurred_at", "id"),
            ("account_id", "occurred_at"),
            ("occurred_at",),
        )
