"""Binds the workflow id and incident key to every log event an activity writes, including
those of the libraries it calls (tracker clients log through the standard library)."""

from __future__ import annotations

from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from domain.incident import key_from_workflow_id


class _BindLogContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        context: dict[str, Any] = {"activity_type": info.activity_type}
        if info.workflow_id:
            context["workflow_id"] = info.workflow_id
            if info.workflow_id.startswith("incident/"):
                context["incident_key"] = key_from_workflow_id(info.workflow_id)
        # The SDK copies this context into the thread pool for synchronous activities.
        with structlog.contextvars.bound_contextvars(**context):
            return await super().execute_activity(input)


class LogContextInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindLogContext(next)
