"""A domain's MAPI/EWS use per UTC day, kept by every change in its own transaction."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

from api.models.domains import Domain


# One row per domain and day that saw a change (an enable, a disable, a reclaim, a new limit,
# the domain's creation): the most accounts that had MAPI/EWS at any moment of the day, the
# number at its end (so far, for today) and the allowance at its end. Days without a row carry
# the previous day's end forward when read.
class UsageDay(Model):
    id = fields.BigIntField(primary_key=True)
    domain: fields.ForeignKeyRelation[Domain] = fields.ForeignKeyField(
        "api.Domain", related_name=False, on_delete=fields.CASCADE
    )
    domain_id: int
    day = fields.DateField()
    peak_enabled = fields.IntField()
    enabled_at_end = fields.IntField()
    # The domain's maxMapiEwsAccounts at the end of the day; NULL: no limit.
    allowance = fields.IntField(null=True)

    class Meta:
        table = "mapi_ews_usage_day"
        unique_together = (("domain", "day"),)
