"""The review file: the template a facilitator fills in, and the parser that reads it back."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app.formats.review_files import (
    ReviewFileError,
    dump_yaml,
    parse_review,
    review_template,
    review_text,
)
from domain.escalation import DeadlineKind, EscalationRecord
from domain.failure_modes import DEFAULT_TAXONOMY
from domain.functions import ReviewFunction
from domain.incident import Incident, IncidentClock, IncidentState, TimelineEvent, TimelineKind
from domain.limits import (
    LONG_TEXT_CHARS,
    REVIEW_ACTION_ITEMS,
    REVIEW_FILE_BYTES,
    REVIEW_TIMELINE_ENTRIES,
)
from domain.policy import ActionKind, Rung, default_policy
from domain.review import FocusedQuestions, Participant, ReviewSchedule, Rubric, check_review
from domain.severity import Severity


def template_of(incident: Incident) -> str:
    return review_template(incident, taxonomy=DEFAULT_TAXONOMY)


STARTED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
SOURCE = "review.yaml"


def make_incident(
    *,
    severity: Severity = Severity.SEV2,
    title: str = "Checkout errors",
    timeline: list[TimelineEvent] | None = None,
    schedule: ReviewSchedule | None = None,
    escalations: list[EscalationRecord] | None = None,
) -> Incident:
    return Incident(
        key="INC-261124-T1",
        title=title,
        severity=severity,
        state=IncidentState.RESOLVED,
        services=["checkout", "payments"],
        declared_by="alice",
        clock=IncidentClock(
            started_at=STARTED,
            detected_at=STARTED + timedelta(minutes=5),
            declared_at=STARTED + timedelta(minutes=10),
            mitigated_at=STARTED + timedelta(minutes=95),
            resolved_at=STARTED + timedelta(hours=3),
        ),
        timeline=timeline
        if timeline is not None
        else [
            TimelineEvent(at=STARTED, kind=TimelineKind.DECLARED, text="declared"),
            TimelineEvent(
                at=STARTED + timedelta(minutes=30),
                kind=TimelineKind.ESCALATED,
                text="acknowledge missed; escalated to team lead: sre-team-lead",
            ),
            TimelineEvent(
                at=STARTED + timedelta(minutes=40),
                kind=TimelineKind.NOTE,
                text="rolled back: deploy 4182",
                author="bob",
            ),
        ],
        escalations=escalations or [],
        policy=default_policy(),
        review_schedule=schedule,
    )


ACTION_ITEM: dict[str, Any] = {
    "title": "Alert on checkout error rate",
    "owning_team": "payments",
    "kind": "short_term_mitigation",
    "priority": "P2",
    "success_criteria": "a replay pages on-call within 5 minutes",
}


def fill(data: dict[str, Any], *, severity: Severity = Severity.SEV2) -> dict[str, Any]:
    """Fill every field the policy requires into a loaded template."""
    data["executive_summary"] = "Checkout failed for 95 minutes after a bad deploy."
    data["technical_appendix"] = "Deploy 4182 exhausted the connection pool."
    for name in FocusedQuestions.model_fields:
        data["questions"][name]["answer"] = f"the answer to {name}"
    for name in Rubric.model_fields:
        data["rubric"][name] = 3
    data["facilitator"] = "carol"
    required = default_policy().for_severity(severity).required_review_functions
    data["participants"] = [{"name": f"p-{f.value}", "function": f.value} for f in required]
    data["action_items"] = [dict(ACTION_ITEM)]
    return data


def filled_text(**changes: Any) -> str:
    data = fill(yaml.safe_load(template_of(make_incident())))
    data.update(changes)
    return yaml.safe_dump(data, sort_keys=False)


def problems_of(text: str, *, checked: bool = True) -> list[str]:
    policy = default_policy() if checked else None
    severity = Severity.SEV2 if checked else None
    with pytest.raises(ReviewFileError) as caught:
        parse_review(text, source=SOURCE, policy=policy, severity=severity)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return caught.value.problems


def paths(problems: list[str]) -> list[str]:
    """The dotted path of each problem: `<source>: <path>: <message>`."""
    return [problem.split(": ", 2)[1] for problem in problems]


# ---- the template -------------------------------------------------------------------------


def test_template_loads_and_parses_without_the_policy() -> None:
    review = parse_review(template_of(make_incident()), source=SOURCE)
    assert review.blast_radius.services == ["checkout", "payments"]
    assert review.blast_radius.duration_minutes == 95
    assert [entry.text for entry in review.timeline] == [
        "declared",
        "acknowledge missed; escalated to team lead: sre-team-lead",
        "rolled back: deploy 4182",
    ]
    assert review.facilitator is None
    assert review.participants == []
    assert review.action_items == []
    assert review.missing_function_waiver is None


def test_template_fails_the_policy_only_on_the_fields_left_to_fill() -> None:
    problems = problems_of(template_of(make_incident()))
    assert set(paths(problems)) == {
        "executive_summary",
        "technical_appendix",
        *(f"questions.{name}.answer" for name in FocusedQuestions.model_fields),
        *(f"rubric.{name}" for name in Rubric.model_fields),
        "facilitator",
        "participants",
        "action_items",
    }
    assert all(problem.startswith(f"{SOURCE}: ") for problem in problems)


def test_filled_template_round_trip_passes_check_review() -> None:
    incident = make_incident()
    data = fill(yaml.safe_load(template_of(incident)))
    review = parse_review(
        yaml.safe_dump(data), source=SOURCE, policy=incident.policy, severity=incident.severity
    )
    severity_policy = incident.policy.for_severity(incident.severity)
    assert check_review(review, incident.policy, severity_policy) == []
    assert review.action_items[0].kind is ActionKind.SHORT_TERM
    assert review.questions.what_happened.answer == "the answer to what_happened"


def comments(text: str) -> str:
    """The template's comments as one line of prose (they are wrapped)."""
    lines = [line.strip().removeprefix("#").strip() for line in text.splitlines()]
    return " ".join(line for line in lines if line)


