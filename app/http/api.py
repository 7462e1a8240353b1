"""The HTTP API: the CLI's operations over JSON, with OpenAPI at /docs.

Errors answer with {"detail": "..."}: 404 unknown incident, action item or ticket, 409 a
command the incident or the item rejected (the validator's reason), 413 a body or a command
over its size limit (the limit named), 422 an invalid body (with "problems": every problem,
one "path: message" each), 503 Temporal or the worker away.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import AfterValidator, BaseModel, Field, ValidationError, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.client import Client

from app.formats.audit_bundle import zip_bytes
from app.formats.audit_report import MEDIA_TYPES, ReportFormat, rendered
from app.formats.problems import problem_message
from app.formats.review_files import review_template
from app.formats.review_markdown import review_markdown
from app.http.auth import (
    AuthenticationMiddleware,
    Authenticator,
    Principal,
    current_principal,
    requires,
)
from app.http.bodies import command, counted_from_now, without
from app.http.limits import BodyLimit
from app.http.review_requests import (
    YAML_TYPES,
    InvalidReview,
    is_json,
    media_type,
    submitted_review,
    wants_markdown,
)
from app.http.team_scope import check_incident, check_items
from app.http.webhooks import router as webhooks_router
from app.services.actions import ActionItems, RetryOutcome
from app.services.audit import export_bundle, signing_key
from app.services.commands import KEY_PATTERN, CommandPending, Pending, UnknownCommand
from app.services.credentials import CredentialsError, bootstrap_admin_token, check_exposure
from app.services.deployment import Deployed
from app.services.digest import WeekError
from app.services.digest import preview as digest_preview
from app.services.incident_filter import IncidentFilter
from app.services.incidents import (
    CommandRejected,
    CommandTooLarge,
    IncidentNotFound,
    Incidents,
    TemporalUnavailable,
    UnknownTeam,
    unavailable_message,
)
from app.services.insights import DEFAULT_SINCE, Insights, WindowError, window, window_length
from app.services.library import InvalidFailureMode, Library
from app.services.period_evidence import PeriodEvidence
from app.services.tickets import StatusChange, set_status
from domain.action_item import (
    AcceptRisk,
    ActionItem,
    ActionItemRow,
    ActionItemSpec,
    ActionItemSummary,
    ExtendDeadline,
    TicketStatus,
    VerifyItem,
    item_id_of_workflow,
    parse_action_item_id,
)
from domain.audit.signing import SigningKeyError
from domain.commands import (
    Acknowledge,
    AddTimelineEvent,
    AssignRole,
    Cancel,
    NewIncident,
    SetSeverity,
    Transition,
)
from domain.digest import Digest
from domain.failure_modes import FailureMode, LibraryEntry, Taxonomy, TaxonomyError
from domain.failure_modes import Slug as ModeSlug
from domain.identity import Permission
from domain.incident import (
    Incident,
    IncidentStatus,
    IncidentSummary,
    workflow_id_for,
)
from domain.keys import normal_key
from domain.limits import Moment, SearchName
from domain.metrics import DefinitionSet, Grouping, MetricsReport
from domain.moments import moment
from domain.paging import CURSOR_CHARS, DEFAULT_PAGE, PAGE_LIMIT_MAX, BadCursor, Page
from domain.policy import Policy, PolicyFileError, format_duration, load_policy
from domain.review import ReviewRecord, ScheduleReview
from domain.routing import Routing, RoutingError, load_routing
from domain.tickets import TicketDetail
from integrations.local import LocalTracker
from integrations.oidc import OidcVerifier, RoleMapError, load_role_map
from integrations.temporal_client import connect
from integrations.tracker import Ticket, TrackerError
from settings import Settings
from store import StoreError, configured_store
from store.api_tokens import ApiTokens
from store.facts import FactsRepository
from store.failure_modes import (
    FailureModeExists,
    FailureModeRefused,
    StaleVersion,
    UnknownFailureMode,
)
from telemetry.logs import configure_logging, get_logger
from telemetry.metrics import API_REGISTRY, Exposition, FactsCollector

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
    deployed = await asyncio.to_thread(state.deployed.current)
    return Incidents(
        client,
        task_queue=state.settings.task_queue,
        policy=deployed.policy,
        routing=deployed.routing,
    )


async def _action_items(request: Request) -> ActionItems:
    return ActionItems(await request.app.state.connection.client())


Service = Annotated[Incidents, Depends(_incidents)]
Items = Annotated[ActionItems, Depends(_action_items)]
Caller = Annotated[Principal, Depends(current_principal)]


def rule(permission: Permission) -> list[Any]:
    """A route's only rule: who may call it. Route-level, so it runs before any dependency
    that reaches Temporal or the store, and before the body is validated."""
    return [Depends(requires(permission))]


class IncidentQuery(IncidentFilter):
    """The list's filters as query parameters; `since` and `until` also take how long ago."""

    since: Annotated[Moment | None, counted_from_now(ahead=False)] = Field(
        default=None, description="only those declared at or after this: ISO 8601, or 7d (ago)"
    )
    until: Annotated[Moment | None, counted_from_now(ahead=False)] = Field(
        default=None, description="only those declared before this: ISO 8601, or 1h (ago)"
    )


