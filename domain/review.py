"""The post-incident review record and its validation.

`check_review` returns every problem at once, each with the dotted path of its field, so a
facilitator fixes a review file in one pass.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from domain.action_item import ActionItemSpec, TeamRoute
from domain.failure_modes import Slug
from domain.functions import ReviewFunction
from domain.identity import ActorField
from domain.limits import (
    NAMES_ITEMS,
    REVIEW_ACTION_ITEMS,
    REVIEW_LIST_ITEMS,
    REVIEW_TIMELINE_ENTRIES,
    Link,
    LongText,
    Moment,
    Name,
    Note,
    SearchName,
    Text,
)
from domain.policy import Policy, SeverityPolicy


class EvidenceKind(StrEnum):
    METRICS = "metrics"
    LOGS = "logs"
    TRACES = "traces"
    TOPOLOGY = "topology"
    OTHER = "other"


class EvidenceLink(BaseModel):
    kind: EvidenceKind
    url: Link
    description: Text | None = None


class BlastRadius(BaseModel):
    services: list[SearchName] = Field(default_factory=list, max_length=NAMES_ITEMS)
    customers: Text = Field(default="", description="who was affected, e.g. '12% of EU checkouts'")
    regions: list[Name] = Field(default_factory=list, max_length=NAMES_ITEMS)
    duration_minutes: int | None = Field(default=None, ge=0)


class Answer(BaseModel):
    """An answer to one focused question, with its timebox in the review's agenda."""

    answer: LongText = ""
    timebox_minutes: int = Field(default=10, ge=1, le=240)


class FocusedQuestions(BaseModel):
    what_happened: Answer = Field(default_factory=Answer)
    why_it_happened: Answer = Field(default_factory=Answer)
    what_could_have_prevented_it: Answer = Field(default_factory=Answer)
    early_warning_signals: Answer = Field(
        default_factory=Answer, description="which signals came early and how they were handled"
    )
    minimum_viable_fix: Answer = Field(default_factory=Answer)
    long_term_improvements: Answer = Field(default_factory=Answer)


class Rubric(BaseModel):
    severity: int | None = None
    exposure: int | None = None
    risk_migration: int | None = None


class Participant(BaseModel):
    name: Name
    function: ReviewFunction


class Decision(BaseModel):
    decision: Text
    rationale: Text
    owner: Name
    date: date


class ContributingFactor(BaseModel):
    """One thing that made the incident happen or worse, tagged with the taxonomy in force."""

    description: Text
    trigger: Name | None = Field(default=None, description="one of the taxonomy's triggers")
    root_cause: Name | None = Field(
        default=None, description="one of the taxonomy's root-cause categories"
    )


class NarrativeEntry(BaseModel):
    at: Moment
    text: Note


class Review(BaseModel):
    executive_summary: LongText = ""
    technical_appendix: LongText = ""
    timeline: list[NarrativeEntry] = Field(default_factory=list, max_length=REVIEW_TIMELINE_ENTRIES)
    blast_radius: BlastRadius = Field(default_factory=BlastRadius)
    evidence: list[EvidenceLink] = Field(default_factory=list, max_length=REVIEW_LIST_ITEMS)
    questions: FocusedQuestions = Field(default_factory=FocusedQuestions)
    rubric: Rubric = Field(default_factory=Rubric)
    facilitator: Name | None = None
    participants: list[Participant] = Field(default_factory=list, max_length=NAMES_ITEMS)
    decisions: list[Decision] = Field(default_factory=list, max_length=REVIEW_LIST_ITEMS)
    failure_modes: list[Slug] = Field(
        default_factory=list,
        max_length=NAMES_ITEMS,
        description="the library's failure modes this incident is an instance of, by slug",
    )
    contributing_factors: list[ContributingFactor] = Field(
        default_factory=list, max_length=REVIEW_LIST_ITEMS
    )
    action_items: list[ActionItemSpec] = Field(default_factory=list, max_length=REVIEW_ACTION_ITEMS)
    missing_function_waiver: Text | None = Field(
        default=None, description="why the review went ahead without a required function"
    )


class ReviewProblem(BaseModel):
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def missing_functions(review: Review, policy: SeverityPolicy) -> list[ReviewFunction]:
    present = {participant.function for participant in review.participants}
    return [f for f in policy.required_review_functions if f not in present]


def check_review(
    review: Review, policy: Policy, severity_policy: SeverityPolicy
) -> list[ReviewProblem]:
    """Everything that keeps the review from being accepted (empty when it can be)."""
    problems: list[ReviewProblem] = []

    def need(path: str, text: str | None, what: str) -> None:
        if not (text or "").strip():
            problems.append(ReviewProblem(path=path, message=f"{what} is required"))

    need("executive_summary", review.executive_summary, "an executive summary")
    need("technical_appendix", review.technical_appendix, "a technical appendix")
    for name in FocusedQuestions.model_fields:
        answer: Answer = getattr(review.questions, name)
        need(f"questions.{name}.answer", answer.answer, "an answer")
    low, high = policy.rubric_scale
    for name in Rubric.model_fields:
        score = getattr(review.rubric, name)
        if score is None:
            problems.append(ReviewProblem(path=f"rubric.{name}", message="a score is required"))
        elif not low <= score <= high:
            problems.append(
                ReviewProblem(path=f"rubric.{name}", message=f"must be from {low} to {high}")
            )
    need("facilitator", review.facilitator, "a facilitator")
    if not review.participants:
        problems.append(ReviewProblem(path="participants", message="list who took part"))
    missing = missing_functions(review, severity_policy)
    if missing and not (review.missing_function_waiver or "").strip():
        names = ", ".join(f.value for f in missing)
        problems.append(
            ReviewProblem(
                path="participants",
                message=f"no one from {names}, which this severity requires; add them, or give "
                "missing_function_waiver with the reason",
            )
        )
    if not review.action_items:
        problems.append(
            ReviewProblem(path="action_items", message="a review needs at least one action item")
        )
    return problems


class ScheduleReview(BaseModel):
    at: Moment
    facilitator: Name | None = None
    participants: list[Participant] = Field(default_factory=list, max_length=NAMES_ITEMS)
    actor: ActorField = None


class ReviewSchedule(BaseModel):
    at: datetime
    facilitator: str | None
    facilitator_proposed: bool = Field(
        default=False, description="true when the rotation chose the facilitator"
    )
    participants: list[Participant] = Field(default_factory=list)
    scheduled_by: ActorField = None


class SubmitReview(BaseModel):
    """The review, with the routes of its items' teams resolved by the submitter."""

    review: Review
    routes: dict[str, TeamRoute]
    by: Name | None = None
    actor: ActorField = None


class ReviewRecord(BaseModel):
    """What the incident keeps: the review as accepted, and the warnings it was accepted with."""

    review: Review
    submitted_at: datetime
    submitted_by: str | None = None
    submitted_by_actor: ActorField = None
    warnings: list[str] = Field(default_factory=list)


class AddActionItem(BaseModel):
    """An item decided after the review, with its team's route resolved by the submitter."""

    spec: ActionItemSpec
    route: TeamRoute
    by: Name | None = None
    actor: ActorField = None
