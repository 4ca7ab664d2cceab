"""The periodic work every process offers to do, and which one does it."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


# One row per periodic task (the session sweep and the clients' roll-up): when a process last
# took it on. A process does a round only when it moves last_at forward past the interval, one
# statement, so among any number of processes one does each round (api/services/sweeps.py).
class SweepSlot(Model):
    name = fields.CharField(max_length=32, primary_key=True)
    last_at = fields.DatetimeField()

    class Meta:
        table = "sweep_slot"