# Keys and ids in paths are read in any case (inc-261127-7kq2), as people type them.
IncidentKey = Annotated[
    str,
    Path(description="The incident's key, e.g. INC-261127-7KQ2 (any case)."),
    AfterValidator(normal_key),
]
ItemId = Annotated[
    str,
    Path(alias="id", description="The action item's id, KEY-N: e.g. INC-261127-7KQ2-1."),
    AfterValidator(normal_key),
]
# A retry of a command sends the same key, so it attaches to the first instead of applying it
# twice (app/services/commands.py).
CommandKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        pattern=f"^{KEY_PATTERN.pattern}$",
        description="Your key for this command (e.g. a UUID: 1-100 letters, digits and ._:-); "
        "send the same one when you retry it, and it is applied once. Without one, each request "
        "is a command of its own.",
    ),
]
Slug = Annotated[str, Path(description="A failure mode's slug, e.g. connection-pool-exhaustion.")]
PageLimit = Annotated[
    int,
    Query(
        ge=1,
        le=PAGE_LIMIT_MAX,
        description="Rows in the page (the answer's `total` says how many match).",
    ),
]
PageCursor = Annotated[
    str | None,
    Query(
        max_length=CURSOR_CHARS,
        description="The `next` of the page before; without one, the first page.",
    ),
]


class FailureModeEdit(FailureMode):
    """A failure mode as PUT replaces it, with the version it was made from."""

    version: int = Field(
        ge=1,
        description="the entry's version this edit was made from (GET shows it); a newer one "
        "in the library refuses the edit with 409",
    )

    @model_validator(mode="after")
    def _slug(self) -> FailureModeEdit:
        return self  # no slug: the path's, not one derived from the name (a slug never changes)


CommandId = Annotated[
    str, Path(description="The command id a 202 answer named, e.g. resolve:3f2a…")
]


class Health(BaseModel):
    status: str
    temporal: str
    detail: str | None = None


class ErrorBody(BaseModel):
    detail: str


class ProblemsBody(BaseModel):
    detail: str
    problems: list[str] = Field(description="every problem, each as 'path: message'")


_ERRORS: dict[int, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No valid credential: send Authorization: Bearer"},
    403: {"model": ErrorBody, "description": "The caller's role may not do this"},
    404: {"model": ErrorBody, "description": "No such incident, action item or ticket"},
    409: {"model": ErrorBody, "description": "Rejected in the current state: the reason"},
    413: {"model": ErrorBody, "description": "The body or the command is over its size limit"},
    415: {"model": ErrorBody, "description": "A body that is neither JSON nor YAML"},
    422: {"model": ProblemsBody, "description": "Invalid: every problem, with its path"},
    503: {"model": ErrorBody, "description": "Temporal, its worker or the tracker away"},
    202: {
        "model": Pending,
        "description": "Sent, not applied yet (no worker has taken it, or it has not answered "
        "in time): ask GET `outcome` for what became of it",
    },
}


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route; 401, 403, 413 (a body over the limit, see
    app.http.limits) and 422 (invalid parameters or body) are always among them."""
    return {code: _ERRORS[code] for code in sorted({*codes, 401, 403, 413, 422})}


def _unreadable_body(error: StarletteHTTPException) -> str | None:
    """Why FastAPI could not parse a JSON body it answers with a bare 400, as a problem; None
    for any other HTTP error. The README promises 422 for an invalid body."""
    cause = error.__cause__
    if error.status_code != 400:
        return None
    if isinstance(cause, UnicodeDecodeError):
        return "body: not UTF-8 text; send JSON encoded as UTF-8"
    if isinstance(cause, RecursionError):
        return "body: nested too deeply to read; a request needs only a few levels"
    return None


class YAMLResponse(Response):
    media_type = "text/yaml"  # Starlette adds "; charset=utf-8" to text types


_REVIEW_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Review"}},
        "application/yaml": {
            "schema": {
                "type": "string",
                "description": "a review file, as GET /api/incidents/{key}/review/template "
                "writes it",
            }
        },
        "text/yaml": {"schema": {"type": "string"}},
    },
}


def _request_problem(error: dict[str, Any]) -> str:
    """One of FastAPI's validation errors as 'path: message' (a body's fields without 'body.')."""
    loc = list(error.get("loc", ()))
    if loc and loc[0] == "body":
        loc = loc[1:]
        if error.get("type") == "json_invalid":
            reason = (error.get("ctx") or {}).get("error", "")
            at = f" at character {loc[0]}" if loc else ""
            return f"body: not valid JSON{at}: {reason}"
    path = ".".join(str(part) for part in loc) or "body"
    return f"{path}: {problem_message(error)}"


Answer = TypeVar("Answer", IncidentStatus, ActionItemSummary)


async def _logged(subject: str, command: Awaitable[Answer]) -> Answer:
    """Run a command, logging its outcome (the context already names the incident or item)."""
    try:
        result = await command
    except CommandRejected as error:
        log.info(f"{subject}.command_rejected", reason=str(error))
        raise
    log.info(f"{subject}.command", state=result.state.value)
    return result


async def _check_own_item(
    caller: Principal, items: ActionItems, item_id: str, *, shown: str | None = None
) -> None:
    """A team-scoped caller acts only on its team's items: one item read, and only for them."""
    if caller.team is not None:
        owner = (await items.get(item_id)).spec.owning_team
        check_items(caller, [(shown or item_id, owner)])


