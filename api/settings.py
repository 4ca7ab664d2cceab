"""One typed settings object, read from MAPI_EWS_* environment variables."""

from __future__ import annotations

import logging
import math
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

DEFAULT_SQLITE_URL = "sqlite://./data/mapi-ews-admin.sqlite3"
# In the data folder: development's signing key, made on first start when none is configured.
KEY_FILE_NAME = "signing-key"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


@dataclass(frozen=True, slots=True)
class CostLimit:
    """A caller's budget of query cost: it holds at most `maximum` and refills at
    `restore_rate` a second (README, Operations)."""

    maximum: int
    restore_rate: float

    def __str__(self) -> str:
        return f"{self.maximum}/{self.restore_rate:g}"


# Who has a budget: each role, and callers without a token (per client address).
COST_LIMITED = ("ANONYMOUS", "USER", "DOMAIN_ADMIN", "SYSTEM_ADMIN", "GATEWAY")
DEFAULT_COST_LIMITS: dict[str, CostLimit | None] = {
    "ANONYMOUS": CostLimit(10_000, 100.0),
    "USER": CostLimit(10_000, 100.0),
    "DOMAIN_ADMIN": CostLimit(10_000, 500.0),
    "SYSTEM_ADMIN": CostLimit(20_000, 1_000.0),
    # Gateways are exempt: their requests are their users' logins (README, Operations).
    "GATEWAY": None,
}


