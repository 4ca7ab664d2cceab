"""docker-compose.yml cannot be run here (no Docker engine): check its shape and its settings."""

from pathlib import Path
from typing import Any

import yaml

from api.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_compose_runs_several_api_replicas_on_one_postgres_and_one_redis() -> None:
    services = compose()["services"]

    assert services["api"]["deploy"]["replicas"] >= 2
    assert services["postgres"]["image"].startswith("postgres:")
    assert services["redis"]["image"].startswith("redis:")
    assert services["migrate"]["command"] == ["mapi-ews-admin", "migrate"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["api"]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["proxy"]["depends_on"]["api"]["condition"] == "service_healthy"
    assert all("healthcheck" in services[name] for name in ("postgres", "redis", "api"))
    assert "/readyz" in " ".join(services["api"]["healthcheck"]["test"])


def test_every_variable_compose_sets_is_a_setting_and_production_is_complete() -> None:
    environment = compose()["services"]["api"]["environment"]
    known = {f"MAPI_EWS_{name.upper()}" for name in Settings.model_fields}

    assert set(environment) <= known
    assert environment["MAPI_EWS_ENV"] == "production"
    assert environment["MAPI_EWS_DATABASE_URL"].startswith("postgres://")
    assert environment["MAPI_EWS_REDIS_URL"].startswith("redis://")
    assert "MAPI_EWS_SECRET_KEY" in environment  # production refuses to start without it


def test_the_proxy_passes_websocket_upgrades_to_the_api() -> None:
    nginx = compose()["configs"]["nginx"]["content"]

    assert "proxy_pass http://api;" in nginx
    assert "proxy_set_header Upgrade $$http_upgrade;" in nginx


def test_old_login_events_are_pruned_daily_with_the_api_settings() -> None:
    services = compose()["services"]

    assert "mapi-ews-admin prune-login-events" in " ".join(services["prune"]["command"])
    assert services["prune"]["environment"] == services["api"]["environment"]
    assert services["prune"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )


def test_idle_seats_are_reclaimed_daily_with_the_api_settings_and_its_redis() -> None:
    services = compose()["services"]

    assert "mapi-ews-admin reclaim-idle" in " ".join(services["reclaim"]["command"])
    assert "sleep 86400" in " ".join(services["reclaim"]["command"])
    assert services["reclaim"]["environment"] == services["api"]["environment"]
    assert services["reclaim"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
    assert services["reclaim"]["depends_on"]["redis"]["condition"] == "service_healthy"


def merged(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Compose's merge for what these files use: mappings merge key by key (environment,
    depends_on), anything else is replaced (command)."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def test_the_cluster_option_makes_three_primaries_one_cluster_before_any_api_starts() -> None:
    override: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.cluster.yml").read_text())
    services = merged(compose(), override)["services"]
    nodes = ("redis", "redis-2", "redis-3")

    for name in nodes:
        command = " ".join(services[name]["command"])
        assert "--cluster-enabled yes" in command
        assert services[name]["image"].startswith("redis:7")  # sharded pub/sub is Redis 7
        assert "healthcheck" in services[name]
        assert services["redis-cluster"]["depends_on"][name]["condition"] == "service_healthy"
    create = " ".join(services["redis-cluster"]["command"])
    assert "redis-cli --cluster create" in create and "--cluster-yes" in create
    assert all(f"getent hosts {name}" in create for name in nodes)

    known = {f"MAPI_EWS_{name.upper()}" for name in Settings.model_fields}
    for name in ("api", "reclaim", "prune", "migrate"):
        environment = services[name]["environment"]
        assert set(environment) <= known
        assert environment["MAPI_EWS_REDIS_CLUSTER"] == "true"
        assert environment["MAPI_EWS_REDIS_URL"].startswith("redis://redis:")
    for name in ("api", "reclaim"):
        done = services[name]["depends_on"]["redis-cluster"]["condition"]
        assert done == "service_completed_successfully"
    # The settings accept what the merged file gives every process.
    settings = Settings.model_validate(
        {
            key.removeprefix("MAPI_EWS_").lower(): value
            for key, value in services["api"]["environment"].items()
            if key != "MAPI_EWS_SECRET_KEY"
        }
        | {"secret_key": "x" * 32}
    )
    assert settings.redis_cluster is True
