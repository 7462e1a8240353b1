"""Settings from AFTERACTION_* variables and .env: values, clear errors, hidden secrets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from settings import Settings, SettingsError, load_settings

API_KEY = "tcld-4f9c2e7a-very-secret"
WEBHOOK = "https://hooks.example.com/services/T000/B000/XXXXsecretXXXX"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No AFTERACTION_* variable from the outside, and a working folder without a .env."""
    for name in list(os.environ):
        if name.startswith("AFTERACTION_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def settings_error(monkeypatch: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    return str(caught.value)


# ---- values ------------------------------------------------------------------------------


def test_defaults_need_no_configuration() -> None:
    settings = load_settings()
    assert settings.temporal_address is None
    assert settings.embedded_server
    assert settings.effective_temporal_address == "127.0.0.1:7233"
    assert settings.api_port == 8000
    assert settings.effective_api_url == "http://127.0.0.1:8000"
    assert settings.log_format == "auto"


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text("", encoding="utf-8")
    monkeypatch.setenv("AFTERACTION_TEMPORAL_ADDRESS", "temporal.example.com:7233")
    monkeypatch.setenv("AFTERACTION_NAMESPACE", "sre")
    monkeypatch.setenv("AFTERACTION_TASK_QUEUE", "incidents")
    monkeypatch.setenv("AFTERACTION_TEMPORAL_TLS", "true")
    monkeypatch.setenv("AFTERACTION_API_PORT", "9100")
    monkeypatch.setenv("AFTERACTION_POLICY_FILE", str(policy))
    monkeypatch.setenv("AFTERACTION_LOG_FORMAT", "json")
    monkeypatch.setenv("AFTERACTION_LOG_LEVEL", "debug")
    settings = load_settings()
    assert settings.temporal_address == "temporal.example.com:7233"
    assert not settings.embedded_server
    assert settings.namespace == "sre"
    assert settings.task_queue == "incidents"
    assert settings.temporal_tls is True
    assert settings.api_port == 9100
    assert settings.policy_file == policy
    assert (settings.log_format, settings.log_level) == ("json", "debug")


def test_a_dotenv_file_in_the_working_folder_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "AFTERACTION_NAMESPACE=from-dotenv\nAFTERACTION_API_PORT=8123\nUNRELATED=1\n",
        encoding="utf-8",
    )
    settings = load_settings()
    assert settings.namespace == "from-dotenv"
    assert settings.api_port == 8123


def test_environment_wins_over_the_dotenv_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text("AFTERACTION_NAMESPACE=from-dotenv\n", encoding="utf-8")
    monkeypatch.setenv("AFTERACTION_NAMESPACE", "from-env")
    assert load_settings().namespace == "from-env"


def test_a_bad_value_in_the_dotenv_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("AFTERACTION_API_PORT=eighty\n", encoding="utf-8")
    with pytest.raises(SettingsError, match="AFTERACTION_API_PORT"):
        load_settings()


def test_levels_and_formats_ignore_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERACTION_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("AFTERACTION_LOG_FORMAT", "Console")
    settings = load_settings()
    assert (settings.log_level, settings.log_format) == ("warning", "console")


def test_an_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERACTION_POLICY_FILE", "")
    monkeypatch.setenv("AFTERACTION_TEMPORAL_ADDRESS", "")
    monkeypatch.setenv("AFTERACTION_API_PORT", "")
    settings = load_settings()
    assert settings.policy_file is None
    assert settings.temporal_address is None
    assert settings.api_port == 8000


def test_ipv6_address_with_port_is_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERACTION_TEMPORAL_ADDRESS", "[::1]:7233")
    assert load_settings().temporal_address == "[::1]:7233"


# ---- errors ------------------------------------------------------------------------------


