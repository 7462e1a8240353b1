"""Tracker webhooks: `POST /webhooks/github` and `POST /webhooks/jira`.

Answers, in the order they are decided:

* 503 when the tracker's secret is not configured (the detail names the variable to set);
* 401 when the signature header is missing, does not start with `sha256=` or does not match;
* 400 when the body is not JSON or not of a shape the tracker sends (the detail says why);
* 200 `{"pong": true}` for GitHub's `ping`, so the hook's page shows the setup works;
* 204 for a delivery no action item acts on (another event or action, a ticket afteraction did
  not create); the `X-Afteraction-Ignored` header says why. A delivery that names only the
  ticket's key (Jira's comment_created) is routed to the open item whose ticket it is, found
  through the AfteractionTicketKey search attribute;
* 202 `{"event", "ticket", "workflow_id"}` for a routed event: the item's ActionItemWorkflow got
  the `ticket_changed` signal, carrying the sender's delivery id (X-GitHub-Delivery,
  X-Atlassian-Webhook-Identifier, or a hash of the body), so a redelivery changes nothing;
* 202 with `"ignored"` (and `workflow_id`) when the ticket names a workflow that does not exist or
  has finished: not the sender's fault, and a 4xx would only mark the delivery failed in GitHub
  and make Jira retry it;
* 503 when Temporal cannot be reached, so the sender records a failed delivery that can be
  redelivered (the reconciler catches it otherwise).

Each delivery counts once in afteraction_webhook_deliveries_total{tracker, result}, result
one of routed, ignored, ping, bad_signature, malformed, not_configured, unavailable, error.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field, SecretStr
from temporalio.service import RPCError, RPCStatusCode

from app.services.incidents import TemporalUnavailable, unavailable_message
from domain import search_attributes as sa
from domain.webhook_events import Tracker
from integrations.webhooks import (
    GITHUB_SIGNATURE,
    JIRA_SIGNATURE,
    BadSignature,
    MalformedPayload,
    TrackerEvent,
    parse,
    verify,
)
from settings import ENV_PREFIX, Settings
from telemetry.logs import get_logger
from telemetry.metrics import WEBHOOK_DELIVERIES

log = get_logger("afteraction.webhooks")
SIGNAL = "ticket_changed"
IGNORED_HEADER = "X-Afteraction-Ignored"

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class Routed(BaseModel):
    event: str
    ticket: str
    workflow_id: str
    ignored: str | None = Field(
        default=None, description="why the workflow was not told (it does not exist or ended)"
    )


_ANSWERS: dict[int | str, dict[str, Any]] = {
    200: {"description": 'GitHub\'s ping: {"pong": true}'},
    202: {"model": Routed, "description": "Routed to the action item's workflow"},
    204: {"description": "Ignored; the X-Afteraction-Ignored header says why"},
    400: {"description": "Not JSON, or not a shape the tracker sends"},
    401: {"description": "Missing or wrong signature"},
    503: {"description": "The secret is not configured, or Temporal is away"},
}


def _secret(settings: Settings, tracker: Tracker) -> str:
    secret: SecretStr | None = getattr(settings, f"{tracker}_webhook_secret")
    if secret is None or not secret.get_secret_value():
        variable = f"{ENV_PREFIX}{tracker.upper()}_WEBHOOK_SECRET"
        raise HTTPException(
            503, f"{tracker} webhooks are not configured: set {variable} to the webhook's secret"
        )
    return secret.get_secret_value()


def _ignored(reason: str) -> Response:
    header = reason.encode("ascii", "replace").decode("ascii")[:500]
    return Response(status_code=204, headers={IGNORED_HEADER: header})


async def _tell(request: Request, event: TrackerEvent, workflow_id: str) -> str | None:
    """Signal the workflow; the reason it was not told, or None when it was."""
    client = await request.app.state.connection.client()
    try:
        await client.get_workflow_handle(workflow_id).signal(SIGNAL, event.signal())
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return f"no running action item {workflow_id}: {error.message}"
        raise _temporal_away(request, error) from None
    return None


async def _item_of_ticket(request: Request, tracker: Tracker, ticket_key: str) -> str | None:
    """The open action item whose ticket this is, from visibility: for deliveries that carry
    no labels or body (Jira's comment_created names only the issue's key and summary)."""
    client = await request.app.state.connection.client()
    query = f"{sa.OPEN_ACTION_ITEMS} AND {sa.TICKET_KEY.name} = {sa.quoted(ticket_key)}"
    try:
        async for execution in client.list_workflows(query, limit=10):
            target = execution.typed_search_attributes.get(sa.TRACKER) or ""
            if target.startswith(f"{tracker}:"):
                return execution.id
    except RPCError as error:
        raise _temporal_away(request, error) from None
    return None


def _temporal_away(request: Request, error: RPCError) -> TemporalUnavailable:
    settings: Settings = request.app.state.settings
    return TemporalUnavailable(
        unavailable_message(settings.effective_temporal_address, error.message)
    )


_FAILED = {400: "malformed", 401: "bad_signature", 503: "not_configured"}


async def _receive(request: Request, tracker: Tracker, header: str) -> Response:
    """Handle a delivery, counting it by its result."""
    result = "error"
    try:
        response, result = await _handle(request, tracker, header)
    except HTTPException as error:
        result = _FAILED.get(error.status_code, "error")
        raise
    except TemporalUnavailable:
        result = "unavailable"
        raise
    finally:
        WEBHOOK_DELIVERIES.labels(tracker, result).inc()
    return response


async def _handle(request: Request, tracker: Tracker, header: str) -> tuple[Response, str]:
    """The answer to a delivery, and its result as the counter names it."""
    secret = _secret(request.app.state.settings, tracker)
    body = await request.body()
    try:
        verify(secret, body, request.headers.get(header), header=header)
    except BadSignature as error:
        log.warning("webhook.refused", tracker=tracker, reason=str(error))
        raise HTTPException(401, str(error)) from None
    headers = {name.lower(): value for name, value in request.headers.items()}
    try:
        parsed = parse(tracker, body, headers)
    except MalformedPayload as error:
        raise HTTPException(400, f"malformed {tracker} delivery: {error}") from None
    if not isinstance(parsed, TrackerEvent):
        if parsed.ping:
            return JSONResponse({"pong": True}, status_code=200), "ping"
        return _ignored(parsed.reason), "ignored"
    workflow_id = parsed.workflow_id or await _item_of_ticket(request, tracker, parsed.ticket_key)
    if workflow_id is None:
        reason = f"{parsed.ticket_key} is not the ticket of an open action item"
        return _ignored(reason), "ignored"
    parsed = parsed.model_copy(update={"workflow_id": workflow_id})
    ignored = await _tell(request, parsed, workflow_id)
    answer = Routed(
        event=parsed.event,
        ticket=parsed.ticket_key,
        workflow_id=parsed.workflow_id,
        ignored=ignored,
    )
    log.info(
        "webhook.routed",
        tracker=tracker,
        ticket_event=parsed.event,
        ticket=parsed.ticket_key,
        workflow_id=parsed.workflow_id,
        delivery_id=parsed.delivery_id,
        ignored=ignored,
    )
    routed = JSONResponse(answer.model_dump(exclude_none=True), status_code=202)
    return routed, "ignored" if ignored else "routed"


@router.post("/github", status_code=202, responses=_ANSWERS)
async def github_webhook(request: Request) -> Response:
    """A GitHub webhook delivery, signed with X-Hub-Signature-256."""
    return await _receive(request, "github", GITHUB_SIGNATURE)


@router.post("/jira", status_code=202, responses=_ANSWERS)
async def jira_webhook(request: Request) -> Response:
    """A Jira admin webhook delivery, signed with X-Hub-Signature."""
    return await _receive(request, "jira", JIRA_SIGNATURE)
