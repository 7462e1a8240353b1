"""The accepted review as Markdown: the executive summary first, then the technical appendix."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest

from app.formats.review_markdown import review_markdown
from domain.action_item import (
    ActionItemSpec,
    ActionItemState,
    ActionItemSummary,
    Priority,
    TicketRef,
)
from domain.functions import ReviewFunction
from domain.incident import Incident, IncidentClock, IncidentState
from domain.policy import ActionKind, default_policy
from domain.review import (
    Answer,
    BlastRadius,
    Decision,
    EvidenceKind,
    EvidenceLink,
    FocusedQuestions,
    NarrativeEntry,
    Participant,
    Review,
    ReviewRecord,
    Rubric,
)
from domain.severity import Severity

STARTED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
ANSWERS = {name: f"Answer to {name.replace('_', ' ')}." for name in FocusedQuestions.model_fields}


def make_review(**changes: object) -> Review:
    review = Review(
        executive_summary="Checkout failed for 95 minutes after deploy 4182.",
        technical_appendix="The deploy halved the connection pool; retries made it worse.",
        timeline=[
            NarrativeEntry(at=STARTED, text="error rate climbs above 5%"),
            NarrativeEntry(at=STARTED + timedelta(minutes=40), text="rolled back deploy 4182"),
        ],
        blast_radius=BlastRadius(
            services=["checkout"], customers="12% of EU checkouts", duration_minutes=95
        ),
        evidence=[
            EvidenceLink(kind=EvidenceKind.METRICS, url="https://grafana.example/d/1"),
            EvidenceLink(
                kind=EvidenceKind.TRACES, url="https://traces.example/t/2", description="a trace"
            ),
        ],
        questions=FocusedQuestions(
            **{name: Answer(answer=text, timebox_minutes=15) for name, text in ANSWERS.items()}
        ),
        rubric=Rubric(severity=4, exposure=3, risk_migration=2),
        facilitator="carol",
        participants=[
            Participant(name="bob", function=ReviewFunction.ENGINEERING),
            Participant(name="ann", function=ReviewFunction.OPERATIONS),
        ],
        decisions=[
            Decision(
                decision="Roll back rather than fix forward",
                rationale="the fix needed an untested schema change",
                owner="alice",
                date=date(2026, 11, 24),
            )
        ],
        action_items=[
            ActionItemSpec(
                title="Alert on checkout errors",
                owning_team="payments",
                kind=ActionKind.SHORT_TERM,
                priority=Priority.P2,
                success_criteria="a replay pages on-call within 5 minutes",
            )
        ],
        missing_function_waiver="product was at the offsite",
    )
    return review.model_copy(update=changes)


def make_incident(
    review: Review | None = None,
    *,
    warnings: list[str] | None = None,
    items: list[ActionItemSummary] | None = None,
) -> Incident:
    record = (
        ReviewRecord(
            review=review,
            submitted_at=STARTED + timedelta(days=2),
            submitted_by="carol",
            warnings=warnings or [],
        )
        if review is not None
        else None
    )
    return Incident(
        key="INC-261124-T1",
        title="Checkout errors",
        severity=Severity.SEV2,
        state=IncidentState.REVIEWED,
        declared_by="alice",
        clock=IncidentClock(
            started_at=STARTED,
            detected_at=STARTED,
            declared_at=STARTED,
            mitigated_at=STARTED + timedelta(minutes=95),
            resolved_at=STARTED + timedelta(hours=3),
        ),
        policy=default_policy(),
        review=record,
        action_items=items or [],
    )


def table_rows(markdown: str, header_start: str) -> list[list[str]]:
    """The rows of the table whose header starts with `header_start`, split on unescaped |."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in _split_cells(line)])
    return rows


def _split_cells(line: str) -> list[str]:
    """Cells of a GFM table row: a pipe after a backslash is part of the cell."""
    cells, current, escaped = [], "", False
    for char in line.strip()[1:-1]:
        if char == "|" and not escaped:
            cells.append(current)
            current = ""
        else:
            current += char
        escaped = char == "\\" and not escaped
    cells.append(current)
    return cells


def test_executive_summary_comes_before_the_technical_appendix() -> None:
    markdown = review_markdown(make_incident(make_review()))
    assert markdown.startswith("# INC-261124-T1: Checkout errors (SEV2)\n")
    summary = markdown.index("## Executive summary")
    appendix = markdown.index("## Technical appendix")
    assert summary < markdown.index("Checkout failed for 95 minutes") < appendix
    assert summary < markdown.index("### Action items") < appendix
    assert appendix < markdown.index("The deploy halved the connection pool")
    assert appendix < markdown.index("### Focused questions")


def test_every_answer_is_there_with_its_timebox() -> None:
    markdown = review_markdown(make_incident(make_review()))
    for text in ANSWERS.values():
        assert text in markdown
    assert "What happened? (15 min)" in markdown
    assert "6 questions, 90 minutes in all" in markdown