def parse_cost_limits(value: object) -> dict[str, CostLimit | None]:
    """`ROLE=MAXIMUM/RATE` or `ROLE=off`, comma separated, over the defaults."""
    if isinstance(value, dict):
        return {**DEFAULT_COST_LIMITS, **value}
    if not isinstance(value, str):
        raise ValueError("cost limits are ROLE=MAXIMUM/RATE pairs, comma separated")
    limits = dict(DEFAULT_COST_LIMITS)
    for item in filter(None, (part.strip() for part in value.split(","))):
        role, equals, limit = (text.strip() for text in item.partition("="))
        role = role.upper()
        if not equals or role not in COST_LIMITED:
            raise ValueError(
                f"{item!r}: expected ROLE=MAXIMUM/RATE or ROLE=off, ROLE one of "
                + ", ".join(COST_LIMITED)
            )
        if limit.lower() == "off":
            limits[role] = None
            continue
        maximum, slash, rate = limit.partition("/")
        try:
            parsed = CostLimit(int(maximum), float(rate))
        except ValueError:
            parsed = None
        if (
            not slash
            or parsed is None
            or parsed.maximum < 1
            or not 0 < parsed.restore_rate < math.inf
        ):
            raise ValueError(
                f"{item!r}: the limit is MAXIMUM/RATE, a whole number of points above 0 and "
                "the points restored a second, above 0 (for example 10000/500)"
            )
        limits[role] = parsed
    return limits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MAPI_EWS_", extra="ignore")

    env: Environment = Environment.DEVELOPMENT
    database_url: str = DEFAULT_SQLITE_URL
    redis_url: str | None = None
    # MAPI_EWS_REDIS_URL names a node of a Redis Cluster (README, Scaling out).
    redis_cluster: bool = False
    secret_key: SecretStr | None = None
    # What the server keeps on disk of its own (development's signing key).
    data_dir: Path = Path("data")

    # Pool size per worker process; size it against PostgreSQL's max_connections / workers.
    database_pool_size: int = Field(default=10, ge=1, le=200)
    # Fractions are allowed (0.5 is thirty seconds), for trying token expiry out.
    access_token_minutes: float = Field(default=15, ge=0.05, le=24 * 60)
    refresh_token_days: int = Field(default=30, ge=1, le=365)

    page_size_default: int = Field(default=50, ge=1)
    page_size_max: int = Field(default=100, ge=1)
    batch_size_max: int = Field(default=500, ge=1)
    max_query_depth: int = Field(default=10, ge=2)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=2000, ge=50)
    # Room for a full introspection (about 5,000 here) and a gateway's batch of 500 reports.
    max_query_cost: int = Field(default=10_000, ge=10)
    max_body_bytes: int = Field(default=256 * 1024, ge=1024)
    # Each caller's budget of query cost, by role (README, Operations): ROLE=MAXIMUM/RATE pairs
    # over the defaults, e.g. "DOMAIN_ADMIN=20000/1000,GATEWAY=off".
    cost_limits: Annotated[dict[str, CostLimit | None], NoDecode] = Field(
        default_factory=lambda: dict(DEFAULT_COST_LIMITS)
    )
    # Unset: on in development, off in production.
    introspection: bool | None = None
    field_suggestions: bool | None = None
    allowed_origins: list[str] = Field(default_factory=list)
    # Addresses of reverse proxies whose X-Forwarded-For is trusted ("*" for any).
    forwarded_allow_ips: str = "127.0.0.1"
    # One log line per HTTP request (uvicorn's access log); off saves a gateway-heavy process work.
    access_log: bool = True

    # Password guessing when signing in (auth.throttle.SignInThrottle; README, Operations):
    # failures per username and per client address before each attempt must wait (1, 2, 4 ...
    # s), and before a lock of login_lock_seconds. "login" here is signing in, not a gateway's
    # MAPI/EWS login: the names stay, as the documented MAPI_EWS_LOGIN_* variables.
    login_free_failures: int = Field(default=5, ge=1)
    login_lock_failures: int = Field(default=10, ge=1)
    login_address_free_failures: int = Field(default=20, ge=1)
    login_address_lock_failures: int = Field(default=100, ge=1)
    login_lock_seconds: int = Field(default=900, ge=1)
    login_max_backoff_seconds: int = Field(default=60, ge=1)

    # Live login activity (see README, "Live login activity").
    redis_channel: str = Field(default="mapi-ews-admin:events", min_length=1)
    subscription_queue_size: int = Field(default=256, ge=1)
    max_subscriptions_per_connection: int = Field(default=20, ge=1)
    # Across all of one principal's connections, on every process (through Redis, if set).
    max_subscriptions_per_principal: int = Field(default=100, ge=1)
    login_event_retention_days: int = Field(default=90, ge=1)
    # The same login repeated within this many seconds of an event's first report is counted on
    # that event instead of a new row (README, Configuration); 0 stores every report on its own.
    login_event_coalesce_seconds: int = Field(default=300, ge=0, le=24 * 3600)
    gateway_token_cache_seconds: int = Field(default=30, ge=0, le=3600)
    # How often an open WebSocket connection re-checks its principal (README, Operations).
    connection_recheck_seconds: int = Field(default=60, ge=1, le=3600)
    # A MAPI/EWS session a gateway has not confirmed for this long has ended (docs/gateways.md);
    # each process sweeps expired ones every session_sweep_seconds.
    session_ttl_seconds: int = Field(default=300, ge=1, le=7 * 24 * 3600)
    session_sweep_seconds: float = Field(default=30, gt=0, le=3600)

    @field_validator("cost_limits", mode="before")
    @classmethod
    def _parse_cost_limits(cls, value: object) -> dict[str, CostLimit | None]:
        return parse_cost_limits(value)

    @model_validator(mode="after")
    def _budgets_hold_the_largest_operation(self) -> Settings:
        for role, limit in self.cost_limits.items():
            if limit is not None and limit.maximum < self.max_query_cost:
                raise ValueError(
                    f"MAPI_EWS_COST_LIMITS: {role}'s maximum of {limit.maximum} is below "
                    f"MAPI_EWS_MAX_QUERY_COST ({self.max_query_cost}): an operation allowed to "
                    "cost that much could never run"
                )
        return self

    @model_validator(mode="after")
    def _cluster_needs_a_node(self) -> Settings:
        if self.redis_cluster and not self.redis_url:
            raise ValueError(
                "MAPI_EWS_REDIS_CLUSTER=true needs MAPI_EWS_REDIS_URL naming one of its nodes"
            )
        return self

    @model_validator(mode="after")
    def _require_secret_in_production(self) -> Settings:
        if self.env is Environment.PRODUCTION and self.secret_key is None:
            raise ValueError("MAPI_EWS_SECRET_KEY is required when MAPI_EWS_ENV=production")
        if self.secret_key is not None and len(self.secret_key.get_secret_value()) < 32:
            raise ValueError("MAPI_EWS_SECRET_KEY must be at least 32 characters")
        return self

    @property
    def is_development(self) -> bool:
        return self.env is Environment.DEVELOPMENT

    @property
    def allows_introspection(self) -> bool:
        return self.is_development if self.introspection is None else self.introspection

    @property
    def suggests_fields(self) -> bool:
        """Whether errors say "Did you mean ...?" (they help a developer and a prober alike)."""
        return self.is_development if self.field_suggestions is None else self.field_suggestions

    @cached_property
    def signing_key(self) -> str:
        """MAPI_EWS_SECRET_KEY; in development without one, a random key kept in the data
        folder, so that a restart keeps sessions and no two installations share a key."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        return _data_folder_key(self.data_dir / KEY_FILE_NAME)

    @property
    def session_ttl(self) -> timedelta:
        return timedelta(seconds=self.session_ttl_seconds)

    @property
    def login_event_coalesce(self) -> timedelta:
        return timedelta(seconds=self.login_event_coalesce_seconds)

    @property
    def uses_embedded_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite://")

    def sqlite_path(self) -> Path | None:
        if not self.uses_embedded_sqlite:
            return None
        path = self.database_url.removeprefix("sqlite://")
        return None if path == ":memory:" else Path(path)


def _data_folder_key(path: Path) -> str:
    """The key in `path`, made there (readable by its owner only) when there is none. Workers
    starting together agree: each writes a candidate aside and links it into place, which
    fails for all but the first; the others read the winner's."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(secrets.token_urlsafe(48) + "\n")
    try:
        os.link(candidate, path)
        log.warning(
            "MAPI_EWS_SECRET_KEY is not set: made a signing key for development in %s", path
        )
    except FileExistsError:
        pass
    finally:
        candidate.unlink()
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path} holds no usable signing key: remove it to make a new one")
    return key
