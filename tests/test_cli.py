import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REDIS_URL

ROOT = Path(__file__).resolve().parent.parent


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "api", *args],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )


def test_export_schema_check_passes_on_the_checked_in_file() -> None:
    result = run("export-schema", "--check")

    assert result.returncode == 0, result.stderr
    assert "is up to date" in result.stdout


def test_export_schema_check_fails_when_the_file_drifts(tmp_path: Path) -> None:
    stale = tmp_path / "schema.graphql"
    stale.write_text("type Query { stale: Int }\n")

    result = run("export-schema", "--check", "--path", str(stale))

    assert result.returncode != 0
    assert "differs" in result.stderr


def test_create_system_admin_reads_the_password_from_stdin_then_signs_in(tmp_path: Path) -> None:
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'cli.sqlite3'}"}
    assert run("migrate", env=env).returncode == 0

    created = run(
        "create-system-admin", "Root", stdin="a-strong-password\na-strong-password\n", env=env
    )
    again = run("create-system-admin", "root", stdin="a-strong-password\n", env=env)
    mismatch = run(
        "create-system-admin", "other", stdin="a-strong-password\nsomething-else\n", env=env
    )
    weak = run("create-system-admin", "weak", stdin="short\n", env=env)

    assert created.returncode == 0, created.stderr
    assert "root created" in created.stdout
    assert again.returncode != 0 and "already exists" in again.stderr
    assert mismatch.returncode != 0 and "differ" in mismatch.stderr
    assert weak.returncode != 0 and "password" in weak.stderr
    assert "a-strong-password" not in created.stdout + created.stderr + again.stderr


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path) -> None:
    result = run(
        "serve",
        env={
            "MAPI_EWS_ENV": "production",
            "MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'p.sqlite3'}",
        },
    )

    assert result.returncode != 0
    assert "MAPI_EWS_SECRET_KEY is required" in result.stderr


def test_development_without_a_writable_data_folder_says_how_to_give_it_a_key(
    tmp_path: Path,
) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("")

    result = run(
        "serve",
        env={
            "MAPI_EWS_DATA_DIR": str(not_a_folder),
            "MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'd.sqlite3'}",
        },
    )

    assert result.returncode != 0
    assert "no signing key" in result.stderr
    assert "MAPI_EWS_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.redis
def test_a_redis_of_the_wrong_kind_stops_serve_with_one_line_saying_what_to_set(
    tmp_path: Path,
) -> None:
    result = run(
        "serve",
        "--port",
        "1",  # never reached: the check comes first
        env={
            "MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'r.sqlite3'}",
            "MAPI_EWS_SECRET_KEY": "a-test-key-long-enough-for-hs256-0123456789abcdef",
            "MAPI_EWS_REDIS_URL": str(REDIS_URL),
            "MAPI_EWS_REDIS_CLUSTER": "true",
        },
    )

    assert result.returncode != 0
    assert "not a cluster node: unset MAPI_EWS_REDIS_CLUSTER" in result.stderr
    assert "Traceback" not in result.stderr


def test_gateway_tokens_are_created_listed_and_revoked_from_the_command_line(
    tmp_path: Path,
) -> None:
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'gw.sqlite3'}"}
    assert run("migrate", env=env).returncode == 0

    created = run("create-gateway-token", "EWS-Frontend", env=env)
    duplicate = run("create-gateway-token", "ews-frontend", env=env)
    listed = run("list-gateway-tokens", env=env)
    revoked = run("revoke-gateway-token", "ews-frontend", env=env)
    again = run("revoke-gateway-token", "ews-frontend", env=env)
    after = run("list-gateway-tokens", env=env)

    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("mgw_") and "\n" not in token
    assert duplicate.returncode != 0 and "exists already" in duplicate.stderr
    assert listed.stdout.startswith("ews-frontend\tlive\t")
    assert token not in listed.stdout + after.stdout
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    assert again.returncode != 0 and "no live gateway token" in again.stderr
    assert after.stdout.startswith("ews-frontend\trevoked ")


def test_prune_login_events_uses_the_retention_setting_or_the_option(tmp_path: Path) -> None:
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'prune.sqlite3'}"}
    assert run("migrate", env=env).returncode == 0

    default = run("prune-login-events", env=env)
    explicit = run("prune-login-events", "--older-than-days", "7", env=env)
    refused = run("prune-login-events", "--older-than-days", "0", env=env)

    assert default.returncode == 0 and "older than 90 days" in default.stdout
    assert explicit.returncode == 0 and "older than 7 days" in explicit.stdout
    assert refused.returncode != 0 and "must be 1 or more" in refused.stderr
