"""Which clients may use MAPI/EWS in a domain."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from api.models.domains import Domain


class ClientAccessMode(StrEnum):
    BLOCK_LISTED = "BLOCK_LISTED"
    ALLOW_LISTED_ONLY = "ALLOW_LISTED_ONLY"


# A domain's client access policy; a domain without a row has the default (BLOCK_LISTED, no
# rules, unnamed clients allowed), which lets every client in. `rules` is a JSON list of
# {"pattern", "protocol", "belowVersion"} as api/services/access_policy.py checked them.
class ClientAccessPolicy(Model):
    domain: fields.OneToOneRelation[Domain] = fields.OneToOneField(
        "api.Domain", primary_key=True, related_name=False, on_delete=fields.CASCADE
    )
    domain_id: int
    mode = fields.CharEnumField(ClientAccessMode, max_length=24)
    rules: list[dict[str, str | None]] = fields.JSONField()
    allow_unnamed_clients = fields.BooleanField(default=True)
    updated_at = fields.DatetimeField()
    updated_by = fields.CharField(max_length=320)

    class Meta:
        table = "client_access_policy"
