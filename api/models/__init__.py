"""Tortoise models only: no rules of the domain live here."""

from api.models.access import ClientAccessMode, ClientAccessPolicy
from api.models.activity import GatewayToken, LoginEvent, LoginRefusal
from api.models.audit import AuditAction, AuditEntry
from api.models.domains import (
    BOTH_PROTOCOLS,
    PROTOCOL_BITS,
    Account,
    AccountRecency,
    Domain,
    MailProtocol,
    mask_of,
    protocols_of,
)
from api.models.maintenance import SweepSlot
from api.models.principals import RefreshToken, SystemAdmin
from api.models.sessions import ProtocolSession, SessionEndReason
from api.models.usage import UsageDay

__all__ = [
    "BOTH_PROTOCOLS",
    "PROTOCOL_BITS",
    "Account",
    "AccountRecency",
    "AuditAction",
    "AuditEntry",
    "ClientAccessMode",
    "ClientAccessPolicy",
    "Domain",
    "GatewayToken",
    "LoginEvent",
    "LoginRefusal",
    "MailProtocol",
    "ProtocolSession",
    "RefreshToken",
    "SessionEndReason",
    "SweepSlot",
    "SystemAdmin",
    "UsageDay",
    "mask_of",
    "protocols_of",
]
