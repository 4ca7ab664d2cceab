"""sync-accounts: a domain made to match the mail server's list, streamed, all or nothing."""

import io
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.applications import Starlette

from api.account_files import read_records
from api.events import EventBus
from api.models import Account, AuditEntry, Domain, ProtocolSession, SessionEndReason
from api.settings import Settings
from api.sync_accounts import BATCH, Refused, Summary, sync_accounts
from tests.conftest import Factory, GraphQLClient

REPORT = """
mutation($e: String!, $s: String) {
  recordProtocolLogin(input: {emailAddress: $e, protocol: EWS, sessionId: $s}) { allowed }
}
"""
CSV = """username,name,externalId,isDomainAdmin
alice,Alice,g-1,true
bob,Bob,g-2,
carol,,,no
"""


async def sync(
    app: Starlette, text: str, *, name: str = "list.csv", **options: bool
) -> tuple[Summary, list[tuple[str, str]]]:
    plan: list[tuple[str, str]] = []
    events: EventBus = app.state.events
    done = await sync_accounts(
        events=events,
        actor="cli:test",
        domain="example.com",
        lines=read_records(io.StringIO(text), name=name),
        plan=lambda what, whom: plan.append((what, whom)),
        **options,
    )
    return done, plan


async def accounts() -> list[tuple[object, ...]]:
    rows = Account.all().order_by("username")
    return list(await rows.values_list("username", "name", "external_id", "is_domain_admin"))


async def test_a_csv_list_creates_the_accounts_and_a_second_run_writes_nothing(
    app: Starlette, make: Factory
) -> None:
    await make.domain("example.com")

    first, plan = await sync(app, CSV)
    audited = await AuditEntry.all().count()
    again, _ = await sync(app, CSV)

    assert (first.created, first.unchanged) == (3, 0)
    assert plan == [("create", f"{n}@example.com") for n in ("alice", "bob", "carol")]
    assert await accounts() == [
        ("alice", "Alice", "g-1", True),
        ("bob", "Bob", "g-2", False),
        ("carol", None, None, False),
    ]
    assert (again.created, again.updated, again.renamed, again.unchanged) == (0, 0, 0, 3)
    assert await AuditEntry.all().count() == audited


async def test_json_lines_rename_update_and_with_remove_missing_remove_the_rest(
    app: Starlette, gql: GraphQLClient, make: Factory
) -> None:
    domain = await make.domain("example.com", limit=5)
    await sync(app, CSV)
    await Account.filter(username="carol").update(mapi_ews_enabled=True)
    await Domain.filter(id=domain.id).update(mapi_ews_enabled_count=1)
    await gql.data(REPORT, {"e": "carol@example.com", "s": "c-1"}, token=await make.gateway())
    jsonl = (
        '{"username": "alice.smith", "name": "Alice", "externalId": "g-1", "isDomainAdmin": true}\n'
        '\n{"username": "bob", "name": "Robert", "externalId": "g-2"}\n'
    )

    done, plan = await sync(app, jsonl, name="list.jsonl", remove_missing=True)

    assert (done.renamed, done.updated, done.removed, done.seats_freed) == (1, 1, 1, 1)
    assert done.sessions_ending == 1
    assert sorted(plan) == [
        ("remove", "carol@example.com"),
        ("rename", "alice.smith@example.com"),
        ("update", "bob@example.com"),
    ]
    assert await accounts() == [
        ("alice.smith", "Alice", "g-1", True),
        ("bob", "Robert", "g-2", False),
    ]
    assert (await Domain.get(id=domain.id)).mapi_ews_enabled_count == 0
    session = await ProtocolSession.get(session_id="c-1")
    assert (session.account_id, session.end_reason) == (None, SessionEndReason.ACCOUNT_REMOVED)


async def test_a_dry_run_prints_the_plan_and_changes_nothing(app: Starlette, make: Factory) -> None:
    await make.domain("example.com")
    await sync(app, CSV)
    before = await accounts(), await AuditEntry.all().count()

    done, plan = await sync(app, "username\nalice\ndave\n", dry_run=True, remove_missing=True)

    assert (done.created, done.updated, done.removed) == (1, 1, 2)  # alice loses her name
    assert ("create", "dave@example.com") in plan and ("remove", "bob@example.com") in plan
    assert (await accounts(), await AuditEntry.all().count()) == before


