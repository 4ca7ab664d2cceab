"""The package holds the whole app: the wheel has every file under api/ (the dashboard's static
folders, GraphiQL's, the migrations), and the app installed from the lock the way the Dockerfile
installs it, not editable and away from this checkout, serves a dashboard that signs in with no
request answered 404. uv is the one `make test` installs in .uv/."""

import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from playwright.async_api import Page, Response, expect

from tests.browser import sign_in
from tests.servers import ROOT, running_server

UV = ROOT / ".uv" / "bin" / "uv"
# The production image's install (Dockerfile), here into a scratch environment.
DOCKERFILE_INSTALL = ("sync", "--locked", "--no-dev", "--no-editable")


def _uv(*args: str, env: dict[str, str] | None = None) -> str:
    if not UV.exists():
        pytest.skip(f"uv is not at {UV}: `make test` installs it there")
    done = subprocess.run(
        [str(UV), *args],
        cwd=ROOT,
        env={**os.environ, "UV_PYTHON_DOWNLOADS": "never", **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _shipped() -> set[str]:
    """Every file under api/ that a checkout has and an install needs (bytecode aside)."""
    return {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "api").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    venv = tmp_path_factory.mktemp("installed") / "venv"
    _uv(
        *DOCKERFILE_INSTALL,
        "--quiet",
        "--python",
        sys.executable,
        env={"UV_PROJECT_ENVIRONMENT": str(venv)},
    )
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import api; print(api.__file__)"],
        cwd=venv,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(venv)), where  # the install, not this checkout
    yield venv


def test_the_wheel_holds_every_file_under_api(tmp_path: Path) -> None:
    _uv("build", "--wheel", "--out-dir", str(tmp_path), "--quiet")
    (wheel,) = tmp_path.glob("mapi_ews_admin-*.whl")

    names = set(zipfile.ZipFile(wheel).namelist())

    assert _shipped() - names == set()
    assert "api/web/static/vendor/graphql-ws/client.js" in names
    assert any(name.startswith("api/web/static/graphiql/") for name in names)


def test_the_dockerfile_installs_the_lock_without_the_dev_tools() -> None:
    runs = [
        line.removeprefix("RUN ").strip()
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if line.startswith("RUN ")
    ]

    assert "pip install --require-hashes --no-deps -r tools/uv-requirements.txt" in runs
    assert f"uv {' '.join(DOCKERFILE_INSTALL)}" in runs
    assert not any("pip install ." in run or "uv pip" in run for run in runs)


def test_the_install_is_of_the_locked_versions(installed: Path) -> None:
    frozen = subprocess.run(
        [str(UV), "pip", "freeze", "--python", str(installed / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    locked = _uv("export", "--locked", "--no-dev", "--no-hashes", "--no-emit-project",
                 "--no-header", "--no-annotate")  # fmt: skip
    # What this Python needs of the lock (it also holds what other Pythons and platforms need).
    needed = [Requirement(line) for line in locked.splitlines() if "==" in line]
    wanted = {str(r).split(";")[0] for r in needed if r.marker is None or r.marker.evaluate()}

    assert wanted <= set(frozen)
    assert not any(line.startswith(("pytest", "mypy", "ruff")) for line in frozen)


async def test_the_installed_app_serves_a_dashboard_that_signs_in(
    installed: Path, page: Page, tmp_path: Path
) -> None:
    failed: list[str] = []

    def watch(response: Response) -> None:
        if response.status >= 400:
            failed.append(f"{response.status} {response.url}")

    page.on("response", watch)
    env = {"MAPI_EWS_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}"}
    command = (str(installed / "bin" / "mapi-ews-admin"),)
    with running_server(
        env, tmp_path / "server.log", "--demo", command=command, cwd=tmp_path
    ) as server:
        await sign_in(page, server.url, "admin@example.com")
        await expect(page.locator("#live-status")).to_have_text("Live")
        await expect(page.locator("#rows tr").first).to_be_visible()

        await page.goto(f"{server.url}/graphql")
        await page.locator(".graphiql-query-editor .CodeMirror").wait_for()

    assert failed == []