def test_template_comments_give_the_scale_the_functions_and_the_defaults() -> None:
    text = template_of(make_incident(severity=Severity.SEV1))
    prose = comments(text)
    assert "score each from 1 (least) to 5 (most)" in prose
    assert "SEV1 requires: engineering, operations, product, security, support." in prose
    assert "7d for short_term_mitigation, 30d for long_term_systemic after the review" in prose
    assert max(len(line) for line in text.splitlines()) <= 100
    for kind in ("metrics", "logs", "traces", "topology"):
        assert f"# - kind: {kind}" in text
    for field in ("title", "owning_team", "assignee", "kind", "priority", "due_at"):
        assert f"#   {field}: " in text or f"# - {field}: " in text
    assert "success_criteria: " in text
    assert "slo_link: " in text


def test_template_questions_have_empty_answers_and_default_timeboxes() -> None:
    data = yaml.safe_load(template_of(make_incident()))
    assert set(data["questions"]) == set(FocusedQuestions.model_fields)
    for answer in data["questions"].values():
        assert answer == {"answer": "", "timebox_minutes": 10}
    assert data["rubric"] == dict.fromkeys(Rubric.model_fields)


def test_template_takes_facilitator_and_participants_from_the_schedule() -> None:
    schedule = ReviewSchedule(
        at=STARTED + timedelta(days=2),
        facilitator="dana",
        facilitator_proposed=True,
        participants=[Participant(name="erin", function=ReviewFunction.PRODUCT)],
    )
    text = template_of(make_incident(schedule=schedule))
    data = yaml.safe_load(text)
    assert data["facilitator"] == "dana"
    assert data["participants"] == [{"name": "erin", "function": "product"}]
    assert "proposed by the rotation" in text


def test_template_includes_escalations_missing_from_the_timeline() -> None:
    record = EscalationRecord(
        at=STARTED + timedelta(minutes=20),
        deadline=DeadlineKind.ACKNOWLEDGE,
        due_at=STARTED + timedelta(minutes=15),
        rung=Rung.TEAM_LEAD,
        notified=["sre-team-lead"],
        reason="not acknowledged within 15m",
    )
    incident = make_incident(escalations=[record])
    timeline = yaml.safe_load(template_of(incident))["timeline"]
    assert timeline[1] == {
        "at": record.at,
        "text": "not acknowledged within 15m; escalated to team lead",
    }
    assert [entry["at"] for entry in timeline] == sorted(entry["at"] for entry in timeline)


def test_template_leaves_out_review_bookkeeping() -> None:
    events = [
        TimelineEvent(at=STARTED, kind=TimelineKind.NOTE, text="rolled back"),
        TimelineEvent(
            at=STARTED + timedelta(hours=4),
            kind=TimelineKind("review_scheduled"),
            text="review scheduled",
        ),
    ]
    timeline = yaml.safe_load(template_of(make_incident(timeline=events)))["timeline"]
    assert [entry["text"] for entry in timeline] == ["rolled back"]


