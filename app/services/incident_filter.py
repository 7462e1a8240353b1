"""Which incidents a list shows, as the CLI's options and the API's query parameters name them,
and the visibility query that finds them (lists are visibility queries on the search
attributes of domain/search_attributes.py, so they are eventually consistent)."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, Field

from domain import search_attributes as sa
from domain.incident import IncidentState
from domain.limits import Moment, SearchName
from domain.severity import Severity

ACTIVE_STATES = tuple(state for state in IncidentState if state.is_active)


def _time(moment: datetime) -> str:
    return sa.quoted(moment.astimezone(UTC).isoformat().replace("+00:00", "Z"))


class IncidentFilter(BaseModel):
    """Every field given narrows the list; an incident is listed when it matches them all."""

    state: IncidentState | None = Field(default=None, description="only this state")
    active: bool = Field(
        default=False,
        description="only incidents still being responded to: "
        + ", ".join(state.value for state in ACTIVE_STATES),
    )
    severity: Severity | None = Field(default=None, description="only this severity")
    service: SearchName | None = Field(default=None, description="only those naming this service")
    team: SearchName | None = Field(default=None, description="only those naming this team")
    since: Moment | None = Field(default=None, description="only those declared at or after this")
    until: Moment | None = Field(default=None, description="only those declared before this")

    def query(self) -> str:
        """The visibility query that lists the matching incidents."""
        # A run that continued as new keeps its search attributes: only the latest run counts.
        clauses = ["WorkflowType = 'IncidentWorkflow'", "ExecutionStatus != 'ContinuedAsNew'"]
        if self.state is not None:
            clauses.append(f"{sa.STATE.name} = {sa.quoted(self.state.value)}")
        if self.active:
            states = ", ".join(sa.quoted(state.value) for state in ACTIVE_STATES)
            clauses.append(f"{sa.STATE.name} IN ({states})")
        if self.severity is not None:
            clauses.append(f"{sa.SEVERITY.name} = {sa.quoted(self.severity.value)}")
        if self.service is not None:
            clauses.append(f"{sa.SERVICES.name} = {sa.quoted(self.service)}")
        if self.team is not None:
            clauses.append(f"{sa.TEAMS.name} = {sa.quoted(self.team)}")
        if self.since is not None:
            clauses.append(f"{sa.DECLARED_AT.name} >= {_time(self.since)}")
        if self.until is not None:
            clauses.append(f"{sa.DECLARED_AT.name} < {_time(self.until)}")
        return " AND ".join(clauses)
