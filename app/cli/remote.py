"""The CLI through the HTTP API instead of Temporal: with AFTERACTION_API_TOKEN (and
AFTERACTION_API_URL), a laptop needs no Temporal access, and every command is the token's.

`RemoteIncidents` and `RemoteActionItems` answer the same calls the CLI makes of the services
(app.services), and raise the same errors, so the commands do not know which they talk to.
Who acts is never sent: the API takes it from the token.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

from app.services.actions import RetryOutcome
from app.services.commands import CommandPending, Pending
from app.services.incident_filter import IncidentFilter
from app.services.incidents import (
    CommandRejected,
    IncidentNotFound,
    TemporalUnavailable,
)
from domain.action_item import ActionItem, ActionItemRow, ActionItemSpec, ActionItemSummary
from domain.commands import NewIncident
from domain.identity import Actor
from domain.incident import Incident, IncidentStatus, IncidentSummary
from domain.paging import Page
from domain.review import Review
from domain.tickets import Ticket, TicketDetail

T = TypeVar("T")
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# Fields the API fills in from the credential; a body that sent them would be refused.
_ACTOR_FIELDS = {"by", "approver", "declared_by", "actor"}
_INCIDENT_PATHS = {
    "acknowledge": "acknowledge",
    "assign_role": "roles",
    "set_severity": "severity",
    "add_timeline_event": "timeline",
    "mitigate": "mitigate",
    "resolve": "resolve",
    "cancel": "cancel",
    "schedule_review": "review/schedule",
}
_ITEM_PATHS = {"extend_deadline": "extend", "verify": "verify", "accept_risk": "accept"}


class Api:
    """One connection to the API, with the token on every request."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=TIMEOUT,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def call(self, method: str, path: str, answer: type[T] | Any, **kwargs: Any) -> T:
        response = await self._send(method, path, **kwargs)
        result: T = TypeAdapter(answer).validate_python(response.json())
        return result

    async def text(self, path: str, **kwargs: Any) -> str:
        """The text the API answers a GET with (a review file, a Markdown document)."""
        return (await self._send("GET", path, **kwargs)).text

    async def content(self, path: str) -> bytes:
        """The bytes the API answers a GET with (an audit bundle's zip)."""
        return (await self._send("GET", path)).content

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            raise TemporalUnavailable(
                f"cannot reach the API at {self.base_url} ({type(error).__name__}: {error}); "
                "check AFTERACTION_API_URL, or that the API is running"
            ) from None
        if response.status_code >= 400:
            raise self._error(response)
        if response.status_code == 202:
            pending = Pending.model_validate(response.json())
            raise CommandPending(
                pending.detail, command_id=pending.command_id, subject=path.split("/")[3]
            )
        return response

    def _error(self, response: httpx.Response) -> Exception:
        try:
            detail = str(response.json().get("detail", response.text))
        except (ValueError, AttributeError):
            detail = response.text
        code = response.status_code
        if code == 404:
            return IncidentNotFound(detail)
        if code == 401:
            return CommandRejected(f"the API refused the token: {detail}")
        if code >= 500:
            return TemporalUnavailable(f"the API at {self.base_url} answered {code}: {detail}")
        return CommandRejected(detail)


def _body(payload: BaseModel) -> dict[str, Any]:
    data: dict[str, Any] = payload.model_dump(mode="json", exclude=_ACTOR_FIELDS)
    return data


