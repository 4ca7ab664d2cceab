"""Who can sign in besides domain accounts, and the refresh tokens handed out at sign-in."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from api.models.domains import Account


class SystemAdmin(Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    password_hash = fields.CharField(max_length=255)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "system_admin"


# A refresh token is stored only as its SHA-256 and rotated on every use. Tokens minted from one
# sign-in share a `family`: presenting a token that was already used revokes the whole family
# (it was stolen or replayed). Tortoise turns model docstrings into SQL comments: hence a comment.
class RefreshToken(Model):
    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    family = fields.CharField(max_length=32, db_index=True)
    account: fields.ForeignKeyNullableRelation[Account] = fields.ForeignKeyField(
        "api.Account", null=True, related_name=False, on_delete=fields.CASCADE
    )
    account_id: int | None
    system_admin: fields.ForeignKeyNullableRelation[SystemAdmin] = fields.ForeignKeyField(
        "api.SystemAdmin", null=True, related_name=False, on_delete=fields.CASCADE
    )
    system_admin_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_token"
