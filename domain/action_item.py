"""Action items: what a review commits a team to, and the item's life until it is closed."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, field_validator

from domain.escalation import DeadlineKind, EscalationRecord, rungs_left_out
from domain.identity import ActorField
from domain.keys import KEY_EXAMPLE, is_incident_key
from domain.limits import (
    CARRIED_ESCALATIONS,
    CARRIED_EXTENSIONS,
    Key,
    Link,
    Moment,
    Name,
    SearchName,
    Text,
    Title,
    latest,
)
from domain.policy import ActionItemPolicy, ActionKind, Rung
from domain.severity import Severity

PROVING_INCIDENTS = 20  # the later incidents an item remembers having proved it necessary


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


def _required_text(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty")
    return value.strip()


class ActionItemSpec(BaseModel):
    """One independent, testable, assignable piece of work that a review decides on."""

    title: Title
    owning_team: SearchName
    assignee: Name | None = None
    kind: ActionKind
    priority: Priority
    due_at: Moment | None = Field(
        default=None, description="when it is due; default from the policy by kind and severity"
    )
    success_criteria: Text = Field(description="how anyone can tell it worked, measurably")
    slo_link: Link | None = None

    _check_text = field_validator("title", "owning_team", "success_criteria")(_required_text)

    @field_validator("due_at")
    @classmethod
    def _zoned(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-12-15T17:00:00Z")
        return value


class ActionItemState(StrEnum):
    CREATING = "creating"  # the ticket is being created
    OPEN = "open"
    VERIFYING = "verifying"  # the ticket is closed; the success criteria await confirmation
    DONE = "done"
    ACCEPTED = "accepted"  # won't do: the risk was accepted, with a rationale and an approver

    @property
    def is_final(self) -> bool:
        return self in (ActionItemState.DONE, ActionItemState.ACCEPTED)


class TeamRoute(BaseModel):
    """Where a team's tickets go and who hears about them at each rung."""

    team: str
    target: str = Field(description="local, github:owner/repo or jira:PROJECT")
    assignee: str | None = None
    contacts: dict[Rung, list[str]] = Field(default_factory=dict)
    components: list[str] = Field(
        default_factory=list, description="Jira components of the team's tickets"
    )
    issue_type: str | None = Field(
        default=None, description="Jira issue type of the team's tickets (default: the project's)"
    )


class TicketRef(BaseModel):
    target: str
    key: str
    url: str | None = None


class Extension(BaseModel):
    at: datetime
    previous_due_at: datetime
    due_at: datetime
    reason: str
    by: str | None = None
    actor: ActorField = None


class Verification(BaseModel):
    at: datetime
    by: str
    evidence: str
    actor: ActorField = None


class RiskAcceptance(BaseModel):
    at: datetime
    rationale: str
    approver: str
    actor: ActorField = Field(default=None, description="the approver, as their credential proved")


class TicketAttempts(BaseModel):
    """Why an item has no ticket yet: Temporal's record of the create that keeps failing."""

    attempts: int = Field(description="tries so far")
    last_error: str | None = Field(default=None, description="what the last try met")
    next_attempt_at: datetime | None = Field(default=None, description="when it tries again")


