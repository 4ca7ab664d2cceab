"""One sweeper at a time: however many processes serve, one does each round of the session
sweep (and the clients' roll-up), by moving the task's sweep_slot forward in one statement."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from api.services import sweeps
from tests.conftest import migrated_postgres
from tests.servers import metric, running_server


async def test_a_round_is_taken_once_per_interval(app: object) -> None:
    now = datetime.now(UTC)
    every = timedelta(seconds=30)

    first = await sweeps.claim("sessions", every, now)
    again = await sweeps.claim("sessions", every, now + timedelta(seconds=1))
    other_task = await sweeps.claim("roll-up", every, now + timedelta(seconds=1))
    next_round = await sweeps.claim("sessions", every, now + timedelta(seconds=28))

    assert (first, again, other_task, next_round) == (True, False, True, True)


async def test_racing_claims_take_a_round_once(app: object) -> None:
    now = datetime.now(UTC)

    taken = await asyncio.gather(
        *(sweeps.claim("sessions", timedelta(seconds=30), now) for _ in range(8))
    )

    assert taken.count(True) == 1


@pytest.mark.postgres
async def test_three_processes_sweep_as_often_as_one(tmp_path: Path) -> None:
    """Three processes sweeping every 0.25 s for 3 s do about 12 rounds between them, not 36."""
    async with migrated_postgres() as env:
        env = {**env, "MAPI_EWS_SESSION_SWEEP_SECONDS": "0.25"}
        with (
            running_server(env, tmp_path / "a.log") as first,
            running_server(env, tmp_path / "b.log") as second,
            running_server(env, tmp_path / "c.log") as third,
        ):
            servers = (first, second, third)
            start = [await metric(s.url, "sweeps_total") for s in servers]
            began = asyncio.get_running_loop().time()
            await asyncio.sleep(3)
            done = [await metric(s.url, "sweeps_total") for s in servers]
            elapsed = asyncio.get_running_loop().time() - began

    rounds = sum(done) - sum(start)
    possible = elapsed / 0.25
    assert possible * 0.5 <= rounds <= possible + 3, (rounds, done)
    assert sum(1 for before, after in zip(start, done, strict=True) if after > before) >= 1
