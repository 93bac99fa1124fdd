"""Settings refuse unsafe defaults; the migrations build exactly the models' schema."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import core.models  # noqa: F401
from core import db
from core.settings import ConfigError, load_settings


def test_demo_mode_runs_without_auth():
    settings = load_settings({"QUORUM_DEMO": "1", "QUORUM_SECRETS_FILE": "/nonexistent"})
    settings.check_safe()
    assert settings.database_url.endswith("data/quorum.db") and settings.uses_simulator


def test_outside_demo_mode_no_auth_is_refused():
    settings = load_settings({"QUORUM_SECRETS_FILE": "/nonexistent"})
    with pytest.raises(ConfigError, match=r"no \[auth\] section"):
        settings.check_safe()


@pytest.mark.parametrize("cookie", ["changeme", "short-secret"])
def test_a_placeholder_or_short_cookie_secret_is_refused(tmp_path, cookie):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[auth]\nclient_id = "q"\ncookie_secret = "{cookie}"\n')
    settings = load_settings({"QUORUM_SECRETS_FILE": str(secrets)})
    with pytest.raises(ConfigError, match="cookie_secret"):
        settings.check_safe()


def test_environment_wins_over_the_secrets_file_and_secrets_never_print(tmp_path):
    secrets = tmp_path / "secrets.toml"
    secrets.write_text('OPENAI_API_KEY = "from-file"\nQUORUM_TIMEZONE = "Europe/Berlin"\n')
    settings = load_settings({"QUORUM_SECRETS_FILE": str(secrets), "OPENAI_API_KEY": "from-env"})
    assert settings.openai_api_key == "from-env" and settings.timezone == "Europe/Berlin"
    assert "from-env" not in repr(settings)


def test_bad_time_zone_and_bad_toml_are_named(tmp_path):
    with pytest.raises(ConfigError, match="unknown time zone 'Mars/Olympus'"):
        load_settings({"QUORUM_TIMEZONE": "Mars/Olympus", "QUORUM_SECRETS_FILE": "/nonexistent"})
    broken = tmp_path / "secrets.toml"
    broken.write_text("[auth\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({"QUORUM_SECRETS_FILE": str(broken)})


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("QUORUM_UPSTREAM_TIMEOUT_S", "sixty", "QUORUM_UPSTREAM_TIMEOUT_S: 'sixty' is not a positive number"),
        ("QUORUM_UPSTREAM_MAX_ATTEMPTS", "2.5", "QUORUM_UPSTREAM_MAX_ATTEMPTS: '2.5' is not a positive whole number"),
        ("QUORUM_BREAKER_FAILURES", "0", "QUORUM_BREAKER_FAILURES: '0' is not a positive whole number"),
        ("QUORUM_BREAKER_RESET_S", "nan", "QUORUM_BREAKER_RESET_S: 'nan' is not a positive number"),
        ("QUORUM_MAX_REQUEST_BYTES", "50MB", "QUORUM_MAX_REQUEST_BYTES: '50MB' is not a positive whole number"),
        ("QUORUM_MAX_REQUEST_BYTES", "-1", "QUORUM_MAX_REQUEST_BYTES: '-1' is not a positive whole number"),
    ],
)
def test_a_bad_upstream_setting_is_refused_by_name(name, value, message):
    with pytest.raises(ConfigError) as refused:
        load_settings({name: value, "QUORUM_SECRETS_FILE": "/nonexistent"})
    assert str(refused.value) == message


def test_upstream_and_telemetry_settings_keep_their_defaults_and_read_the_environment():
    defaults = load_settings({"QUORUM_SECRETS_FILE": "/nonexistent"})
    assert (
        defaults.upstream_timeout_s,
        defaults.upstream_max_attempts,
        defaults.breaker_failures,
        defaults.breaker_reset_s,
        defaults.otel_endpoint,
    ) == (60.0, 3, 5, 30.0, None)
    chosen = load_settings(
        {
            "QUORUM_SECRETS_FILE": "/nonexistent",
            "QUORUM_UPSTREAM_TIMEOUT_S": "2.5",
            "QUORUM_UPSTREAM_MAX_ATTEMPTS": "1",
            "QUORUM_BREAKER_FAILURES": "9",
            "QUORUM_BREAKER_RESET_S": "4",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
        }
    )
    assert (
        chosen.upstream_timeout_s,
        chosen.upstream_max_attempts,
        chosen.breaker_failures,
        chosen.breaker_reset_s,
        chosen.otel_endpoint,
    ) == (2.5, 1, 9, 4.0, "http://127.0.0.1:4318")


def test_migrations_build_the_schema_the_models_describe(db_url):
    with db.get_engine(db_url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []


def test_sqlite_runs_in_wal_mode_with_foreign_keys(db_url):
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite pragmas")
    with db.get_engine(db_url).connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
