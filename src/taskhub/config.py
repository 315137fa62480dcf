"""Settings, read from the environment and `.env` through pydantic-settings."""

from __future__ import annotations

import ipaddress
import re
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {
        "",
        "changeme",
        "change-me",
        "changethis",
        "secret",
        "secret-key",
        "your-secret-key",
        "please-change-me",
        "CHANGE_ME",
    }
)
DEV_SECRET_FILE = Path(".taskhub-secret")
# Standard Webhooks' retry schedule (design §8): seconds after the first attempt, the second, ...
WEBHOOK_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)
# A duration given as a plain number: seconds, as the README and .env.example document it.
_SECONDS = re.compile(r"^\s*\d+(\.\d+)?\s*$")


def _seconds_or_iso(value: object) -> object:
    # pydantic reads a bare number only from Python, not from a string such as the
    # environment's `RESERVATION_TTL=900`; ISO 8601 strings pass through to pydantic.
    if isinstance(value, str) and _SECONDS.match(value):
        return float(value)
    return value


# A duration setting: seconds (`900`, `1.5`) or ISO 8601 (`PT15M`).
Duration = Annotated[timedelta, BeforeValidator(_seconds_or_iso)]


class Settings(BaseSettings):
    """Every knob of the service; see the README's configuration table."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Literal["dev", "test", "prod"] = "dev"
    database_url: str = "sqlite+aiosqlite:///./taskhub.db"
    # PostgreSQL is reached through PgBouncer in transaction mode: no statement caches, only
    # unnamed prepared statements (taskhub.db.pg_connect_args).
    db_pgbouncer: bool = False
    # Where the relay LISTENs for outbox NOTIFYs: PostgreSQL itself, never a transaction
    # pooler (see `listen_url`).
    database_listen_url: str | None = None
    redis_url: str | None = None
    # REDIS_URL names a seed node of a Redis Cluster (taskhub.redis_client).
    redis_cluster: bool = False
    redis_prefix: str = "taskhub"
    secret_key: str | None = None
    access_token_expire_minutes: int = Field(default=30, ge=1)
    allow_signup: bool = True
    # Seconds (`900`) or ISO 8601 (`PT15M`); see `_duration`.
    reservation_ttl: Duration = timedelta(minutes=15)
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_open_orders_per_user: int = Field(default=100, ge=0)
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_account_window_seconds: int = Field(default=15 * 60, ge=1)
    login_max_failures_per_client: int = Field(default=50, ge=1)
    login_client_window_seconds: int = Field(default=60, ge=1)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    docs_enabled: bool = True
    # Proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (IPs or networks,
    # comma-separated; `*` trusts every peer). Empty: none, so the peer's address is the
    # client's, whatever headers it sends (the login limiter keys on it).
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # FastAPI's native OpenTelemetry (spans, metrics, logs to the process's configured
    # providers). Off, it costs nothing per request; see the README.
    opentelemetry_enabled: bool = False
    # Write every span this process ends to this file, one JSON object a line, through the
    # OpenTelemetry SDK (which must be installed); for debugging and the tests (taskhub.tracing).
    opentelemetry_spans_file: Path | None = None
    # One budget per process, split between its pools (taskhub.db.pool_sizes).
    db_pool_size: int = Field(default=20, ge=2)
    db_max_overflow: int = Field(default=0, ge=0)
    db_timeout_seconds: float = Field(default=5.0, gt=0)
    # Long-running processes: objects allocated between two young-generation collections
    # (Python's default is 700; 0 keeps it). See taskhub.runtime.
    gc_gen0_threshold: int = Field(default=20_000, ge=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    # Events.
    # Failed attempts of one event that fails deterministically (the database answering)
    # before it is dead-lettered; transient failures never count (taskhub.messaging.faults).
    event_max_deliveries: int = Field(default=5, ge=1)
    event_claim_idle_ms: int = Field(default=30_000, ge=100)
    # Cap of the backoff between two attempts of one event.
    event_retry_max_seconds: float = Field(default=300.0, gt=0)
    # Event stream partitions: an event goes to crc32(order id, or project id) mod N.
    stream_partitions: int = Field(default=1, ge=1, le=256)
    # The relay holds back while the consumer group has this many entries not yet delivered.
    stream_maxlen: int = Field(default=100_000, ge=10)
    # A Redis that lost the consumer group: events published this recently and not yet
    # applied are published again.
    stream_republish_window: Duration = timedelta(hours=24)
    relay_batch_size: int = Field(default=200, ge=1)
    relay_poll_seconds: float = Field(default=0.5, gt=0)
    expiry_sweep_seconds: float = Field(default=5.0, gt=0)
    worker_metrics_port: int | None = None
    worker_concurrency: int = Field(default=8, ge=1)
    worker_batch_size: int = Field(default=100, ge=1, le=1000)
    # Webhooks (taskhub.webhooks).
    # Allow URLs on loopback or private networks (tests, local development); the cloud
    # metadata addresses stay refused.
    webhook_allow_private: bool = False
    # Seconds to wait before each retry of a failed delivery (± 20 % jitter); after the
    # last one the delivery is failed. Comma-separated, or a JSON list.
    webhook_retry_schedule: Annotated[list[float], NoDecode] = Field(
        default_factory=lambda: list(WEBHOOK_RETRY_SCHEDULE)
    )
    # An attempt succeeds with a 2xx answer within this time.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Deliveries one process attempts at once.
    webhook_concurrency: int = Field(default=64, ge=1, le=256)
    # Settled deliveries (succeeded or failed) are deleted this long after their last attempt.
    webhook_retention: Duration = timedelta(days=7)
    # Live updates (Server-Sent Events, taskhub.live).
    # A comment line after this long without an event keeps idle connections open.
    live_keepalive_seconds: float = Field(default=15.0, gt=0)
    # How often an open stream checks again that its token and its access still hold.
    live_recheck_seconds: float = Field(default=0.5, gt=0)
    # `Last-Event-ID` replays the events of this long ago at most; published outbox rows are
    # kept at least this long (taskhub.messaging.retention).
    live_replay_window: Duration = timedelta(hours=1)
    # Events waiting for one slow client; past this its stream ends (it resumes with
    # Last-Event-ID).
    live_max_queued_events: int = Field(default=10_000, ge=10)

    @field_validator("cors_origins", "webhook_retry_schedule", "forwarded_allow_ips", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        # A list setting from the environment: a JSON list, or comma-separated values.
        if isinstance(value, str):
            value = value.strip()
            if value.startswith("["):
                import json

                return json.loads(value)
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("webhook_retry_schedule")
    @classmethod
    def _check_schedule(cls, value: list[float]) -> list[float]:
        if len(value) > 20 or any(not 0 <= delay <= 7 * 86400 for delay in value):
            raise ValueError("WEBHOOK_RETRY_SCHEDULE: at most 20 delays, each 0 to 604800 seconds")
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"FORWARDED_ALLOW_IPS: {entry!r} is not an IP address, a network or '*'"
                ) from None
        return value

    @field_validator("reservation_ttl", "webhook_retention")
    @classmethod
    def _positive_duration(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("a duration must not be negative")
        return value

    @field_validator("live_replay_window")
    @classmethod
    def _replay_window(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("LIVE_REPLAY_WINDOW must be positive")
        return value

    @field_validator(
        "redis_url", "secret_key", "database_listen_url", "opentelemetry_spans_file", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `REDIS_URL=` in a .env file means "not configured", not "connect to ''".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_url", "database_listen_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for plain in (
            "postgres://",
            "postgresql://",
            "postgresql+psycopg2://",
            "postgresql+psycopg://",
        ):
            if value.startswith(plain):
                return "postgresql+asyncpg://" + value[len(plain) :]
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value[len("sqlite:///") :]
        return value

    @model_validator(mode="after")
    def _check_secret(self) -> Settings:
        if self.db_pgbouncer and self.is_sqlite:
            raise ValueError("DB_PGBOUNCER=true needs a PostgreSQL DATABASE_URL")
        if "*" in self.cors_origins:
            raise ValueError("CORS_ORIGINS may not contain '*': list the allowed origins")
        weak = self.secret_key is None or self.secret_key.strip() in PLACEHOLDER_SECRETS
        if weak and self.environment != "dev":
            raise ValueError(
                "SECRET_KEY must be set to a real secret outside ENVIRONMENT=dev "
                "(generate one with: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.secret_key is not None and not weak and len(self.secret_key) < 32:
            if self.environment != "dev":
                raise ValueError("SECRET_KEY must be at least 32 characters long")
        return self

    @property
    def is_sqlite(self) -> bool:
        """Whether the database is the embedded SQLite file."""
        return self.database_url.startswith("sqlite")

    @property
    def listen_url(self) -> str | None:
        """The database URL the relay LISTENs on, or None: it polls (RELAY_POLL_SECONDS).

        DATABASE_LISTEN_URL if set, else DATABASE_URL; but behind PgBouncer (DB_PGBOUNCER)
        only an explicit DATABASE_LISTEN_URL, because a LISTEN through transaction pooling
        registers on whichever server connection ran it, and its notifications are lost.
        """
        if self.is_sqlite:
            return None
        if self.database_listen_url is not None:
            return self.database_listen_url
        return None if self.db_pgbouncer else self.database_url

    @property
    def embedded_events(self) -> bool:
        """Whether events are dispatched inside the API process (no Redis)."""
        return self.redis_url is None

    def signing_key(self) -> str:
        """The JWT key; in dev a random one is generated once and kept on disk."""
        if self.secret_key and self.secret_key.strip() not in PLACEHOLDER_SECRETS:
            return self.secret_key
        return _dev_secret()


@lru_cache(maxsize=1)
def _dev_secret() -> str:
    if DEV_SECRET_FILE.exists():
        key = DEV_SECRET_FILE.read_text().strip()
        if key:
            return key
    key = secrets.token_urlsafe(48)
    DEV_SECRET_FILE.write_text(key + "\n")
    DEV_SECRET_FILE.chmod(0o600)
    return key


def get_settings() -> Settings:
    """Read the settings from the environment (called by the factory and the CLI)."""
    return Settings()