def _uncomment_example(text: str, key: str) -> str:
    """What a facilitator does with a commented example: drop the [] and uncomment it."""
    lines = text.splitlines()
    start = lines.index(f"{key}: []")
    lines[start] = f"{key}:"
    index = start + 1
    while index < len(lines) and lines[index].startswith("#"):
        if lines[index].startswith(("# - ", "#   ")):
            lines[index] = lines[index][2:]
        index += 1
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    "key", ["evidence", "participants", "decisions", "contributing_factors", "action_items"]
)
def test_commented_examples_are_valid_once_uncommented(key: str) -> None:
    text = _uncomment_example(template_of(make_incident()), key)
    review = parse_review(text, source=SOURCE)
    assert len(getattr(review, key)) >= 1


# ---- the parser ---------------------------------------------------------------------------


def test_every_missing_action_item_field_is_reported_at_once() -> None:
    items = [dict(ACTION_ITEM), {"title": "Add a pool limit", "kind": "long_term_systemic"}]
    problems = problems_of(filled_text(executive_summary="", action_items=items))
    assert sorted(paths(problems)) == [
        "action_items.1.owning_team",
        "action_items.1.priority",
        "action_items.1.success_criteria",
        "executive_summary",
    ]
    criteria = next(p for p in problems if "success_criteria" in p)
    assert "Field required" in criteria
    assert "measurably" in criteria


def test_an_empty_required_text_is_reported() -> None:
    items = [{**ACTION_ITEM, "success_criteria": "  "}, {**ACTION_ITEM, "title": None}]
    problems = problems_of(filled_text(action_items=items))
    assert f"{SOURCE}: action_items.0.success_criteria: must not be empty" in "\n".join(problems)
    assert f"{SOURCE}: action_items.1.title: must not be empty" in "\n".join(problems)
    # The items are there, only invalid: no "needs at least one action item" on top.
    assert len(problems) == 2


def test_problems_name_their_line() -> None:
    text = filled_text(action_items=[{**ACTION_ITEM, "priority": "P9"}])
    (problem,) = problems_of(text)
    line = int(re.search(r"\(line (\d+)\)$", problem).group(1))  # type: ignore[union-attr]
    assert text.splitlines()[line - 1].strip() == "priority: P9"
    assert problem.startswith(f"{SOURCE}: action_items.0.priority: Input should be")


def test_missing_required_function_is_reported_without_a_waiver() -> None:
    people = [{"name": "bob", "function": "engineering"}, {"name": "ann", "function": "operations"}]
    (problem,) = problems_of(filled_text(participants=people))
    assert problem.startswith(f"{SOURCE}: participants: no one from product")
    assert "missing_function_waiver" in problem


def test_missing_required_function_with_a_waiver_is_accepted() -> None:
    people = [{"name": "bob", "function": "engineering"}, {"name": "ann", "function": "operations"}]
    text = filled_text(participants=people, missing_function_waiver="product was at an offsite")
    review = parse_review(text, source=SOURCE, policy=default_policy(), severity=Severity.SEV2)
    assert review.missing_function_waiver == "product was at an offsite"


def test_unknown_keys_are_reported_with_a_suggestion() -> None:
    data = yaml.safe_load(filled_text())
    data["summary"] = "misplaced"
    data["action_items"][0]["sucess_criteria"] = data["action_items"][0].pop("success_criteria")
    data["blast_radius"]["zones"] = ["eu"]
    problems = problems_of(yaml.safe_dump(data))
    text = "\n".join(problems)
    assert f"{SOURCE}: summary: unknown field 'summary'" in text
    assert f"{SOURCE}: blast_radius.zones: unknown field 'zones'" in text
    assert "action_items.0.sucess_criteria: unknown field 'sucess_criteria'; did you mean " in text
    assert "action_items.0.success_criteria: Field required" in text


def test_unknown_key_alone_fails_even_without_the_policy() -> None:
    text = template_of(make_incident()) + "notes: extra\n"
    (problem,) = problems_of(text, checked=False)
    assert problem.startswith(f"{SOURCE}: notes: unknown field 'notes'; expected one of ")


def test_duplicate_keys_are_reported() -> None:
    text = filled_text() + "facilitator: someone else\n"
    (problem,) = problems_of(text)
    assert problem.startswith(f"{SOURCE}: facilitator: given more than once")