class ActionItem(BaseModel):
    """The state ActionItemWorkflow keeps and its queries answer."""

    id: str = Field(description="KEY-N, e.g. INC-261127-7KQ2-1")
    incident_key: str
    number: int
    severity: Severity
    spec: ActionItemSpec
    due_at: datetime
    route: TeamRoute
    policy: ActionItemPolicy
    state: ActionItemState = ActionItemState.CREATING
    ticket: TicketRef | None = None
    created_at: datetime
    last_activity_at: datetime
    ticket_status_at: datetime | None = Field(
        default=None,
        description="the tracker's time of the last ticket status applied: an older one is late "
        "or replayed, and is ignored",
    )
    escalations: list[EscalationRecord] = Field(default_factory=list)
    reminders_sent: list[datetime] = Field(default_factory=list)
    extensions: list[Extension] = Field(default_factory=list)
    verification: Verification | None = None
    acceptance: RiskAcceptance | None = None
    closed_at: datetime | None = None
    closed_by: ActorField = Field(
        default=None, description="who closed the ticket, where the tracker said"
    )
    ticket_error: str | None = Field(
        default=None, description="why the ticket could not be created yet, if it could not"
    )
    seen_deliveries: list[str] = Field(
        default_factory=list, description="recent tracker deliveries, so a repeat is ignored"
    )
    reports_sent: int = Field(
        default=0,
        description="how many reports the incident has been sent, over every run of the item; "
        "the next one carries this number plus one",
    )
    earlier_escalations: int = Field(
        default=0,
        description="escalations before the first one listed, kept in the earlier runs' history",
    )
    earlier_extensions: int = Field(
        default=0,
        description="extensions before the first one listed, kept in the earlier runs' history",
    )
    earlier_escalation_rungs: dict[Rung, int] = Field(
        default_factory=dict,
        description="the earlier escalations counted by rung (from runs that carried over "
        "before this was kept, only those since)",
    )
    first_due_at: datetime | None = Field(
        default=None,
        description="the due date the item started with; None in items started before it was kept",
    )
    reopened: int = Field(default=0, description="times its ticket reopened while verifying")
    proven_by: list[Key] = Field(
        default_factory=list,
        max_length=PROVING_INCIDENTS,
        description="the later incidents that repeated the failure this item is to prevent",
    )
    facts_written: int = Field(
        default=0, description="how many times the item's facts went to the read model"
    )

    @property
    def escalation_count(self) -> int:
        return self.earlier_escalations + len(self.escalations)

    def carried(self) -> ActionItem:
        """The item as a run hands it to the next: its latest escalations and extensions only
        (the history keeps the rest; the next reminder needs only the last extension)."""
        escalations, earlier_escalations = latest(
            self.escalations, count=CARRIED_ESCALATIONS, earlier=self.earlier_escalations
        )
        extensions, earlier_extensions = latest(
            self.extensions, count=CARRIED_EXTENSIONS, earlier=self.earlier_extensions
        )
        return self.model_copy(
            update={
                "escalations": escalations,
                "extensions": extensions,
                "earlier_escalations": earlier_escalations,
                "earlier_extensions": earlier_extensions,
                "earlier_escalation_rungs": rungs_left_out(
                    self.earlier_escalation_rungs, self.escalations, kept=len(escalations)
                ),
            }
        )

    ticket_attempts: TicketAttempts | None = Field(
        default=None,
        description="while its ticket is being created and the tracker fails: the tries so far, "
        "the last error and the next try (filled in by the service from Temporal, never by the "
        "workflow)",
    )


class MissedStep(BaseModel):
    """A deadline of the item that passed unmet, and how many ladder steps were notified."""

    due_at: datetime
    steps_taken: int = 0


class ActionItemCarriedOver(BaseModel):
    item: ActionItem
    missed: dict[DeadlineKind, MissedStep] = Field(default_factory=dict)


class StartActionItem(BaseModel):
    """ActionItemWorkflow's input; `carried_over` is set when a run continues as new."""

    incident_key: str
    incident_title: str
    number: int
    severity: Severity
    spec: ActionItemSpec
    due_at: datetime
    route: TeamRoute
    policy: ActionItemPolicy
    history_limit: int = Field(default=10_000, ge=20)
    record_facts: bool = Field(
        default=True, description="whether the item writes its facts to the insights read model"
    )
    carried_over: ActionItemCarriedOver | None = None


def action_item_id(incident_key: str, number: int) -> str:
    return f"{incident_key}-{number}"


def action_workflow_id(incident_key: str, number: int) -> str:
    return f"incident/{incident_key}/action/{number}"


