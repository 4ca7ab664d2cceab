"""The MAPI and EWS connections the gateways hold open, as they report them."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from api.models.activity import GatewayToken
from api.models.domains import Account, Domain, MailProtocol


class SessionEndReason(StrEnum):
    MAPI_EWS_DISABLED = "MAPI_EWS_DISABLED"
    DISCONNECTED_BY_ADMIN = "DISCONNECTED_BY_ADMIN"
    ACCOUNT_REMOVED = "ACCOUNT_REMOVED"
    # A protocol taken from the account, or a client access policy that refuses its client.
    ACCESS_POLICY = "ACCESS_POLICY"
    ENDED_BY_GATEWAY = "ENDED_BY_GATEWAY"
    EXPIRED = "EXPIRED"


# A session is open while `end_reason` is NULL and `expires_at` is ahead: each confirmation
# moves `expires_at` one TTL past it, so reads need no setting to tell an expired one. A change
# that ends sessions (a disable, a disconnect) sets `end_reason` in its own transaction; the row
# stays until the gateway reports it closed, so a gateway that missed the command still learns
# it (its backlog, touchProtocolSessions' endNow). Rows past `expires_at` are swept.
class ProtocolSession(Model):
    id = fields.BigIntField(primary_key=True)
    gateway: fields.ForeignKeyRelation[GatewayToken] = fields.ForeignKeyField(
        "api.GatewayToken", related_name=False, on_delete=fields.CASCADE
    )
    gateway_id: int
    # The gateway's own id for the connection: unique per gateway, unknown to every other.
    session_id = fields.CharField(max_length=128)
    domain: fields.ForeignKeyRelation[Domain] = fields.ForeignKeyField(
        "api.Domain", related_name=False, on_delete=fields.CASCADE
    )
    domain_id: int
    # Null once the account is removed (removeAccounts): the session, told to end with
    # ACCOUNT_REMOVED, stays until its gateway closes it, as a disabled account's does.
    account: fields.ForeignKeyNullableRelation[Account] = fields.ForeignKeyField(
        "api.Account", null=True, related_name=False, on_delete=fields.SET_NULL
    )
    account_id: int | None
    username = fields.CharField(max_length=64)
    protocol = fields.CharEnumField(MailProtocol, max_length=8)
    client_address = fields.CharField(max_length=45, null=True)
    client_name = fields.CharField(max_length=256, null=True)
    started_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    end_reason = fields.CharEnumField(SessionEndReason, max_length=32, null=True)
    # When it was told to end (the commit that set end_reason).
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "protocol_session"
        unique_together = (("gateway", "session_id"),)
        # A domain's open sessions newest first; an account's count; the sweep by expiry.
        indexes = (
            ("domain_id", "started_at", "id"),
            ("account_id", "expires_at"),
            ("expires_at",),
        )