def test_yaml_syntax_error_is_reported_with_its_line() -> None:
    text = "executive_summary: fine\ntechnical_appendix: broken: here\n"
    (problem,) = problems_of(text)
    assert problem.startswith(f"{SOURCE}: line 2, column ")
    assert "not valid YAML" in problem


@pytest.mark.parametrize(("text", "got"), [("", "nothing"), ("- a\n- b\n", "a list")])
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    (problem,) = problems_of(text)
    assert problem.startswith(f"{SOURCE}: (top level): expected a mapping")
    assert f"got {got}" in problem


def test_unquoted_zoned_due_at_is_accepted() -> None:
    text = filled_text().replace(
        "  priority: P2\n", "  priority: P2\n  due_at: 2026-12-01T10:00:00Z\n"
    )
    review = parse_review(text, source=SOURCE, policy=default_policy(), severity=Severity.SEV2)
    assert review.action_items[0].due_at == datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize("due_at", ["2026-12-01T10:00:00", "2026-12-01"])
def test_naive_due_at_is_rejected(due_at: str) -> None:
    text = filled_text().replace("  priority: P2\n", f"  priority: P2\n  due_at: {due_at}\n")
    (problem,) = problems_of(text)
    assert problem.startswith(f"{SOURCE}: action_items.0.due_at: give a time zone")


def test_naive_timeline_time_is_rejected() -> None:
    data = yaml.safe_load(filled_text())
    data["timeline"].append({"at": datetime(2026, 11, 24, 12, 0), "text": "naive"})
    (problem,) = problems_of(yaml.safe_dump(data))
    assert problem.startswith(f"{SOURCE}: timeline.3.at: give a time zone")


def test_unquoted_yes_in_a_text_field_says_to_quote_it() -> None:
    data = yaml.safe_load(filled_text())
    text = yaml.safe_dump(data).replace("facilitator: carol", "facilitator: yes")
    (problem,) = problems_of(text)
    assert "reads as true/false: put it in quotes" in problem


def test_wrong_shapes_and_unreadable_times_are_explained() -> None:
    data = yaml.safe_load(filled_text())
    data["action_items"] = dict(ACTION_ITEM)
    data["timeline"][0]["at"] = "yesterday"
    problems = problems_of(yaml.safe_dump(data))
    assert sorted(p.split(" (line")[0] for p in problems) == [
        f"{SOURCE}: action_items: expected a list (one '- ' line per entry), not a mapping",
        f"{SOURCE}: timeline.0.at: 'yesterday' is not a time; expected ISO 8601 with a zone, "
        "e.g. 2026-12-15T17:00:00Z",
    ]


def test_invalid_rubric_score_does_not_also_report_it_missing() -> None:
    data = yaml.safe_load(filled_text())
    data["rubric"]["severity"] = "high"
    data["rubric"]["exposure"] = 9
    problems = problems_of(yaml.safe_dump(data))
    assert sorted(paths(problems)) == ["rubric.exposure", "rubric.severity"]
    assert problems[0].startswith(f"{SOURCE}: rubric.exposure: must be from 1 to 5")


def test_policy_and_severity_go_together() -> None:
    with pytest.raises(TypeError):
        parse_review("{}", source=SOURCE, policy=default_policy())


# ---- properties ---------------------------------------------------------------------------

_texts = st.text(max_size=200)


@settings(max_examples=150, deadline=None)
@given(summary=_texts, note=_texts, title=_texts)
@example(summary="", note="\n", title="")  # a '|+' block once ended the template early
@example(summary="a\n\n", note=" x\ny", title="")
def test_arbitrary_text_survives_the_template(summary: str, note: str, title: str) -> None:
    timeline = [TimelineEvent(at=STARTED, kind=TimelineKind.NOTE, text=note)]
    template = template_of(make_incident(title=title, timeline=timeline))
    data = yaml.safe_load(template)
    assert data["timeline"] == [{"at": STARTED, "text": note}]
    data["executive_summary"] = summary
    review = parse_review(dump_yaml(data), source=SOURCE)
    assert review.executive_summary == summary
    assert review.timeline[0].text == note


# ---- files that must not crash the reader -------------------------------------------------


