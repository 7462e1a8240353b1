"""structlog set-up: JSON lines, Temporal context lifted to the top, secrets redacted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from pydantic import SecretStr

from telemetry.logs import configure_logging, get_logger

SECRET = "s3cr3t-value-that-must-not-leak"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """configure_logging changes process-wide state: put it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def json_lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def one_json_line(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    lines = json_lines(capsys)
    assert len(lines) == 1, lines
    return lines[0]


def temporal_workflow_extra(workflow_id: str) -> dict[str, Any]:
    """What temporalio's workflow.logger puts into a record's `extra`."""
    return {
        "temporal_workflow": {
            "attempt": 1,
            "namespace": "default",
            "run_id": "0195-run",
            "task_queue": "afteraction",
            "workflow_id": workflow_id,
            "workflow_type": "IncidentWorkflow",
        }
    }


def test_json_format_writes_one_object_per_line(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    log = get_logger("test")
    log.info("first")
    log.warning("second", count=2)
    lines = json_lines(capsys)
    assert [line["event"] for line in lines] == ["first", "second"]
    assert [line["level"] for line in lines] == ["info", "warning"]
    assert all(line["timestamp"].endswith("Z") for line in lines)
    assert lines[1]["count"] == 2


def test_level_filters_lower_events(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json", level="warning")
    log = get_logger("test")
    log.info("hidden")
    log.error("shown")
    assert [line["event"] for line in json_lines(capsys)] == ["shown"]


def test_reconfiguring_does_not_duplicate_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    configure_logging(log_format="json")
    get_logger("test").info("once")
    assert one_json_line(capsys)["event"] == "once"


def test_structlog_event_with_action_workflow_id_gets_the_incident_key(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(log_format="json")
    get_logger("test").info("ticket created", workflow_id="incident/INC-1/action/2")
    line = one_json_line(capsys)
    assert line["workflow_id"] == "incident/INC-1/action/2"
    assert line["incident_key"] == "INC-1"


def test_bound_context_variables_are_lifted_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    with structlog.contextvars.bound_contextvars(workflow_id="incident/INC-7"):
        get_logger("test").info("inside")
    assert one_json_line(capsys)["incident_key"] == "INC-7"


def test_other_workflow_ids_get_no_incident_key(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    get_logger("test").info("digest", workflow_id="digest/2026-W48")
    assert "incident_key" not in one_json_line(capsys)


def test_temporal_workflow_logger_context_is_lifted_to_the_top(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(log_format="json")
    logging.getLogger("temporalio.workflow").warning(
        "deadline missed: %s", "ack", extra=temporal_workflow_extra("incident/INC-9")
    )
    line = one_json_line(capsys)
    assert line["event"] == "deadline missed: ack"
    assert line["level"] == "warning"
    assert line["logger"] == "temporalio.workflow"
    assert line["workflow_id"] == "incident/INC-9"
    assert line["incident_key"] == "INC-9"
    assert line["workflow_type"] == "IncidentWorkflow"
    assert line["run_id"] == "0195-run"
    assert "temporal_workflow" not in line


def test_temporal_activity_logger_context_is_lifted_to_the_top(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(log_format="json")
    extra = {
        "temporal_activity": {
            "activity_id": "3",
            "activity_type": "notify_escalation",
            "attempt": 2,
            "namespace": "default",
            "task_queue": "afteraction",
            "workflow_id": "incident/INC-4/action/1",
            "workflow_run_id": "0195-run",
            "workflow_type": "ActionItemWorkflow",
        }
    }
    logging.getLogger("temporalio.activity").info("sending", extra=extra)
    line = one_json_line(capsys)
    assert line["incident_key"] == "INC-4"
    assert line["activity_type"] == "notify_escalation"
    assert line["activity_id"] == "3"
    assert line["attempt"] == 2
    assert line["workflow_run_id"] == "0195-run"
    assert "temporal_activity" not in line


def test_secret_values_and_keys_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    get_logger("test").info(
        "connecting",
        api_key=SecretStr(SECRET),
        api_token=SECRET,
        password=SECRET,
        webhook=SecretStr(SECRET),
        host="temporal.example.com",
    )
    out = capsys.readouterr().out
    assert SECRET not in out
    line = json.loads(out)
    for name in ("api_key", "api_token", "password", "webhook"):
        assert line[name] == "**********"
    assert line["host"] == "temporal.example.com"


def test_nested_secrets_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    get_logger("test").info(
        "config",
        settings={"namespace": "sre", "temporal_api_key": SECRET, "tls": {"password": SECRET}},
        headers=[{"Authorization": f"Bearer {SECRET}"}],
        values=(SecretStr(SECRET), "plain"),
    )
    out = capsys.readouterr().out
    assert SECRET not in out
    line = json.loads(out)
    assert line["settings"]["namespace"] == "sre"
    assert line["settings"]["temporal_api_key"] == "**********"
    assert line["values"] == ["**********", "plain"]


def test_secrets_in_stdlib_extra_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    logging.getLogger("integrations.jira").info(
        "calling jira", extra={"jira_token": SECRET, "project": "OPS"}
    )
    out = capsys.readouterr().out
    assert SECRET not in out
    line = json.loads(out)
    assert line["jira_token"] == "**********"
    assert line["project"] == "OPS"


def test_none_secrets_stay_none(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    get_logger("test").info("no key", api_key=None)
    assert one_json_line(capsys)["api_key"] is None


def test_exceptions_are_rendered_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    try:
        raise RuntimeError("tracker down")
    except RuntimeError:
        get_logger("test").exception("call failed")
    line = one_json_line(capsys)
    assert "RuntimeError: tracker down" in line["exception"]


def test_console_format_renders_readable_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="console")
    get_logger("test").info("hello console", workflow_id="incident/INC-3", api_token=SECRET)
    logging.getLogger("temporalio.workflow").info(
        "from temporal", extra=temporal_workflow_extra("incident/INC-5")
    )
    try:
        raise ValueError("boom")
    except ValueError:
        get_logger("test").exception("failed")
    out = capsys.readouterr().out
    assert SECRET not in out
    assert "hello console" in out
    assert "incident_key=INC-3" in out
    assert "incident_key=INC-5" in out
    assert "ValueError: boom" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out.splitlines()[0])


def test_auto_format_is_json_when_stdout_is_not_a_terminal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging(log_format="auto")
    get_logger("test").info("piped")
    assert one_json_line(capsys)["event"] == "piped"


def test_uvicorn_colour_copy_of_the_message_is_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    logging.getLogger("uvicorn.error").info(
        "Started server process [%d]", 42, extra={"color_message": "\x1b[36m%d\x1b[0m"}
    )
    line = one_json_line(capsys)
    assert line["event"] == "Started server process [42]"
    assert "color_message" not in line
