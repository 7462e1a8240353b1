"""The HTTP API: the CLI's operations over JSON, with OpenAPI at /docs.

Errors answer with {"detail": "..."}: 404 unknown incident, 409 a command the incident
rejected (the validator's reason), 422 an invalid body, 503 Temporal or the worker away.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Annotated

import structlog
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.client import Client

from app.incidents import (
    CommandRejected,
    IncidentNotFound,
    Incidents,
    TemporalUnavailable,
    unavailable_message,
)
from app.logs import configure_logging, get_logger
from app.temporal_client import connect
from domain.commands import (
    Acknowledge,
    AddTimelineEvent,
    AssignRole,
    Cancel,
    NewIncident,
    SetSeverity,
    Transition,
)
from domain.incident import (
    Incident,
    IncidentState,
    IncidentStatus,
    IncidentSummary,
    workflow_id_for,
)
from domain.policy import Policy, load_policy
from domain.severity import Severity
from settings import Settings

log = get_logger("afteraction.api")
Connector = Callable[[Settings], Awaitable[Client]]


class _TemporalConnection:
    """Connects on first use and again after a failure, so the API can start before Temporal."""

    def __init__(self, settings: Settings, connector: Connector) -> None:
        self._settings = settings
        self._connector = connector
        self._client: Client | None = None
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await self._connector(self._settings)
                except RuntimeError as error:
                    reason = str(error).split("\n", 1)[0]
                    raise TemporalUnavailable(
                        unavailable_message(self._settings.effective_temporal_address, reason)
                    ) from None
            return self._client


async def _incidents(request: Request) -> Incidents:
    state = request.app.state
    client = await state.connection.client()
    return Incidents(client, task_queue=state.settings.task_queue, policy=state.policy)


Service = Annotated[Incidents, Depends(_incidents)]


class Health(BaseModel):
    status: str
    temporal: str
    detail: str | None = None


def create_app(
    settings: Settings, *, policy: Policy | None = None, connector: Connector = connect
) -> FastAPI:
    connection = _TemporalConnection(settings, connector)
    incident_policy = policy or load_policy(settings.policy_file)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        log.info("api.started", url=settings.effective_api_url)
        yield

    api = FastAPI(
        title="afteraction",
        version="0.1.0",
        description="Incidents as durable workflows: declare, respond, resolve, review.",
        lifespan=lifespan,
    )

    api.state.connection = connection
    api.state.settings = settings
    api.state.policy = incident_policy

    @api.exception_handler(IncidentNotFound)
    async def _not_found(_: Request, error: IncidentNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @api.exception_handler(CommandRejected)
    async def _rejected(_: Request, error: CommandRejected) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    @api.exception_handler(TemporalUnavailable)
    async def _unavailable(_: Request, error: TemporalUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    @api.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    async def healthz() -> Health | JSONResponse:
        try:
            client = await connection.client()
            await client.service_client.check_health()
        except Exception as error:  # any failure means "not healthy"; the detail says which
            body = Health(status="degraded", temporal="unreachable", detail=str(error))
            return JSONResponse(body.model_dump(), status_code=503)
        return Health(status="ok", temporal="reachable")

    @api.post("/api/incidents", response_model=IncidentStatus, status_code=201)
    async def declare(request: NewIncident, service: Service) -> IncidentStatus:
        status = await service.declare(request)
        log.info(
            "incident.declared",
            incident_key=status.key,
            workflow_id=workflow_id_for(status.key),
            severity=status.severity.value,
        )
        return status

    @api.get("/api/incidents", response_model=list[IncidentSummary])
    async def list_incidents(
        service: Service,
        state: IncidentState | None = None,
        severity: Severity | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[IncidentSummary]:
        return await service.list(state=state, severity=severity, limit=limit)

    @api.get("/api/incidents/{key}", response_model=Incident)
    async def show(key: str, service: Service) -> Incident:
        return await service.get(key)

    def command_route(path: str, name: str, model: type[BaseModel], summary: str) -> None:
        async def handler(key: str, payload: BaseModel, service: Service) -> IncidentStatus:
            with structlog.contextvars.bound_contextvars(
                incident_key=key, workflow_id=workflow_id_for(key), command=name
            ):
                try:
                    result = await service.command(key, name, payload)
                except CommandRejected as error:
                    log.info("incident.command_rejected", reason=str(error))
                    raise
                log.info("incident.command", state=result.state.value)
                return result

        handler.__annotations__["payload"] = model
        api.post(
            f"/api/incidents/{{key}}/{path}",
            response_model=IncidentStatus,
            summary=summary,
            name=name,
            responses={404: {}, 409: {}, 503: {}},
        )(handler)

    command_route("acknowledge", "acknowledge", Acknowledge, "Acknowledge and name the commander")
    command_route("roles", "assign_role", AssignRole, "Assign a role")
    command_route("severity", "set_severity", SetSeverity, "Change the severity")
    command_route("timeline", "add_timeline_event", AddTimelineEvent, "Add a timeline event")
    command_route("mitigate", "mitigate", Transition, "Mark the impact mitigated")
    command_route("resolve", "resolve", Transition, "Mark the incident resolved")
    command_route("cancel", "cancel", Cancel, "Cancel with a reason")

    @api.exception_handler(HTTPException)
    async def _http(_: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"detail": error.detail}, status_code=error.status_code)

    return api


def serve(settings: Settings) -> None:
    import uvicorn

    configure_logging(log_format=settings.log_format, level=settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # uvicorn's loggers go through our structlog handler
        access_log=True,
    )