def test_port_that_is_not_a_number_names_variable_and_form(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    message = settings_error(monkeypatch, AFTERACTION_API_PORT="abc")
    assert message.startswith("AFTERACTION_API_PORT is invalid")
    assert "a TCP port, 1-65535" in message


def test_port_out_of_range_names_variable_and_form(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, AFTERACTION_API_PORT="70000")
    assert message.startswith("AFTERACTION_API_PORT is invalid")
    assert "less than or equal to 65535" in message
    assert "1-65535" in message


def test_address_without_port_names_variable_and_form(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, AFTERACTION_TEMPORAL_ADDRESS="nocolon")
    assert message.startswith("AFTERACTION_TEMPORAL_ADDRESS is invalid")
    assert "host:port" in message


@pytest.mark.parametrize("address", ["temporal:abc", "http://temporal:7233", "temporal:99999"])
def test_malformed_addresses_are_rejected(monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    message = settings_error(monkeypatch, AFTERACTION_TEMPORAL_ADDRESS=address)
    assert message.startswith("AFTERACTION_TEMPORAL_ADDRESS is invalid")


def test_missing_policy_file_names_variable_and_path(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, AFTERACTION_POLICY_FILE="/nonexistent")
    assert message.startswith("AFTERACTION_POLICY_FILE is invalid")
    assert "no file at /nonexistent" in message
    assert "TOML severity-policy file" in message


def test_unknown_log_format_names_variable_and_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, AFTERACTION_LOG_FORMAT="xml")
    assert message.startswith("AFTERACTION_LOG_FORMAT is invalid")
    assert "one of auto, json, console" in message


def test_bad_boolean_names_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, AFTERACTION_TEMPORAL_TLS="maybe")
    assert message.startswith("AFTERACTION_TEMPORAL_TLS is invalid")
    assert "true or false" in message


def test_webhook_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, AFTERACTION_CHAT_WEBHOOK_URL="ftp://hooks/secret-path")
    assert message.startswith("AFTERACTION_CHAT_WEBHOOK_URL is invalid")
    assert "secret-path" not in message  # the rejected secret is not echoed


def test_tls_certificate_without_key_is_rejected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\n", encoding="utf-8")
    message = settings_error(monkeypatch, AFTERACTION_TEMPORAL_TLS_CERT=str(cert))
    assert "AFTERACTION_TEMPORAL_TLS_CERT" in message
    assert "AFTERACTION_TEMPORAL_TLS_KEY" in message


def test_missing_tls_certificate_file_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(
        monkeypatch,
        AFTERACTION_TEMPORAL_TLS_CERT="/nonexistent/client.pem",
        AFTERACTION_TEMPORAL_TLS_KEY="/nonexistent/client.key",
    )
    assert "AFTERACTION_TEMPORAL_TLS_CERT is invalid" in message
    assert "AFTERACTION_TEMPORAL_TLS_KEY is invalid" in message


def test_every_bad_variable_is_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, AFTERACTION_API_PORT="abc", AFTERACTION_LOG_FORMAT="xml")
    lines = message.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("AFTERACTION_API_PORT is invalid")
    assert lines[1].startswith("AFTERACTION_LOG_FORMAT is invalid")


# ---- secrets -----------------------------------------------------------------------------


@pytest.fixture
def secret_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("AFTERACTION_TEMPORAL_API_KEY", API_KEY)
    monkeypatch.setenv("AFTERACTION_CHAT_WEBHOOK_URL", WEBHOOK)
    return load_settings()


def test_secrets_are_secret_strings(secret_settings: Settings) -> None:
    assert isinstance(secret_settings.temporal_api_key, SecretStr)
    assert isinstance(secret_settings.chat_webhook_url, SecretStr)
    assert secret_settings.temporal_api_key.get_secret_value() == API_KEY
    assert secret_settings.chat_webhook_url.get_secret_value() == WEBHOOK


@pytest.mark.parametrize(
    "render",
    [repr, str, lambda s: s.model_dump_json(), lambda s: str(s.model_dump())],
    ids=["repr", "str", "model_dump_json", "model_dump"],
)
def test_secrets_never_appear_when_settings_are_shown(
    secret_settings: Settings, render: Callable[[Settings], str]
) -> None:
    shown = render(secret_settings)
    assert API_KEY not in shown
    assert WEBHOOK not in shown
    assert "hooks.example.com" not in shown
    assert "**********" in shown


@pytest.mark.parametrize(
    ("value", "seconds"), [("5m", 300), ("90s", 90), ("1h30m", 5400), ("0", 0), ("120", 120)]
)
def test_reconcile_interval_reads_short_durations(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: int
) -> None:
    monkeypatch.setenv("AFTERACTION_RECONCILE_EVERY", value)
    assert load_settings().reconcile_every.total_seconds() == seconds


@pytest.mark.parametrize("value", ["soon", "-5m", "5 parsecs"])
def test_a_bad_reconcile_interval_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("AFTERACTION_RECONCILE_EVERY", value)
    with pytest.raises(SettingsError, match="AFTERACTION_RECONCILE_EVERY"):
        load_settings()
