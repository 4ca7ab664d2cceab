"""Tortoise models only: no rules of the domain live here."""

from api.models.activity import GatewayToken, LoginEvent
from api.models.audit import AuditAction, AuditEntry
from api.models.domains import Account, AccountRecency, Domain, MailProtocol
from api.models.principals import RefreshToken, SystemAdmin
from api.models.sessions import ProtocolSession, SessionEndReason
from api.models.usage import UsageDay

__all__ = [
    "Account",
    "AccountRecency",
    "AuditAction",
    "AuditEntry",
    "Domain",
    "GatewayToken",
    "LoginEvent",
    "MailProtocol",
    "ProtocolSession",
    "RefreshToken",
    "SessionEndReason",
    "SystemAdmin",
    "UsageDay",
]