class RemoteIncidents:
    def __init__(self, api: Api) -> None:
        self._api = api

    async def declare(self, request: NewIncident) -> IncidentStatus:
        status: IncidentStatus = await self._api.call(
            "POST", "/api/incidents", IncidentStatus, json=_body(request)
        )
        return status

    async def list(
        self, filters: IncidentFilter | None = None, *, limit: int, cursor: str | None
    ) -> Page[IncidentSummary]:
        given = (filters or IncidentFilter()).model_dump(mode="json", exclude_defaults=True)
        params: dict[str, Any] = {"limit": limit, **given, **_cursor(cursor)}
        page: Page[IncidentSummary] = await self._api.call(
            "GET", "/api/incidents", Page[IncidentSummary], params=params
        )
        return page

    async def missing_worker(self) -> str | None:
        """Not asked through the API: the deployment behind it runs the workers, and a command
        that finds none says so (503)."""
        return None

    async def outcome(self, key: str, update_id: str) -> BaseModel:
        answer: BaseModel = await self._api.call(
            "GET",
            f"/api/incidents/{key}/commands/{update_id}",
            IncidentStatus | ActionItemSummary,
        )
        return answer

    async def get(self, key: str) -> Incident:
        incident: Incident = await self._api.call("GET", f"/api/incidents/{key}", Incident)
        return incident

    async def command(self, key: str, name: str, payload: BaseModel) -> IncidentStatus:
        path = f"/api/incidents/{key}/{_INCIDENT_PATHS[name]}"
        status: IncidentStatus = await self._api.call(
            "POST", path, IncidentStatus, json=_body(payload)
        )
        return status

    async def submit_review(self, key: str, review: Review, *, actor: Actor) -> IncidentStatus:
        status: IncidentStatus = await self._api.call(
            "POST", f"/api/incidents/{key}/review", IncidentStatus, json=_body(review)
        )
        return status

    async def submit_review_file(self, key: str, text: str) -> IncidentStatus:
        """The review file as written: the API reads it under the deployment's policy."""
        status: IncidentStatus = await self._api.call(
            "POST",
            f"/api/incidents/{key}/review",
            IncidentStatus,
            content=text.encode("utf-8"),
            headers={"Content-Type": "application/yaml"},
        )
        return status

    async def add_action_item(
        self, key: str, spec: ActionItemSpec, *, actor: Actor
    ) -> ActionItemSummary:
        summary: ActionItemSummary = await self._api.call(
            "POST", f"/api/incidents/{key}/actions", ActionItemSummary, json=_body(spec)
        )
        return summary

    async def review_template(self, key: str, failure_modes: Sequence[str]) -> str:
        """The review file to fill in, as the API writes it from the deployment's library."""
        return await self._api.text(
            f"/api/incidents/{key}/review/template", params={"failure_mode": [*failure_modes]}
        )

    async def review_markdown(self, key: str) -> str:
        """The accepted review as the API renders it, with the library's names."""
        return await self._api.text(
            f"/api/incidents/{key}/review", headers={"Accept": "text/markdown"}
        )


def _cursor(cursor: str | None) -> dict[str, str]:
    return {"cursor": cursor} if cursor else {}


class RemoteActionItems:
    def __init__(self, api: Api) -> None:
        self._api = api

    async def list(
        self,
        *,
        incident: str | None = None,
        team: str | None = None,
        overdue: bool = False,
        limit: int,
        cursor: str | None,
    ) -> Page[ActionItemRow]:
        params: dict[str, Any] = {"overdue": str(overdue).lower(), "limit": limit}
        if incident is not None:
            params["incident"] = incident
        if team is not None:
            params["team"] = team
        page: Page[ActionItemRow] = await self._api.call(
            "GET", "/api/actions", Page[ActionItemRow], params={**params, **_cursor(cursor)}
        )
        return page

    async def get(self, item_id: str) -> ActionItem:
        item: ActionItem = await self._api.call("GET", f"/api/actions/{item_id}", ActionItem)
        return item

    async def outcome(self, item_id: str, update_id: str) -> ActionItemSummary:
        summary: ActionItemSummary = await self._api.call(
            "GET", f"/api/actions/{item_id}/commands/{update_id}", ActionItemSummary
        )
        return summary

    async def command(self, item_id: str, name: str, payload: BaseModel) -> ActionItemSummary:
        path = f"/api/actions/{item_id}/{_ITEM_PATHS[name]}"
        summary: ActionItemSummary = await self._api.call(
            "POST", path, ActionItemSummary, json=_body(payload)
        )
        return summary

    async def retry_ticket(self, item_id: str) -> RetryOutcome:
        outcome: RetryOutcome = await self._api.call(
            "POST", f"/api/actions/{item_id}/retry-ticket", RetryOutcome, json={}
        )
        return outcome


class RemoteTickets:
    def __init__(self, api: Api) -> None:
        self._api = api

    async def list(self, *, status: str | None = None) -> list[Ticket]:
        params = {"status": status} if status else {}
        rows: list[Ticket] = await self._api.call(
            "GET", "/api/tickets", list[Ticket], params=params
        )
        return rows

    async def detail(self, key: str) -> TicketDetail:
        found: TicketDetail = await self._api.call("GET", f"/api/tickets/{key}", TicketDetail)
        return found

    async def change(self, key: str, action: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self._api.call(
            "POST", f"/api/tickets/{key}/{action}", dict, json={}
        )
        return answer