async def test_bad_lines_anywhere_are_named_by_number_and_nothing_changes(
    app: Starlette, make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.sync_accounts.LINES_AT_ONCE", BATCH)
    await make.domain("example.com")
    good = "".join(f"user{i}\n" for i in range(BATCH + 10))  # the bad lines come after a batch
    text = f"username,isDomainAdmin\n{good}bad name,\nuser1,\nzed,maybe\n"

    with pytest.raises(Refused) as refused:
        await sync(app, text)

    first = BATCH + 12
    assert refused.value.summary.bad_lines == [
        f"line {first}: username: 'bad name' is not a valid username: use 1 to 64 letters, "
        "digits and . _ + - ', starting with a letter or digit.",
        f"line {first + 1}: username 'user1' is also on line 3",
        f"line {first + 2}: isDomainAdmin is true or false, not 'maybe'",
    ]
    assert await Account.all().count() == 0


async def test_names_swap_between_accounts_however_far_apart_the_file_lists_them(
    app: Starlette, make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.sync_accounts.LINES_AT_ONCE", 2)  # each pair in its own batch
    domain = await make.domain("example.com", limit=5)
    await sync(app, CSV)
    await Account.filter(username="bob").update(mapi_ews_enabled=True)
    await Account.filter(username="carol").update(external_id="g-3")
    await Domain.filter(id=domain.id).update(mapi_ews_enabled_count=1)
    # alice and bob swap names; carol's name goes to a new account (g-9), and carol (g-3) is
    # renamed carol.old three batches later.
    text = (
        "username,externalId\nbob,g-1\nfiller1,\ncarol,g-9\nfiller2,\nalice,g-2\n"
        "filler3,\ncarol.old,g-3\n"
    )
    final = "username,name,externalId\nbob,,g-1\nalice,,g-2\ncarol,,g-9\ncarol.old,,g-3\n"

    with pytest.raises(Refused) as refused:  # this carol.old is new: carol (g-3) has no name
        await sync(app, text.replace("carol.old,g-3", "carol.old,"))
    done, plan = await sync(app, text)
    again, _ = await sync(app, final)

    assert refused.value.summary.bad_lines == [
        "line 4: carol@example.com is another account (externalId 'g-3') that the file does not "
        "list under another username: remove or rename it first."
    ]
    assert (done.renamed, done.created, done.updated) == (3, 4, 0)
    assert ("rename", "carol.old@example.com") in plan
    assert await Account.exclude(username__startswith="filler").order_by("username").values_list(
        "username", "external_id", "mapi_ews_enabled"
    ) == [
        ("alice", "g-2", True),  # bob's seat went with him to his new name
        ("bob", "g-1", False),
        ("carol", "g-9", False),
        ("carol.old", "g-3", False),
    ]
    assert (again.renamed, again.created, again.updated) == (0, 0, 0)


async def test_an_account_whose_name_the_file_gives_away_and_never_renames_refuses_the_file(
    app: Starlette, make: Factory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("api.sync_accounts.LINES_AT_ONCE", 1)
    await make.domain("example.com")
    await sync(app, CSV)
    before = await accounts()

    with pytest.raises(Refused) as refused:
        await sync(app, "username,externalId\nbob,g-1\nalice,g-7\ncarol,\n")

    assert refused.value.summary.bad_lines == [
        "line 2: bob@example.com is another account (externalId 'g-2') that the file does not "
        "list under another username: remove or rename it first."
    ]
    assert await accounts() == before


async def test_a_file_that_is_not_a_list_of_accounts_is_refused(
    app: Starlette, make: Factory
) -> None:
    await make.domain("example.com")

    with pytest.raises(Refused) as header:
        await sync(app, "user,mail\nalice,a@example.com\n")
    with pytest.raises(Refused) as json:
        await sync(
            app, '{"username": "a"}\n[1, 2]\n{"username": 7}\n{"user": "b"}\n', name="export"
        )

    assert header.value.summary.bad_lines[0].startswith("line 1: the header must name username")
    assert [line.split(":")[0] for line in json.value.summary.bad_lines] == [
        "line 2",
        "line 3",
        "line 4",
    ]
    assert await Account.all().count() == 0


async def test_the_command_streams_a_file_and_exits_non_zero_for_bad_lines(
    app: Starlette, settings: Settings, make: Factory, tmp_path: Path
) -> None:
    await make.domain("example.com")
    good, bad = tmp_path / "good.csv", tmp_path / "bad.csv"
    good.write_text(CSV)
    bad.write_text("username\nno good\n")
    env = {"MAPI_EWS_DATABASE_URL": settings.database_url, "MAPI_EWS_REDIS_URL": ""}

    def command(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "api", "sync-accounts", "example.com", *args],
            env={**__import__("os").environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )

    dry = command(str(good), "--dry-run")
    real = command(str(good))
    refused = command(str(bad))

    assert dry.returncode == 0, dry.stderr
    assert "create alice@example.com" in dry.stdout and "nothing was changed" in dry.stdout
    assert real.returncode == 0, real.stderr
    assert "example.com: 3 created, 0 updated, 0 renamed, 0 unchanged, 0 removed" in real.stdout
    assert refused.returncode == 1
    assert "line 2: username: 'no good'" in refused.stderr
    assert await Account.all().count() == 3
