"""structlog set-up shared by the worker, the API and the CLI.

JSON lines when stdout is not a terminal, readable console output when it is. The
standard library's loggers (Temporal's workflow and activity loggers among them) are
rendered by the same processors, and any event that carries Temporal's workflow or
activity context gets `workflow_id` and `incident_key` lifted to the top level.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

from domain.incident import key_from_workflow_id

_SECRET_HINTS = ("token", "secret", "password", "api_key", "authorization", "webhook_url")


def _lift_temporal_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for extra in ("temporal_workflow", "temporal_activity"):
        context = event.pop(extra, None)
        if isinstance(context, dict):
            workflow_id = context.get("workflow_id")
            if workflow_id:
                event.setdefault("workflow_id", workflow_id)
            for name in ("workflow_type", "activity_type", "attempt", "run_id"):
                if name in context:
                    event.setdefault(name, context[name])
    workflow_id = event.get("workflow_id")
    if isinstance(workflow_id, str) and workflow_id.startswith("incident/"):
        event.setdefault("incident_key", key_from_workflow_id(workflow_id).split("/")[0])
    return event


def _redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: SecretStr values and secret-looking keys never reach the output."""
    for name, value in list(event.items()):
        if isinstance(value, SecretStr) or (
            any(hint in name.lower() for hint in _SECRET_HINTS) and value is not None
        ):
            event[name] = "**********"
    return event


def configure_logging(*, log_format: str = "auto", level: str = "info") -> None:
    """Idempotent; `log_format` is auto (JSON unless stdout is a TTY), json or console."""
    as_json = log_format == "json" or (log_format == "auto" and not sys.stdout.isatty())
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _lift_temporal_context,
        _redact_secrets,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stdout.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    for noisy in ("httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str = "afteraction") -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
