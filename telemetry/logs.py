"""structlog set-up shared by the worker, the API and the CLI.

JSON lines when stdout is not a terminal, readable console output when it is. The
standard library's loggers (Temporal's workflow and activity loggers among them) are
rendered by the same processors, and any event that carries Temporal's workflow or
activity context gets `workflow_id` and `incident_key` lifted to the top level.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog
from pydantic import SecretBytes, SecretStr

from domain.incident import key_from_workflow_id

_SECRET_HINTS = (
    "token",
    "secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "authorization",
    "webhook_url",
)
_REDACTED = "**********"
_MAX_DEPTH = 8
# Keys the logging machinery itself reads later in the chain: never rewritten.
_LOGGING_META = frozenset({"_record", "_from_structlog", "exc_info", "stack_info"})
_CONTEXT_FIELDS = (
    "workflow_type",
    "activity_type",
    "activity_id",
    "attempt",
    "run_id",
    "workflow_run_id",
    "update_name",
    "update_id",
)


def _lift_temporal_context(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for extra in ("temporal_workflow", "temporal_activity"):
        context = event.pop(extra, None)
        if isinstance(context, Mapping):
            workflow_id = context.get("workflow_id")
            if workflow_id:
                event.setdefault("workflow_id", workflow_id)
            for name in _CONTEXT_FIELDS:
                if context.get(name) is not None:
                    event.setdefault(name, context[name])
    workflow_id = event.get("workflow_id")
    if isinstance(workflow_id, str) and workflow_id.startswith("incident/"):
        event.setdefault("incident_key", key_from_workflow_id(workflow_id))
    return event


def _is_secret_key(name: object) -> bool:
    return isinstance(name, str) and any(hint in name.lower() for hint in _SECRET_HINTS)


def _redacted(value: Any, depth: int = 0) -> Any:
    """`value` with SecretStr values and secret-looking keys masked, nested ones too."""
    if isinstance(value, SecretStr | SecretBytes):
        return _REDACTED
    if depth >= _MAX_DEPTH:
        return value
    if isinstance(value, Mapping):
        return {
            key: _REDACTED
            if _is_secret_key(key) and item is not None
            else _redacted(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_redacted(item, depth + 1) for item in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return tuple(_redacted(item, depth + 1) for item in value)
    return value


def _redact_secrets(
    _logger: Any, _method: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: SecretStr values and secret-looking keys never reach the output."""
    event.pop("color_message", None)  # uvicorn's ANSI-coloured copy of the message
    for name, value in list(event.items()):
        if name in _LOGGING_META:
            continue
        if _is_secret_key(name) and value is not None:
            event[name] = _REDACTED
        else:
            event[name] = _redacted(value)
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
