"""The audit log: one row per administrative change, written in the change's transaction."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from api.models.domains import Domain


class AuditAction(StrEnum):
    MAPI_EWS_ENABLED = "MAPI_EWS_ENABLED"
    MAPI_EWS_DISABLED = "MAPI_EWS_DISABLED"
    # An administrator told the gateways to end an account's open sessions.
    MAPI_EWS_DISCONNECTED = "MAPI_EWS_DISCONNECTED"
    DOMAIN_CREATED = "DOMAIN_CREATED"
    DOMAIN_UPDATED = "DOMAIN_UPDATED"
    ACCOUNT_CREATED = "ACCOUNT_CREATED"
    GATEWAY_TOKEN_CREATED = "GATEWAY_TOKEN_CREATED"  # noqa: S105 - a name, not a secret
    GATEWAY_TOKEN_REVOKED = "GATEWAY_TOKEN_REVOKED"  # noqa: S105
    # The mail server changed an account (upsertAccounts, sync-accounts).
    ACCOUNT_UPDATED = "ACCOUNT_UPDATED"
    ACCOUNT_RENAMED = "ACCOUNT_RENAMED"
    ACCOUNT_REMOVED = "ACCOUNT_REMOVED"
    DOMAIN_REMOVED = "DOMAIN_REMOVED"
    # Who may connect, and with what: an account's protocols, a domain's client access policy.
    MAPI_EWS_PROTOCOLS_CHANGED = "MAPI_EWS_PROTOCOLS_CHANGED"
    CLIENT_ACCESS_POLICY_CHANGED = "CLIENT_ACCESS_POLICY_CHANGED"


class AuditEntry(Model):
    id = fields.BigIntField(primary_key=True)
    occurred_at = fields.DatetimeField()
    actor = fields.CharField(max_length=320)
    action = fields.CharEnumField(AuditAction, max_length=32)
    # Kept for as long as the domain exists; entries about no domain have none.
    domain: fields.ForeignKeyNullableRelation[Domain] = fields.ForeignKeyField(
        "api.Domain", null=True, related_name=False, on_delete=fields.CASCADE
    )
    domain_id: int | None
    target = fields.CharField(max_length=320, null=True)

    class Meta:
        table = "audit_entry"
        indexes = (("domain_id", "id"),)