def _known_item_id(item_id: str) -> str:
    try:
        parse_action_item_id(item_id)
    except ValueError as error:
        raise HTTPException(404, f"no action item {item_id}: {error}") from None
    return item_id


def oidc_verifier(settings: Settings) -> OidcVerifier | None:
    """The OIDC verifier the settings configure, or None (RoleMapError: a bad roles file)."""
    if settings.oidc_issuer is None or settings.oidc_audience is None:
        return None
    return OidcVerifier(
        settings.oidc_issuer,
        settings.oidc_audience,
        roles_claim=settings.oidc_roles_claim,
        role_map=load_role_map(settings.oidc_roles_file),
    )


def create_app(
    settings: Settings,
    *,
    policy: Policy | None = None,
    routing: Routing | None = None,
    connector: Connector = connect,
) -> FastAPI:
    """The API; the policy, the routing and the taxonomy files and the audit signing key are
    read here, once (PolicyFileError, RoutingError, TaxonomyError, SigningKeyError when one is
    unusable)."""
    connection = _TemporalConnection(settings, connector)
    audit_signer = signing_key(settings)
    # The API's own files must be usable (they are in force until a worker publishes its own).
    load_policy(settings.policy_file)
    load_routing(settings.routing_file)
    store = configured_store(settings)
    tracker = LocalTracker(store)
    tokens = ApiTokens(store)
    insights = Insights(store)
    library = Library.configured(settings, store)
    authenticator = Authenticator(tokens, oidc_verifier(settings))
    # This process's counters (webhook deliveries) and the read model's gauges, read at scrape.
    exposition = Exposition(API_REGISTRY, FactsCollector(FactsRepository(store)))

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
    deployed = Deployed(settings, store, policy=policy, routing=routing)
    api.state.deployed = deployed
    api.state.tokens = tokens
    api.include_router(webhooks_router)
    api.add_middleware(AuthenticationMiddleware, authenticator=authenticator)
    # Added last, so it runs first: no oversized body is read by anything, auth included.
    api.add_middleware(
        BodyLimit,
        limits={"/api/": settings.api_max_body, "/webhooks/": settings.webhook_max_body},
    )

    @api.exception_handler(ValidationError)
    async def _invalid_command(_: Request, error: ValidationError) -> JSONResponse:
        # A body that passed its own fields but not the command's checks across them.
        problems = [
            _request_problem({**detail, "loc": ("body", *detail["loc"])})
            for detail in error.errors()
        ]
        detail = "invalid request: " + "; ".join(problems)
        return JSONResponse({"detail": detail, "problems": problems}, status_code=422)

    @api.exception_handler(IncidentNotFound)
    async def _not_found(_: Request, error: IncidentNotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @api.exception_handler(BadCursor)
    async def _bad_cursor(_: Request, error: BadCursor) -> JSONResponse:
        return JSONResponse({"detail": str(error), "problems": [str(error)]}, status_code=422)

    @api.exception_handler(CommandRejected)
    async def _rejected(_: Request, error: CommandRejected) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=409)

    @api.exception_handler(CommandTooLarge)
    async def _too_large(_: Request, error: CommandTooLarge) -> JSONResponse:
        return JSONResponse({"detail": str(error), "problems": [str(error)]}, status_code=413)

    @api.exception_handler(UnknownTeam)
    async def _unknown_team(_: Request, error: UnknownTeam) -> JSONResponse:
        return JSONResponse({"detail": str(error), "problems": [str(error)]}, status_code=422)

    @api.exception_handler(InvalidReview)
    async def _invalid_review(_: Request, error: InvalidReview) -> JSONResponse:
        return JSONResponse({"detail": str(error), "problems": error.problems}, status_code=422)

    @api.exception_handler(InvalidFailureMode)
    async def _invalid_failure_mode(_: Request, error: InvalidFailureMode) -> JSONResponse:
        detail = "invalid failure mode: " + "; ".join(error.problems)
        return JSONResponse({"detail": detail, "problems": error.problems}, status_code=422)

    @api.exception_handler(FailureModeRefused)
    async def _library_refused(_: Request, error: FailureModeRefused) -> JSONResponse:
        if isinstance(error, UnknownFailureMode):
            return JSONResponse({"detail": str(error)}, status_code=404)
        if isinstance(error, FailureModeExists | StaleVersion):
            return JSONResponse({"detail": str(error)}, status_code=409)
        return JSONResponse({"detail": str(error), "problems": [str(error)]}, status_code=422)

    @api.exception_handler(RequestValidationError)
    async def _invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        problems = [_request_problem(dict(detail)) for detail in error.errors()]
        detail = "invalid request: " + "; ".join(problems)
        return JSONResponse({"detail": detail, "problems": problems}, status_code=422)

    @api.exception_handler(TrackerError)
    async def _tracker_failed(_: Request, error: TrackerError) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503 if error.retryable else 404)

    @api.exception_handler(TemporalUnavailable)
    async def _unavailable(_: Request, error: TemporalUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503)

    @api.exception_handler(CommandPending)
    async def _pending(request: Request, error: CommandPending) -> JSONResponse:
        subject = request.url.path.split("/")[:4]  # ['', 'api', 'incidents' or 'actions', key]
        answer = Pending(
            command=error.command_id.split(":", 1)[0],
            command_id=error.command_id,
            detail=str(error),
            outcome=f"{'/'.join(subject)}/commands/{error.command_id}",
        )
        log.info("command.pending", command_id=error.command_id, detail=str(error))
        return JSONResponse(answer.model_dump(), status_code=202)

    @api.exception_handler(UnknownCommand)
    async def _unknown_command(_: Request, error: UnknownCommand) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @api.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    async def healthz() -> Health | JSONResponse:
        try:
            client = await connection.client()
            await client.service_client.check_health()
        except Exception as error:  # any failure means "not healthy"; the detail says which
            body = Health(status="degraded", temporal="unreachable", detail=str(error))
            return JSONResponse(body.model_dump(), status_code=503)
        return Health(status="ok", temporal="reachable")

    @api.get(
        "/metrics",
        dependencies=rule(Permission.READ),
        response_class=Response,
        summary="Prometheus metrics, in the text exposition format",
        description="Open incidents by severity and state, open and overdue action items by "
        "team, escalations by rung (from the read model, at each scrape), and webhook "
        "deliveries by tracker and result; the README's Metrics section lists them. Needs a "
        "token with the read permission (a viewer's): Prometheus sends it from a credentials "
        "file.",
        responses={
            200: {
                "description": "The metrics",
                "content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
            },
            **{code: _ERRORS[code] for code in (401, 403)},
        },
    )
    async def prometheus_metrics() -> Response:
        # The read model's queries are synchronous: off the event loop.
        body = await asyncio.to_thread(generate_latest, exposition)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def declare(body: BaseModel, service: Service, caller: Caller) -> IncidentStatus:
        request = command(NewIncident, body, declared_by=caller.actor.label, actor=caller.actor)
        check_incident(caller, "the new incident", request.teams)
        await asyncio.to_thread(library.require, "failure_modes", request.failure_modes)
        status = await service.declare(request)
        log.info(
            "incident.declared",
            incident_key=status.key,
            workflow_id=workflow_id_for(status.key),
            severity=status.severity.value,
        )
        return status

    declare.__annotations__["body"] = without(NewIncident, "declared_by", "actor")
    api.post(
        "/api/incidents",
        dependencies=rule(Permission.RESPOND),
        response_model=IncidentStatus,
        status_code=201,
        responses=_errors(409, 422, 503),
    )(declare)

    @api.get(
        "/api/incidents",
        response_model=Page[IncidentSummary],
        summary="List incidents, open ones first, then the latest declared",
        responses=_errors(422, 503),
        dependencies=rule(Permission.READ),
    )
    async def list_incidents(
        service: Service,
        filters: Annotated[IncidentQuery, Query()],
        limit: PageLimit = DEFAULT_PAGE,
        cursor: PageCursor = None,
    ) -> Page[IncidentSummary]:
        return await service.list(filters, limit=limit, cursor=cursor)

    @api.get(
        "/api/incidents/{key}",
        response_model=Incident,
        responses=_errors(404, 503),
        dependencies=rule(Permission.READ),
    )
    async def show(key: IncidentKey, service: Service) -> Incident:
        return await service.get(key)

    @api.get(
        "/api/incidents/{key}/commands/{command_id}",
        response_model=IncidentStatus | ActionItemSummary,
        summary="What became of a command a 202 answered: its answer once applied",
        responses=_errors(202, 404, 409, 503),
        dependencies=rule(Permission.READ),
    )
    async def incident_command_outcome(
        key: IncidentKey, command_id: CommandId, service: Service
    ) -> BaseModel:
        return await service.outcome(key, command_id)

    def command_route(
        path: str, name: str, model: type[BaseModel], summary: str, needs: Permission
    ) -> None:
        async def handler(
            key: IncidentKey,
            payload: BaseModel,
            service: Service,
            caller: Caller,
            request_key: CommandKey = None,
        ) -> IncidentStatus:
            with structlog.contextvars.bound_contextvars(
                incident_key=key, workflow_id=workflow_id_for(key), command=name
            ):
                fields: dict[str, Any] = {"actor": caller.actor}
                if "by" in model.model_fields:
                    fields["by"] = caller.actor.label
                issued = command(model, payload, **fields)
                if caller.team is not None:
                    check_incident(caller, key, (await service.get(key)).teams)
                sent = service.command(key, name, issued, request_key=request_key)
                return await _logged("incident", sent)

        handler.__annotations__["payload"] = without(model, "by", "actor")
        api.post(
            f"/api/incidents/{{key}}/{path}",
            dependencies=rule(needs),
            response_model=IncidentStatus,
            summary=summary,
            name=name,
            responses=_errors(202, 404, 409, 422, 503),
        )(handler)

    respond, review = Permission.RESPOND, Permission.REVIEW
    command_route(
        "acknowledge", "acknowledge", Acknowledge, "Acknowledge and name the commander", respond
    )
    command_route("roles", "assign_role", AssignRole, "Assign a role", respond)
    command_route("severity", "set_severity", SetSeverity, "Change the severity", respond)
    command_route(
        "timeline", "add_timeline_event", AddTimelineEvent, "Add a timeline event", respond
    )
    command_route("mitigate", "mitigate", Transition, "Mark the impact mitigated", respond)
    command_route("resolve", "resolve", Transition, "Mark the incident resolved", respond)
    command_route("cancel", "cancel", Cancel, "Cancel with a reason", respond)
    command_route(
        "review/schedule",
        "schedule_review",
        ScheduleReview,
        "Schedule the post-incident review",
        review,
    )

    # ---- the review ----------------------------------------------------------------------

    @api.get(
        "/api/incidents/{key}/review/template",
        dependencies=rule(Permission.READ),
        response_class=YAMLResponse,
        summary="The review file to fill in, prefilled from the incident",
        responses={
            200: {
                "description": "A YAML review file, with comments as a guide",
                "content": {"text/yaml": {"schema": {"type": "string"}}},
            },
            **_errors(404, 422, 503),
        },
    )
    async def review_file_template(
        key: IncidentKey,
        service: Service,
        failure_mode: Annotated[
            list[ModeSlug],
            Query(
                description="A failure mode of the library the review names, besides the "
                "incident's own (repeatable): its recipes prefill the action items."
            ),
        ] = [],  # noqa: B006 (FastAPI copies a query default; it is never shared)
    ) -> YAMLResponse:
        incident = await service.get(key)
        modes = await asyncio.to_thread(
            library.named, failure_mode, declared=incident.failure_modes, field="failure_mode"
        )
        return YAMLResponse(
            review_template(incident, taxonomy=library.taxonomy, modes=modes),
            headers={"Content-Disposition": f'inline; filename="review-{incident.key}.yaml"'},
        )

    @api.post(
        "/api/incidents/{key}/review",
        dependencies=rule(Permission.REVIEW),
        response_model=IncidentStatus,
        summary="Submit the review, as JSON or as a YAML review file",
        description="The body is a Review as JSON, or a review file as YAML (Content-Type "
        "application/yaml or text/yaml). A review that cannot be accepted answers 422 with "
        "every problem; each action item becomes a tracked ticket.",
        responses=_errors(202, 404, 409, 415, 422, 503),
        openapi_extra={"requestBody": _REVIEW_BODY},
    )
    async def submit_review(
        key: IncidentKey,
        request: Request,
        service: Service,
        caller: Caller,
        request_key: CommandKey = None,
    ) -> IncidentStatus:
        media = media_type(request.headers.get("content-type"))
        if not (is_json(media) or media in YAML_TYPES):
            raise HTTPException(
                415,
                f"cannot read a review sent as {media}; send JSON (Content-Type: "
                "application/json) or a review file (Content-Type: application/yaml)",
            )
        body = await request.body()
        incident = await service.get(key)
        with structlog.contextvars.bound_contextvars(
            incident_key=key, workflow_id=workflow_id_for(key), command="submit_review"
        ):
            try:
                check_incident(caller, key, incident.teams)
                in_force = await asyncio.to_thread(deployed.current)
                known = await asyncio.to_thread(library.known)
                review = submitted_review(
                    body, media, incident, in_force.routing, in_force.policy, known
                )
                check_items(
                    caller, ((spec.title, spec.owning_team) for spec in review.action_items)
                )
            except InvalidReview as error:
                log.info("incident.review_invalid", problems=len(error.problems))
                raise
            try:
                result = await service.submit_review(
                    key, review, actor=caller.actor, request_key=request_key
                )
            except CommandRejected as error:
                log.info("incident.command_rejected", reason=str(error))
                raise
            log.info(
                "incident.command", state=result.state.value, action_items=len(review.action_items)
            )
            return result

    @api.get(
        "/api/incidents/{key}/review",
        dependencies=rule(Permission.READ),
        response_model=ReviewRecord,
        summary="The submitted review: JSON, or Markdown with Accept: text/markdown",
        responses={
            200: {
                "description": "The review as accepted (JSON), or as a Markdown document with "
                "the executive summary first",
                "content": {"text/markdown": {"schema": {"type": "string"}}},
            },
            **_errors(404, 503),
        },
    )
    async def show_review(
        key: IncidentKey, request: Request, response: Response, service: Service
    ) -> ReviewRecord | Response:
        incident = await service.get(key)
        if incident.review is None:
            raise HTTPException(
                404,
                f"{incident.key} has no review yet (it is {incident.state.value}); get the file "
                f"to fill in from GET /api/incidents/{incident.key}/review/template, then POST "
                f"it to /api/incidents/{incident.key}/review",
            )
        if wants_markdown(request.headers.get("accept")):
            names = await asyncio.to_thread(library.names)
            return Response(
                review_markdown(incident, names),
                media_type="text/markdown; charset=utf-8",
                headers={"Vary": "Accept"},
            )
        response.headers["Vary"] = "Accept"
        return incident.review

    # ---- evidence for auditors ------------------------------------------------------------

    @api.get(
        "/api/audit/report",
        dependencies=rule(Permission.AUDIT),
        response_class=Response,
        summary="Control evidence for a period",
        description="Per incident declared in [from, to): its deadlines met or missed and by "
        "how much, how its review was held, and what became of each action item, totals "
        "first: what `afteraction audit report` prints.",
        responses={
            200: {
                "description": "The report",
                "content": {
                    media: {"schema": {"type": "string"}} for media in MEDIA_TYPES.values()
                },
            },
            **_errors(409, 422, 503),
        },
    )
    async def audit_report(
        service: Service,
        items: Items,
        since: Annotated[
            str, Query(alias="from", max_length=100, description="ISO time, or how long ago (90d).")
        ],
        until: Annotated[
            str | None, Query(alias="to", max_length=100, description="Default: now.")
        ] = None,
        form: Annotated[ReportFormat, Query(alias="format")] = ReportFormat.MD,
    ) -> Response:
        now = datetime.now(UTC)
        try:
            start = moment(since, now=now, ahead=False)
            end = now if until is None else moment(until, now=now, ahead=False)
        except ValueError as error:
            problem = f"query.from or query.to: {error}"
            return JSONResponse({"detail": problem, "problems": [problem]}, status_code=422)
        report = await PeriodEvidence(service, items).report(start, end)
        log.info("audit.report", since=start.isoformat(), until=end.isoformat(), format=form.value)
        return Response(rendered(report, form), media_type=MEDIA_TYPES[form])

    @api.get(
        "/api/incidents/{key}/audit",
        dependencies=rule(Permission.AUDIT),
        response_class=Response,
        summary="The incident's evidence bundle, as a zip",
        description="Every workflow history of the incident and its action items, the record "
        "derived from them (Markdown and CSV) and a manifest of their SHA-256s, signed when "
        "AFTERACTION_AUDIT_SIGNING_KEY is set: what `afteraction audit export` writes, and "
        "`afteraction audit verify` checks.",
        responses={
            200: {
                "description": "The bundle as a zip",
                "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            },
            **_errors(404, 503),
        },
    )
    async def audit_bundle(key: IncidentKey, request: Request) -> Response:
        client = await request.app.state.connection.client()
        with structlog.contextvars.bound_contextvars(incident_key=key, command="audit_export"):
            files = await export_bundle(
                client, key, key_to_sign=audit_signer, commit=settings.git_commit
            )
            log.info("incident.audit_exported", files=len(files), signed=audit_signer is not None)
        return Response(
            zip_bytes(files),
            media_type="application/zip",
            headers={"Content-Disposition": f'attachment; filename="{key}-audit.zip"'},
        )

    # ---- action items --------------------------------------------------------------------

    @api.post(
        "/api/incidents/{key}/actions",
        dependencies=rule(Permission.REVIEW),
        response_model=ActionItemSummary,
        status_code=201,
        summary="Add an action item to a reviewed incident",
        responses=_errors(202, 404, 409, 422, 503),
    )
    async def add_action_item(
        key: IncidentKey,
        spec: ActionItemSpec,
        service: Service,
        caller: Caller,
        request_key: CommandKey = None,
    ) -> ActionItemSummary:
        with structlog.contextvars.bound_contextvars(
            incident_key=key, workflow_id=workflow_id_for(key), command="add_action_item"
        ):
            check_items(caller, [(spec.title, spec.owning_team)])
            try:
                result = await service.add_action_item(
                    key, spec, actor=caller.actor, request_key=request_key
                )
            except CommandRejected as error:
                log.info("incident.command_rejected", reason=str(error))
                raise
            log.info("incident.command", action_item=result.id)
            return result

    @api.get(
        "/api/actions",
        dependencies=rule(Permission.READ),
        response_model=Page[ActionItemRow],
        summary="List action items, a page at a time, soonest due first within it",
        responses=_errors(422, 503),
    )
    async def list_action_items(
        items: Items,
        incident: Annotated[str | None, Query(description="Only this incident's.")] = None,
        team: Annotated[SearchName | None, Query(description="Only this owning team's.")] = None,
        overdue: Annotated[bool, Query(description="Only open items past due.")] = False,
        limit: PageLimit = DEFAULT_PAGE,
        cursor: PageCursor = None,
    ) -> Page[ActionItemRow]:
        return await items.list(
            incident=incident, team=team, overdue=overdue, limit=limit, cursor=cursor
        )

    @api.get(
        "/api/actions/{id}",
        dependencies=rule(Permission.READ),
        response_model=ActionItem,
        summary="An action item: ticket, due date, escalations",
        responses=_errors(404, 503),
    )
    async def show_action_item(item_id: ItemId, items: Items) -> ActionItem:
        return await items.get(_known_item_id(item_id))

    @api.get(
        "/api/actions/{id}/commands/{command_id}",
        dependencies=rule(Permission.READ),
        response_model=ActionItemSummary,
        summary="What became of a command to an item that a 202 answered",
        responses=_errors(202, 404, 409, 503),
    )
    async def item_command_outcome(
        item_id: ItemId, command_id: CommandId, items: Items
    ) -> ActionItemSummary:
        return await items.outcome(_known_item_id(item_id), command_id)

    def action_route(
        path: str,
        name: str,
        model: type[BaseModel],
        summary: str,
        needs: Permission,
        actor_field: str = "by",
    ) -> None:
        async def handler(
            item_id: ItemId,
            payload: BaseModel,
            items: Items,
            caller: Caller,
            request_key: CommandKey = None,
        ) -> ActionItemSummary:
            with structlog.contextvars.bound_contextvars(action_item=item_id, command=name):
                issued = command(
                    model, payload, **{actor_field: caller.actor.label, "actor": caller.actor}
                )
                known = _known_item_id(item_id)
                await _check_own_item(caller, items, known)
                pending = items.command(known, name, issued, request_key=request_key)
                return await _logged("action_item", pending)

        handler.__annotations__["payload"] = without(model, actor_field, "actor")
        api.post(
            f"/api/actions/{{id}}/{path}",
            dependencies=rule(needs),
            response_model=ActionItemSummary,
            summary=summary,
            name=name,
            responses=_errors(202, 404, 409, 422, 503),
        )(handler)

    action_route("extend", "extend_deadline", ExtendDeadline, "Move the due date later", review)
    action_route(
        "verify", "verify", VerifyItem, "Confirm the criteria of a closed ticket's item", review
    )
    action_route(
        "accept",
        "accept_risk",
        AcceptRisk,
        "Close the item as won't do (the caller is the approver)",
        Permission.APPROVE,
        actor_field="approver",
    )

    @api.post(
        "/api/actions/{id}/retry-ticket",
        dependencies=rule(Permission.REVIEW),
        response_model=RetryOutcome,
        summary="Try creating the item's ticket again now (after fixing a tracker's settings)",
        description="An item that has its ticket, or whose creation no tracker has refused, is "
        "not asked: `requested` is false and `detail` says why.",
        responses=_errors(404, 503),
    )
    async def retry_ticket(item_id: ItemId, items: Items, caller: Caller) -> RetryOutcome:
        known = _known_item_id(item_id)
        await _check_own_item(caller, items, known)
        outcome = await items.retry_ticket(known)
        log.info("action_item.retry_ticket", action_item=item_id, requested=outcome.requested)
        return outcome

    # ---- insights: the figures of a window, from the read model ---------------------------

    @api.get(
        "/api/metrics",
        dependencies=rule(Permission.READ),
        response_model=MetricsReport,
        summary="Detection, response and closure figures of the incidents declared in a window",
        responses=_errors(422, 503),
    )
    async def metrics(
        since: Annotated[
            str, Query(description="How far back the window reaches: 30d, 90d, 365d.")
        ] = format_duration(DEFAULT_SINCE),
        by: Annotated[Grouping | None, Query(description="Figures per group.")] = None,
    ) -> MetricsReport:
        try:
            length = window_length(since)
            window(length)
        except WindowError as error:
            raise HTTPException(422, f"since: {error}") from None
        return await asyncio.to_thread(lambda: insights.metrics(since=length, by=by))

    @api.get(
        "/api/metrics/definitions",
        dependencies=rule(Permission.READ),
        response_model=DefinitionSet,
        summary="What each figure measures: its facts, fallbacks, exclusions and unit",
        responses=_errors(),
    )
    async def metric_definitions() -> DefinitionSet:
        return DefinitionSet()

    @api.get(
        "/api/digest",
        dependencies=rule(Permission.READ),
        response_model=Digest,
        summary="The weekly digest of a week, as its email would carry it",
        responses=_errors(422, 503),
    )
    async def weekly_digest(
        week: Annotated[
            str | None,
            Query(
                description="The ISO week the digest is sent in, e.g. 2026-W49 (it covers the week "
                "before its send time); default: the latest send time's.",
                max_length=20,
            ),
        ] = None,
    ) -> Digest:
        in_force = await asyncio.to_thread(deployed.current)
        try:
            return await asyncio.to_thread(
                lambda: digest_preview(store, settings, in_force.policy.digest, week)
            )
        except WeekError as error:
            raise HTTPException(422, f"week: {error}") from None

    # ---- the failure-mode library ---------------------------------------------------------

    @api.get(
        "/api/library",
        dependencies=rule(Permission.READ),
        response_model=list[LibraryEntry],
        summary="The failure modes of the library, by name",
        responses=_errors(503),
    )
    async def list_failure_modes() -> list[LibraryEntry]:
        return await asyncio.to_thread(library.all)

    @api.get(
        "/api/library/taxonomy",
        dependencies=rule(Permission.READ),
        response_model=Taxonomy,
        summary="The taxonomy in force: the triggers and root causes entries may use",
        responses=_errors(),
    )
    async def failure_mode_taxonomy() -> Taxonomy:
        return library.taxonomy

    @api.get(
        "/api/library/{slug}",
        dependencies=rule(Permission.READ),
        response_model=LibraryEntry,
        summary="A failure mode: its signals, recipes and suggested action items",
        responses=_errors(404, 503),
    )
    async def show_failure_mode(slug: Slug) -> LibraryEntry:
        return await asyncio.to_thread(library.get, slug)

    @api.post(
        "/api/library",
        dependencies=rule(Permission.REVIEW),
        response_model=LibraryEntry,
        status_code=201,
        summary="Add a failure mode (its slug comes from its name unless given)",
        description="Every trigger and root cause must be in the taxonomy in force; 422 lists "
        "each one that is not, with the values allowed. A slug in the library already: 409.",
        responses=_errors(409, 422, 503),
    )
    async def add_failure_mode(body: FailureMode, caller: Caller) -> LibraryEntry:
        entry = await asyncio.to_thread(lambda: library.add(body, actor=caller.actor))
        log.info("library.added", slug=entry.mode.slug)
        return entry

    @api.put(
        "/api/library/{slug}",
        dependencies=rule(Permission.REVIEW),
        response_model=LibraryEntry,
        summary="Replace a failure mode, if it is still at the version the edit was made from",
        description="The slug never changes (a body without one keeps the path's). A version "
        "older than the library's: 409, with who edited it last.",
        responses=_errors(404, 409, 422, 503),
    )
    async def edit_failure_mode(slug: Slug, body: FailureModeEdit, caller: Caller) -> LibraryEntry:
        fields = body.model_dump(exclude={"version"})
        fields["slug"] = body.slug or slug
        mode = FailureMode.model_validate(fields)
        entry = await asyncio.to_thread(
            lambda: library.edit(slug, mode, expected_version=body.version, actor=caller.actor)
        )
        log.info("library.edited", slug=slug, version=entry.version)
        return entry

    # ---- the local tracker, as the owning team uses it -----------------------------------

    @api.get(
        "/api/tickets",
        dependencies=rule(Permission.READ),
        response_model=list[Ticket],
        summary="The local tracker's tickets, oldest first",
        responses=_errors(422, 503),
    )
    async def list_tickets(
        status: Annotated[TicketStatus | None, Query(description="Only open or closed.")] = None,
    ) -> list[Ticket]:
        return await asyncio.to_thread(lambda: tracker.tickets(status=status))

    @api.get(
        "/api/tickets/{key}",
        dependencies=rule(Permission.READ),
        response_model=TicketDetail,
        summary="A local ticket with its body and comments",
        responses=_errors(404, 503),
    )
    async def show_ticket(key: str) -> TicketDetail:
        return await asyncio.to_thread(tracker.detail, key)

    def ticket_route(path: str, status: TicketStatus, summary: str) -> None:
        async def handler(key: str, items: Items, caller: Caller) -> StatusChange:
            if caller.team is not None:
                ticket = await asyncio.to_thread(tracker.get, "local", key)
                item_id = item_id_of_workflow(ticket.idempotency_key or "")
                if item_id is None:  # opened by hand: no team owns it
                    check_items(caller, [(key, "nobody")])
                else:
                    await _check_own_item(caller, items, item_id, shown=key)
            change = await set_status(
                tracker,
                key,
                status,
                client=connection.client,
                temporal_address=settings.effective_temporal_address,
            )
            log.info(
                "ticket.changed",
                ticket=key,
                status=change.ticket.status.value,
                workflow_id=change.workflow_id,
                told=change.told,
            )
            return change

        api.post(
            f"/api/tickets/{{key}}/{path}",
            dependencies=rule(Permission.RESPOND),
            response_model=StatusChange,
            summary=summary,
            name=f"{path}_ticket",
            responses=_errors(404, 503),
        )(handler)

    ticket_route("close", TicketStatus.CLOSED, "Close a ticket as its team would; its item hears")
    ticket_route("reopen", TicketStatus.OPEN, "Reopen a ticket; its action item reopens too")

    @api.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        problem = _unreadable_body(error)
        if problem is not None:
            return JSONResponse(
                {"detail": f"invalid request: {problem}", "problems": [problem]}, status_code=422
            )
        return JSONResponse(
            {"detail": error.detail}, status_code=error.status_code, headers=error.headers
        )

    return api


def serve(settings: Settings) -> None:
    import uvicorn

    configure_logging(log_format=settings.log_format, level=settings.log_level)
    try:
        app = create_app(settings)
        tokens: ApiTokens = app.state.tokens
        bootstrap_admin_token(settings, tokens)
        check_exposure(settings, tokens)
    except (
        PolicyFileError,
        RoutingError,
        TaxonomyError,
        RoleMapError,
        StoreError,
        CredentialsError,
        SigningKeyError,
    ) as error:
        sys.stderr.write(f"error: {error}\n")
        raise SystemExit(2) from None
    uvicorn.run(
        app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # uvicorn's loggers go through our structlog handler
        access_log=True,
    )
