"""One process at a time does each round of periodic work (the session sweep, the clients'
roll-up), however many processes serve: each offers every interval, and the one whose statement
moves the task's sweep_slot forward does the round. One statement, no lock held, nothing to
release when a process dies: the next interval, another takes the round."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api.db import connection, is_sqlite

# A round is taken when the last began at least this share of the interval ago: processes whose
# timers drift a little still take one round per interval between them.
_SLACK = 0.9

_CLAIM = (
    "INSERT INTO sweep_slot (name, last_at) VALUES ({p}1, {p}2) "
    "ON CONFLICT (name) DO UPDATE SET last_at = excluded.last_at "
    "WHERE sweep_slot.last_at <= {p}3 RETURNING name"
)
_CLAIM_SQLITE = _CLAIM.format(p="?")
_CLAIM_POSTGRES = _CLAIM.format(p="$")


async def claim(task: str, every: timedelta, now: datetime | None = None) -> bool:
    """Whether this process does this round of `task` (every `every`)."""
    moment = now or datetime.now(UTC)
    conn = connection()
    sql = _CLAIM_SQLITE if is_sqlite(conn) else _CLAIM_POSTGRES
    rows = await conn.execute_query_dict(sql, [task, moment, moment - every * _SLACK])
    return bool(rows)