def test_impact_rubric_evidence_and_participants() -> None:
    markdown = review_markdown(make_incident(make_review()))
    assert "12% of EU checkouts" in markdown
    assert "**Duration:** 1h 35m" in markdown
    assert "Scored from 1 (least) to 5 (most)" in markdown
    assert ["severity", "4 / 5"] in table_rows(markdown, "| Measure")
    assert "- [a trace](<https://traces.example/t/2>)" in markdown
    assert "- <https://grafana.example/d/1>" in markdown
    assert "because: product was at the offsite" in markdown
    assert "Facilitator: carol" in markdown
    people = table_rows(markdown, "| Function")
    assert ["engineering", "bob"] in people
    assert ["product", "nobody (required by the policy)"] in people


def test_decision_log_and_warnings() -> None:
    warning = "no one from product, which SEV2 requires; waived: product was at the offsite"
    markdown = review_markdown(make_incident(make_review(), warnings=[warning]))
    assert table_rows(markdown, "| Date | Decision") == [
        [
            "2026-11-24",
            "Roll back rather than fix forward",
            "the fix needed an untested schema change",
            "alice",
        ]
    ]
    assert "### Accepted with warnings" in markdown
    assert f"- {warning}" in markdown
    assert markdown.index("## Technical appendix") < markdown.index(warning)


def test_no_warnings_section_without_warnings() -> None:
    assert "Accepted with warnings" not in review_markdown(make_incident(make_review()))


def test_action_items_from_the_review_before_they_are_tracked() -> None:
    rows = table_rows(review_markdown(make_incident(make_review())), "| ID")
    assert rows == [
        [
            "—",
            "Alert on checkout errors",
            "payments",
            "short-term mitigation",
            "P2",
            "policy default",
            "not created yet",
            "—",
        ]
    ]


def test_tracked_action_items_show_their_state_and_ticket() -> None:
    tracked = ActionItemSummary(
        number=1,
        id="INC-261124-T1-1",
        title="Alert on checkout errors",
        owning_team="payments",
        kind=ActionKind.SHORT_TERM,
        state=ActionItemState.OPEN,
        due_at=datetime(2026, 12, 10, 17, 0, tzinfo=UTC),
        ticket=TicketRef(target="local", key="LOCAL-7", url="https://t.example/7"),
    )
    rows = table_rows(review_markdown(make_incident(make_review(), items=[tracked])), "| ID")
    assert rows == [
        [
            "INC-261124-T1-1",
            "Alert on checkout errors",
            "payments",
            "short-term mitigation",
            "P2",
            "2026-12-10",
            "open",
            "[LOCAL-7](<https://t.example/7>)",
        ]
    ]


def test_pipes_and_newlines_do_not_break_tables() -> None:
    spec = ActionItemSpec(
        title="Cap retries | add jitter\nand backoff",
        owning_team="pay|ments",
        kind=ActionKind.LONG_TERM,
        priority=Priority.P3,
        success_criteria="retries stay under 3 per request",
    )
    decision = Decision(
        decision="A | B", rationale="ends in a backslash \\", owner="x", date=date(2026, 11, 25)
    )
    markdown = review_markdown(
        make_incident(make_review(action_items=[spec], decisions=[decision]))
    )
    (row,) = table_rows(markdown, "| ID")
    assert len(row) == 8
    assert row[1] == "Cap retries \\| add jitter and backoff"
    assert row[2] == "pay\\|ments"
    (logged,) = table_rows(markdown, "| Date | Decision")
    assert logged == ["2026-11-25", "A \\| B", "ends in a backslash \\\\", "x"]


def test_no_review_yet_says_how_to_submit_one() -> None:
    with pytest.raises(ValueError, match=r"no review yet.*afteraction review submit INC-261124-T1"):
        review_markdown(make_incident(None))


def test_what_people_typed_cannot_become_html_or_a_script_link() -> None:
    hostile = EvidenceLink.model_construct(
        kind=EvidenceKind.LOGS, url="javascript:alert(2)", description="logs"
    )
    markdown = review_markdown(
        make_incident(
            make_review(
                executive_summary="<script>alert(1)</script> see [the fix](javascript:alert(3))",
                evidence=[hostile, EvidenceLink(kind=EvidenceKind.METRICS, url="https://g/d/1")],
                facilitator="<img src=x onerror=alert(4)>",
            )
        )
    )
    assert "<script>" not in markdown and "<img" not in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown
    assert re.search(r"(?<!\\)\]\(<?javascript:", markdown) is None, "no live javascript: link"
    assert "\\[the fix\\](javascript:alert(3))" in markdown
    assert "- logs (`javascript:alert(2)`)" in markdown
    assert "- <https://g/d/1>" in markdown
