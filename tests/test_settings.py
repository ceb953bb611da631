"""The service settings: each declared once in config.Settings with its variable and default,
read from the environment with a clear error, documented, and shared with the dispatcher."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from smsgw.config import ConfigError, Settings, setting_defaults
from smsgw.dispatch.dispatcher import DispatchSettings

DECLARED = {f.name: f.metadata["env"] for f in fields(Settings) if "env" in f.metadata}
DOCS = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text(encoding="utf-8")


def test_every_declared_setting_is_documented():
    assert sorted(variable for variable in DECLARED.values() if not re.search(rf"\b{variable}\b", DOCS)) == []


def test_the_defaults_are_what_an_empty_environment_reads():
    settings = Settings.from_env({})
    assert {name: getattr(settings, name) for name in DECLARED} == setting_defaults()


@pytest.mark.parametrize(
    ("env", "field", "expected"),
    [
        pytest.param({"SMSGW_MAX_PARTS": "3"}, "max_parts", 3, id="int"),
        pytest.param({"SMSGW_ROUTE_PROBE_SECONDS": "0.5"}, "route_probe_seconds", 0.5, id="float"),
        pytest.param({"SMSGW_LEGACY_RESPOSE_CODE": "yes"}, "legacy_respose_code", True, id="bool"),
        pytest.param({"SMSGW_METRICS_TOKEN": "t" * 32}, "metrics_token", "t" * 32, id="text"),
        pytest.param({"SMSGW_MAX_PARTS": ""}, "max_parts", 6, id="empty-is-the-default"),
        pytest.param({"SMSGW_LOG_FORMAT": "JSON"}, "log_format", "json", id="choice-any-case"),
        pytest.param({"SMSGW_SQLITE_SYNCHRONOUS": "extra"}, "sqlite_synchronous", "EXTRA", id="synchronous"),
    ],
)
def test_a_setting_is_read_by_its_declaration(env, field, expected):
    assert getattr(Settings.from_env(env), field) == expected


@pytest.mark.parametrize(
    ("env", "message"),
    [
        pytest.param({"SMSGW_MAX_PARTS": "0"}, "SMSGW_MAX_PARTS='0' must be at least 1", id="below-minimum"),
        pytest.param({"SMSGW_MAX_PARTS": "six"}, "SMSGW_MAX_PARTS='six' must be a whole number", id="not-a-number"),
        pytest.param({"SMSGW_RETRY_BASE_SECONDS": "inf"}, "SMSGW_RETRY_BASE_SECONDS='inf' must be at least 0", id="infinite"),
        pytest.param({"SMSGW_LEGACY_RESPOSE_CODE": "maybe"}, "must be true or false", id="not-a-bool"),
        pytest.param({"SMSGW_SQLITE_SYNCHRONOUS": "OFF"}, "OFF would lose accepted messages", id="unsafe-synchronous"),
        pytest.param({"SMSGW_SMPP_TLS_CERT_FILE": "cert.pem"}, "are set together", id="tls-half"),
        pytest.param(
            {"SMSGW_HTTP_MAX_HEAD_BYTES": "2048", "SMSGW_HTTP_MAX_HEADER_LINE_BYTES": "4096"}, "must not exceed", id="header-line-over-head"
        ),
    ],
)
def test_a_wrong_value_names_its_variable(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Settings.from_env(env)


def test_secrets_stay_out_of_the_repr():
    secret = "s" * 40
    settings = Settings.from_env({"SMSGW_ADMIN_TOKEN": secret, "SMSGW_API_KEY_SECRET": secret, "SMSGW_METRICS_TOKEN": secret})
    assert secret not in repr(settings)


def test_the_dispatcher_takes_the_shared_settings_from_the_service_settings():
    settings = Settings.from_env({"SMSGW_BIND_LEASE_SECONDS": "4", "SMSGW_ROUTE_FAILURE_THRESHOLD": "9"})
    dispatch = DispatchSettings.of(settings, batch_size=10)
    assert (dispatch.bind_lease_seconds, dispatch.route_failure_threshold, dispatch.batch_size) == (4, 9, 10)
    defaults = setting_defaults()
    assert DispatchSettings().lease_seconds == defaults["lease_seconds"] and DispatchSettings().retry_max_seconds == defaults["retry_max_seconds"]
