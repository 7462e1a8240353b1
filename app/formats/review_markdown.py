"""An accepted review as a Markdown document: the executive summary first, for everyone; then
the technical appendix, for engineers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime

from app.formats.markdown_text import NONE, Markdown, inline, safe, table, when
from app.formats.review_files import question_text
from domain.action_item import ActionItemSpec, ActionItemSummary
from domain.functions import ReviewFunction
from domain.incident import Incident
from domain.policy import ActionKind
from domain.review import (
    EvidenceKind,
    FocusedQuestions,
    Review,
    ReviewRecord,
    Rubric,
    missing_functions,
)

_LINKABLE = re.compile(r"^https?://[^\s]+$", re.IGNORECASE)
_KIND = {ActionKind.SHORT_TERM: "short-term mitigation", ActionKind.LONG_TERM: "long-term systemic"}


def _day(moment: datetime | date | None) -> str:
    if moment is None:
        return NONE
    if isinstance(moment, datetime):
        moment = moment.astimezone(UTC) if moment.tzinfo else moment
        return moment.strftime("%Y-%m-%d")
    return moment.isoformat()


def _text(text: str, missing: str = "_Not written._") -> str:
    return safe(text.strip()) or missing


def _minutes(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest}m"
    return f"{hours}h {rest}m" if rest else f"{hours}h"


def _duration(incident: Incident, review: Review) -> str:
    minutes = review.blast_radius.duration_minutes
    if minutes is None:
        clock = incident.clock
        end = clock.mitigated_at or clock.resolved_at
        if end is None:
            return "not recorded"
        minutes = max(0, round((end - clock.started_at).total_seconds() / 60))
    return _minutes(minutes)


def _title(incident: Incident, record: ReviewRecord) -> str:
    by = f" by {inline(record.submitted_by)}" if record.submitted_by else ""
    return (
        f"# {incident.key}: {inline(incident.title)} ({incident.severity.value})\n\n"
        f"Post-incident review, submitted {when(record.submitted_at)}{by}."
    )


def _impact(incident: Incident, review: Review) -> str:
    radius = review.blast_radius
    return "\n".join(
        [
            "### Impact",
            "",
            f"- **Customers:** {inline(radius.customers) or 'not recorded'}",
            f"- **Services:** {', '.join(radius.services) or 'not recorded'}",
            f"- **Regions:** {', '.join(radius.regions) or 'not recorded'}",
            f"- **Duration:** {_duration(incident, review)}",
        ]
    )


def _key_decisions(review: Review) -> str:
    if not review.decisions:
        return "### Key decisions\n\nNo decisions recorded."
    items = [
        f"- {inline(d.decision)} ({inline(d.owner)}, {_day(d.date)})" for d in review.decisions
    ]
    return "### Key decisions\n\n" + "\n".join(items)


_ITEM_HEADERS = ("ID", "Title", "Team", "Kind", "Priority", "Due", "State", "Ticket")


def _priority(item: ActionItemSummary, specs: list[ActionItemSpec]) -> str | None:
    # The summary does not carry the priority: find the spec the item was created from.
    for spec in specs:
        if spec.title == item.title and spec.owning_team == item.owning_team:
            return spec.priority.value
    return None


def _ticket(item: ActionItemSummary) -> str | None:
    if item.ticket is None:
        return None
    if item.ticket.url:
        return Markdown(_link(item.ticket.key, item.ticket.url))
    return inline(item.ticket.key)


def _tracked_rows(
    items: list[ActionItemSummary], specs: list[ActionItemSpec]
) -> list[list[str | None]]:
    return [
        [
            item.id,
            item.title,
            item.owning_team,
            _KIND[item.kind],
            _priority(item, specs),
            _day(item.due_at),
            item.state.value,
            _ticket(item),
        ]
        for item in items
    ]


def _spec_rows(specs: list[ActionItemSpec]) -> list[list[str | None]]:
    return [
        [
            None,
            spec.title,
            spec.owning_team,
            _KIND[spec.kind],
            spec.priority.value,
            _day(spec.due_at) if spec.due_at else "policy default",
            "not created yet",
            None,
        ]
        for spec in specs
    ]


def _action_items(incident: Incident, review: Review) -> str:
    if incident.action_items:
        rows = _tracked_rows(incident.action_items, review.action_items)
    elif review.action_items:
        rows = _spec_rows(review.action_items)
    else:
        return "### Action items\n\nNo action items."
    return "### Action items\n\n" + table(_ITEM_HEADERS, rows)


def _executive_summary(incident: Incident, review: Review) -> str:
    return "\n\n".join(
        [
            "## Executive summary",
            _text(review.executive_summary),
            _impact(incident, review),
            _key_decisions(review),
            _action_items(incident, review),
        ]
    )


def _timeline(review: Review) -> str:
    if not review.timeline:
        return "### Timeline\n\nNo timeline recorded."
    entries = [f"- **{when(e.at)}** {inline(e.text)}" for e in review.timeline]
    return "### Timeline\n\n" + "\n".join(entries)


def _questions(review: Review) -> str:
    answers = [(name, getattr(review.questions, name)) for name in FocusedQuestions.model_fields]
    total = sum(answer.timebox_minutes for _, answer in answers)
    parts = [f"### Focused questions\n\nAgenda: {len(answers)} questions, {total} minutes in all."]
    for number, (name, answer) in enumerate(answers, start=1):
        heading = f"#### {number}. {question_text(name)} ({answer.timebox_minutes} min)"
        parts.append(f"{heading}\n\n{_text(answer.answer, '_No answer._')}")
    return "\n\n".join(parts)


def _rubric(incident: Incident, review: Review) -> str:
    low, high = incident.policy.rubric_scale
    rows = []
    for name in Rubric.model_fields:
        score = getattr(review.rubric, name)
        rows.append([name.replace("_", " "), NONE if score is None else f"{score} / {high}"])
    return f"### Rubric\n\nScored from {low} (least) to {high} (most).\n\n" + table(
        ("Measure", "Score"), rows
    )


def _link(text: str | None, url: str) -> str:
    label = inline(text or "")
    if not _LINKABLE.match(url):
        # Shown, never followed: javascript:, data: and the like are not links here.
        shown = inline(url).replace("`", "'")
        return f"{label} (`{shown}`)" if label else f"`{shown}`"
    target = "%20".join(url.split()).replace("<", "%3C").replace(">", "%3E")
    return f"[{label}](<{target}>)" if label else f"<{target}>"


def _evidence(review: Review) -> str:
    if not review.evidence:
        return "### Evidence\n\nNo evidence linked."
    parts = ["### Evidence"]
    for kind in EvidenceKind:
        links = [e for e in review.evidence if e.kind == kind]
        if links:
            items = "\n".join(f"- {_link(e.description, e.url)}" for e in links)
            parts.append(f"**{kind.value.capitalize()}**\n\n{items}")
    return "\n\n".join(parts)


def _participants(incident: Incident, review: Review) -> str:
    required = incident.policy.for_severity(incident.severity).required_review_functions
    missing = set(missing_functions(review, incident.policy.for_severity(incident.severity)))
    rows = []
    for function in ReviewFunction:
        names = [p.name for p in review.participants if p.function == function]
        if names:
            rows.append([function.value, ", ".join(names)])
        elif function in missing:
            rows.append([function.value, "nobody (required by the policy)"])
    facilitator = inline(review.facilitator or "") or "not recorded"
    needed = ", ".join(f.value for f in required) or "none"
    waiver = inline(review.missing_function_waiver or "")
    waived = f" Went ahead without a required function because: {waiver}" if waiver else ""
    return (
        f"### Participants\n\nFacilitator: {facilitator}. "
        f"Functions {incident.severity.value} requires: {needed}.{waived}\n\n"
        + table(("Function", "People"), rows)
    )


def _decision_log(review: Review) -> str:
    if not review.decisions:
        return "### Decision log\n\nNo decisions recorded."
    rows = [[_day(d.date), d.decision, d.rationale, d.owner] for d in review.decisions]
    return "### Decision log\n\n" + table(("Date", "Decision", "Rationale", "Owner"), rows)


def _failure_modes(review: Review, names: Mapping[str, str]) -> str:
    if review.failure_modes:
        modes = "\n".join(
            f"- {inline(names[slug])} (`{slug}`)" if slug in names else f"- `{slug}`"
            for slug in review.failure_modes
        )
    else:
        modes = "No failure mode of the library named."
    if review.contributing_factors:
        rows = [[f.description, f.trigger, f.root_cause] for f in review.contributing_factors]
        factors = table(("Factor", "Trigger", "Root cause"), rows)
    else:
        factors = "No contributing factors named."
    return f"### Failure modes\n\n{modes}\n\n### Contributing factors\n\n{factors}"


def _warnings(record: ReviewRecord) -> str | None:
    if not record.warnings:
        return None
    items = "\n".join(f"- {inline(warning)}" for warning in record.warnings)
    return f"### Accepted with warnings\n\n{items}"


def _technical_appendix(incident: Incident, record: ReviewRecord, names: Mapping[str, str]) -> str:
    review = record.review
    parts = [
        "## Technical appendix",
        _text(review.technical_appendix),
        _failure_modes(review, names),
        _timeline(review),
        _questions(review),
        _rubric(incident, review),
        _evidence(review),
        _participants(incident, review),
        _decision_log(review),
        _warnings(record),
    ]
    return "\n\n".join(part for part in parts if part is not None)


def review_markdown(incident: Incident, names: Mapping[str, str] | None = None) -> str:
    """The incident's accepted review as Markdown; ValueError when it has none yet.

    Args:
        names: the library's names of failure modes, by slug; a slug without one is shown
            alone.
    """
    record = incident.review
    if record is None:
        raise ValueError(
            f"{incident.key} has no review yet; submit one with "
            f"`afteraction review submit {incident.key} FILE`"
        )
    sections = [
        _title(incident, record),
        _executive_summary(incident, record.review),
        _technical_appendix(incident, record, names or {}),
    ]
    return "\n\n".join(sections) + "\n"
