"""No signing key in the source: development makes its own in the data folder, production
needs one configured."""

import stat
from pathlib import Path

import httpx

from api.settings import KEY_FILE_NAME, Environment, Settings
from tests.servers import running_server

LOGIN = (
    'mutation { login(input: {username: "sysadmin", password: "demo-password"}) { accessToken } }'
)
VIEWER = "{ viewer { username role } }"


def sign_in(url: str) -> str:
    response = httpx.post(f"{url}/graphql", json={"query": LOGIN})
    return str(response.json()["data"]["login"]["accessToken"])


def viewer(url: str, token: str) -> httpx.Response:
    return httpx.post(
        f"{url}/graphql", json={"query": VIEWER}, headers={"Authorization": f"Bearer {token}"}
    )


def test_a_development_key_is_made_once_per_data_folder_readable_by_its_owner_only(
    tmp_path: Path,
) -> None:
    first = Settings(data_dir=tmp_path / "a").signing_key
    again = Settings(data_dir=tmp_path / "a").signing_key
    other = Settings(data_dir=tmp_path / "b").signing_key

    assert first == again
    assert first != other
    assert len(first) >= 32
    mode = stat.S_IMODE((tmp_path / "a" / KEY_FILE_NAME).stat().st_mode)
    assert mode == 0o600
    assert [p.name for p in (tmp_path / "a").iterdir()] == [KEY_FILE_NAME]  # nothing left aside


def test_a_configured_key_is_used_and_nothing_is_written(tmp_path: Path) -> None:
    key = "configured-key-that-is-long-enough-0123456789"
    settings = Settings(secret_key=key, data_dir=tmp_path, env=Environment.PRODUCTION)

    assert settings.signing_key == key
    assert list(tmp_path.iterdir()) == []


def test_a_token_of_one_development_server_is_refused_by_another_and_kept_across_a_restart(
    tmp_path: Path,
) -> None:
    def env(name: str) -> dict[str, str]:
        folder = tmp_path / name
        folder.mkdir(exist_ok=True)
        return {
            "MAPI_EWS_DATABASE_URL": f"sqlite://{folder / 'db.sqlite3'}",
            "MAPI_EWS_DATA_DIR": str(folder),
        }

    with running_server(env("one"), tmp_path / "one.log", "--demo") as one:
        token = sign_in(one.url)
        accepted_by_issuer = viewer(one.url, token)
    with running_server(env("two"), tmp_path / "two.log", "--demo") as two:
        elsewhere = viewer(two.url, token)
    with running_server(env("one"), tmp_path / "one-again.log") as restarted:
        after_restart = viewer(restarted.url, token)

    assert accepted_by_issuer.json()["data"] == {
        "viewer": {"username": "sysadmin", "role": "SYSTEM_ADMIN"}
    }
    assert elsewhere.status_code == 401
    assert elsewhere.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    assert after_restart.json()["data"] == accepted_by_issuer.json()["data"]
    key = (tmp_path / "one" / KEY_FILE_NAME).read_text().strip()
    assert key not in (tmp_path / "one.log").read_text()