def test_anchors_and_aliases_are_refused_with_their_line() -> None:
    # A few kilobytes of nested aliases expand to gigabytes once read.
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
        for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
    )
    (problem,) = problems_of(bomb)
    assert problem == (
        f"{SOURCE}: line 1, column 4: anchors and aliases (&name, *name) are not accepted in a "
        "review file; write each value out"
    )
    (problem,) = problems_of(filled_text() + "extra: *undefined\n", checked=False)
    assert "anchors and aliases" in problem


def test_a_deeply_nested_file_is_refused_not_a_recursion_error() -> None:
    (problem,) = problems_of("executive_summary: " + "[" * 200_000)
    assert problem.startswith(f"{SOURCE}: line 1, column ")
    assert problem.endswith("nested more than 32 levels deep; a review needs a few")


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("timeline.0.at", "2026-99-99", "'2026-99-99' is not a time"),
        ("timeline.0.at", "!!timestamp 2026-02-30", "'2026-02-30' is not a time"),
        ("action_items.0.due_at", "2026-13-45", "'2026-13-45' is not a time"),
        ("decisions.0.date", "2026-13-45", "'2026-13-45' is not a date; expected YYYY-MM-DD"),
        ("timeline.0.at", "0", "1970-01-01T00:00:00+00:00 is not between 2000-01-01 and"),
    ],
)
def test_impossible_dates_are_one_more_problem_with_their_line(
    field: str, value: str, says: str
) -> None:
    data = yaml.safe_load(filled_text())
    data["decisions"] = [
        {"decision": "roll back", "rationale": "faster", "owner": "bob", "date": "2026-11-27"}
    ]
    placeholder = "PLACEHOLDER-VALUE"
    parent, index, key = field.split(".")
    data[parent][int(index)][key] = placeholder
    text = yaml.safe_dump(data, sort_keys=False).replace(f"'{placeholder}'", value)
    text = text.replace(placeholder, value)
    (problem,) = problems_of(text)
    assert problem.startswith(f"{SOURCE}: {field}: {says}")
    line = int(re.search(r"\(line (\d+)\)$", problem).group(1))  # type: ignore[union-attr]
    assert value in text.splitlines()[line - 1]


def test_a_binary_or_oversized_file_is_refused_before_it_is_read() -> None:
    with pytest.raises(ReviewFileError) as caught:
        review_text(b"\x89PNG\r\n\x1a\n\x00\x00\xff", SOURCE)
    assert caught.value.problems == [
        f"{SOURCE}: (top level): not UTF-8 text (byte 0 cannot be read); save the review file "
        "as UTF-8"
    ]
    with pytest.raises(ReviewFileError) as caught:
        review_text(b"#" * (REVIEW_FILE_BYTES + 1), SOURCE)
    assert "larger than the 1 MiB a review file may hold" in str(caught.value)
    assert review_text("facilitator: ünïcode\n".encode(), SOURCE) == "facilitator: ünïcode\n"


def test_texts_and_lists_past_their_caps_name_the_limit() -> None:
    data = yaml.safe_load(filled_text())
    data["executive_summary"] = "x" * (LONG_TEXT_CHARS + 1)
    data["action_items"] = [dict(ACTION_ITEM) for _ in range(REVIEW_ACTION_ITEMS + 1)]
    problems = problems_of(yaml.safe_dump(data))
    assert sorted(p.split(" (line")[0] for p in problems) == [
        f"{SOURCE}: action_items: at most 50 entries, this has 51; keep the ones that matter",
        f"{SOURCE}: executive_summary: at most 20,000 characters, this has 20,001; shorten it, "
        "or link to a document for the rest",
    ]


def test_the_template_of_a_long_incident_holds_only_the_latest_timeline() -> None:
    events = [
        TimelineEvent(at=STARTED + timedelta(minutes=n), kind=TimelineKind.NOTE, text=f"n{n}")
        for n in range(REVIEW_TIMELINE_ENTRIES + 30)
    ]
    incident = make_incident(timeline=events)
    template = template_of(incident)
    data = yaml.safe_load(template)
    assert [entry["text"] for entry in data["timeline"]] == [
        f"n{n}" for n in range(30, REVIEW_TIMELINE_ENTRIES + 30)
    ]
    assert "These are the latest 200 events" in template
    # A time shared by two entries is written twice, not as an alias the reader would refuse.
    same = [TimelineEvent(at=STARTED, kind=TimelineKind.NOTE, text=t) for t in ("a", "b")]
    data = yaml.safe_load(template_of(make_incident(timeline=same)))
    assert parse_review(dump_yaml(fill(data)), source=SOURCE).timeline[1].text == "b"
