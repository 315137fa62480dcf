"""Settings as the environment gives them: the documented forms are accepted."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from taskhub.config import Settings
from tests.processes import process_env


def settings_from_env(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings read from environment variables only (no .env file)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings(_env_file=None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("900", timedelta(minutes=15)),
        (" 60 ", timedelta(minutes=1)),
        ("1.5", timedelta(seconds=1.5)),
        ("0", timedelta(0)),
        ("PT15M", timedelta(minutes=15)),
        ("P1DT2H", timedelta(days=1, hours=2)),
    ],
)
def test_reservation_ttl_takes_seconds_or_iso_8601(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: timedelta
) -> None:
    assert settings_from_env(monkeypatch, RESERVATION_TTL=value).reservation_ttl == expected


@pytest.mark.parametrize(
    "name",
    ["RESERVATION_TTL", "STREAM_REPUBLISH_WINDOW", "WEBHOOK_RETENTION", "LIVE_REPLAY_WINDOW"],
)
@pytest.mark.parametrize(
    ("value", "expected"), [("86400", timedelta(days=1)), ("PT1H", timedelta(hours=1))]
)
def test_every_duration_setting_takes_seconds_or_iso_8601(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: timedelta
) -> None:
    # STREAM_REPUBLISH_WINDOW=86400, as the README documents it, was refused.
    settings = settings_from_env(monkeypatch, **{name: value})
    assert getattr(settings, name.lower()) == expected


@pytest.mark.parametrize("value", ["-5", "-PT1M", "fifteen", "15m"])
def test_reservation_ttl_refuses_the_rest(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    with pytest.raises(ValidationError, match="reservation_ttl"):
        settings_from_env(monkeypatch, RESERVATION_TTL=value)


def test_commands_start_with_the_documented_reservation_ttl(tmp_path: Path) -> None:
    # The form README.md and .env.example document, in a real process.
    done = subprocess.run(  # noqa: S603 (our own CLI)
        [sys.executable, "-m", "taskhub.cli", "migrate"],
        env=process_env(DATABASE_URL=f"sqlite:///{tmp_path / 'ttl.db'}", RESERVATION_TTL="900"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_forwarded_allow_ips(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).forwarded_allow_ips == []
    listed = settings_from_env(monkeypatch, FORWARDED_ALLOW_IPS="10.0.0.1, 10.1.0.0/16,::1")
    assert listed.forwarded_allow_ips == ["10.0.0.1", "10.1.0.0/16", "::1"]
    assert settings_from_env(monkeypatch, FORWARDED_ALLOW_IPS="*").forwarded_allow_ips == ["*"]
    with pytest.raises(ValidationError, match="not an IP address"):
        settings_from_env(monkeypatch, FORWARDED_ALLOW_IPS="proxy.internal")