def item_id_of_workflow(workflow_id: str) -> str | None:
    """KEY-N for an action item's workflow id (incident/KEY/action/N), else None."""
    parts = workflow_id.split("/")
    if len(parts) == 4 and parts[0] == "incident" and parts[2] == "action" and parts[3].isdigit():
        return action_item_id(parts[1], int(parts[3]))
    return None


def parse_action_item_id(item_id: str) -> tuple[str, int]:
    """'INC-261127-7KQ2-3' -> ('INC-261127-7KQ2', 3); ValueError names the expected form."""
    key, _, number = item_id.rpartition("-")
    # An item's number is at most INCIDENT_ACTION_ITEMS: a few digits, never a huge integer.
    if not is_incident_key(key) or not re.fullmatch(r"[1-9][0-9]{0,5}", number):
        raise ValueError(
            f"{item_id[:60]!r} is not an action item id; expected KEY-N, e.g. {KEY_EXAMPLE}-2"
        )
    return key, int(number)


class TicketStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class TicketChanged(BaseModel):
    """Signal to ActionItemWorkflow: its ticket changed in the tracker (webhook, reconciler or
    the local tracker's CLI all send this one shape)."""

    ticket_key: Key
    event: Name = Field(description="what happened, e.g. closed, reopened, commented, edited")
    status: TicketStatus | None = Field(default=None, description="the status after the event")
    at: datetime
    source: Name = Field(description="webhook:github, webhook:jira, reconciler or local")
    delivery_id: Key | None = Field(
        default=None, description="the sender's id of this delivery, so duplicates change nothing"
    )
    activity: bool = Field(
        default=True,
        description="whether it shows someone working on the item: false for what afteraction "
        "itself wrote (its reminder and escalation comments, its labels), which must not reset "
        "the stall clock",
    )
    actor: ActorField = Field(
        default=None, description="the tracker's user who made the change, where it says"
    )


class ExtendDeadline(BaseModel):
    due_at: Moment
    reason: Text
    by: Name | None = None
    actor: ActorField = None

    _check_reason = field_validator("reason")(_required_text)


class VerifyItem(BaseModel):
    evidence: Text = Field(description="a link or a sentence showing the success criteria hold")
    by: Name
    actor: ActorField = None

    _check_text = field_validator("evidence", "by")(_required_text)


class AcceptRisk(BaseModel):
    rationale: Text
    approver: Name
    actor: ActorField = None

    _check_text = field_validator("rationale", "approver")(_required_text)


class ActionItemSummary(BaseModel):
    """An action item as its incident tracks it."""

    number: int
    id: str
    title: str
    owning_team: str
    kind: ActionKind
    state: ActionItemState
    due_at: datetime
    ticket: TicketRef | None = None
    sequence: int = Field(
        default=0,
        description="the item's number for this report (1, 2, ...), so its incident applies "
        "only a newer one; 0 before the first report, and in reports from before they were "
        "numbered",
    )

    @classmethod
    def of(cls, item: ActionItem) -> ActionItemSummary:
        return cls(
            number=item.number,
            id=item.id,
            title=item.spec.title,
            owning_team=item.spec.owning_team,
            kind=item.spec.kind,
            state=item.state,
            due_at=item.due_at,
            ticket=item.ticket,
        )

    def supersedes(self, held: ActionItemSummary) -> bool:
        """Whether this report should replace the one the incident `held` for the item.

        Reports travel as separate signals, so they may arrive out of order: only a newer one
        counts, and none takes an item back out of done or accepted (the item never leaves
        them, so such a report can only be a stale one).
        """
        if held.state.is_final and not self.state.is_final:
            return False
        if self.sequence == 0:
            # Sent by an item run from before reports were numbered: any numbered one is later.
            return held.sequence == 0
        return self.sequence > held.sequence


class ActionItemRow(BaseModel):
    """A row of `actions list`: what visibility knows of an item without asking its workflow."""

    id: str
    incident_key: str
    title: str
    owning_team: str
    severity: Severity
    state: ActionItemState
    due_at: datetime
    overdue: bool
    escalation_count: int = 0
