"""Review files: the YAML template a facilitator fills in, and the parser that reads it back.

`parse_review` reports every problem of a file at once (syntax, unknown keys, invalid
values and, given the policy, what keeps the review from being accepted), one per line,
each naming the file, the dotted path of the field and, when known, its line.
"""

from __future__ import annotations

import difflib
import re
import textwrap
import types
from copy import deepcopy
from datetime import UTC, date, datetime
from typing import Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from app.formats.problems import problem_message
from app.formats.yaml_files import (
    FileKind,
    FileProblems,
    Path,
    dotted,
    field_lines,
    file_text,
    line_of,
    load_document,
)
from domain.failure_modes import FailureMode, Taxonomy
from domain.functions import ReviewFunction
from domain.incident import Incident, TimelineKind
from domain.limits import REVIEW_FILE_BYTES, REVIEW_TIMELINE_ENTRIES
from domain.policy import ActionKind, Policy, format_duration
from domain.review import FocusedQuestions, Review, ReviewProblem, Rubric, check_review
from domain.review_tags import KnownTags, tag_problems
from domain.severity import Severity

ZONE_EXAMPLE = "2026-12-15T17:00:00Z"
_COMMENT_WIDTH = 92

QUESTIONS: dict[str, str] = {
    "what_happened": "What happened?",
    "why_it_happened": "Why did it happen?",
    "what_could_have_prevented_it": "What could have prevented it?",
    "early_warning_signals": "Which early warning signals were there, and how were they handled?",
    "minimum_viable_fix": "What is the minimum viable fix?",
    "long_term_improvements": "Which long-term improvements would stop it for good?",
}

RUBRIC_MEANING: dict[str, str] = {
    "severity": "how bad the impact was",
    "exposure": "how widely and how long users and systems were exposed",
    # The design's "risk migration": the risk of migration, not "risk mitigation". Stored
    # reviews carry the name, so it stays.
    "risk_migration": "the risk of migration (not risk mitigation), how risky the changes this "
    "review asks for are to roll out: migrations, rewrites, moved configuration",
}


def question_text(name: str) -> str:
    """The question a FocusedQuestions field asks, in words."""
    return QUESTIONS.get(name, name.replace("_", " ").capitalize() + "?")


class ReviewFileError(FileProblems):
    """A review file cannot be accepted; str() lists every problem, one per line."""


REVIEW_FILE = FileKind(
    name="review file", whole="a review", max_bytes=REVIEW_FILE_BYTES, error=ReviewFileError
)


# ---- writing ------------------------------------------------------------------------------


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with multi-line text as literal blocks and times in ISO 8601 with a zone."""

    def ignore_aliases(self, data: Any) -> bool:
        # A value written twice (one time object in two entries) would otherwise become an
        # anchor and an alias, which the reader refuses.
        return True


_UNICODE_BREAKS = ("\x85", "\u2028", "\u2029")


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    if style == "|" and (value.endswith("\n\n") or not value.strip() or value[0] in " \n"):
        # A block that keeps trailing line breaks ('|+') makes PyYAML end the document
        # ('...'), which would cut the template short where this field is spliced in.
        style = '"'
    if any(char in value for char in _UNICODE_BREAKS):
        style = '"'  # PyYAML writes these raw in other styles, and reads them back as breaks
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _represent_datetime(dumper: yaml.SafeDumper, value: datetime) -> yaml.ScalarNode:
    text = value.isoformat().replace("+00:00", "Z")
    return dumper.represent_scalar("tag:yaml.org,2002:timestamp", text)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(datetime, _represent_datetime)


def dump_yaml(value: Any) -> str:
    """YAML that `yaml.safe_load` reads back as `value`, in the style of the template."""
    return yaml.dump(
        value, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(True))


# What a YAML stream may not hold, even in a comment (PyYAML's reader refuses it).
_NOT_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def _comment(*paragraphs: str, indent: int = 0) -> str:
    pad = " " * indent
    width = _COMMENT_WIDTH - indent - 2
    lines: list[str] = []
    for text in paragraphs:
        # Any line break (YAML also counts U+0085, U+2028, U+2029) would end the comment
        # and make the rest YAML: str.split() takes them all as whitespace.
        words = " ".join(_NOT_PRINTABLE.sub("", text).split())
        lines += textwrap.wrap(words, width) or [""]
    return "".join(f"{pad}# {line}".rstrip() + "\n" for line in lines)


def _commented_example(value: Any, indent: int = 0) -> str:
    pad = " " * indent
    return "".join(f"{pad}# {line}\n" for line in dump_yaml(value).splitlines())


def _field(key: str, value: Any, indent: int = 0) -> str:
    return _indent(dump_yaml({key: value}), indent)


def _duration_minutes(incident: Incident) -> int | None:
    clock = incident.clock
    end = clock.mitigated_at or clock.resolved_at
    if end is None:
        return None
    return max(0, round((end - clock.started_at).total_seconds() / 60))


# The review's own bookkeeping, not events of the response (compared by value, as the
# workflow's timeline kinds grow with the review lifecycle).
_NOT_NARRATIVE = frozenset({"review_scheduled", "reviewed", "closed"})


def _timeline(incident: Incident) -> list[dict[str, Any]]:
    """The incident's timeline, with any escalation the timeline does not already show: all of
    it, up to the latest REVIEW_TIMELINE_ENTRIES (what a review holds)."""
    entries = [
        (event.at, event.text)
        for event in incident.timeline
        if event.kind.value not in _NOT_NARRATIVE
    ]
    shown = {event.at for event in incident.timeline if event.kind == TimelineKind.ESCALATED}
    entries += [
        (record.at, f"{record.reason}; escalated to {record.rung.value.replace('_', ' ')}")
        for record in incident.escalations
        if record.at not in shown
    ]
    latest = sorted(entries, key=lambda e: e[0])[-REVIEW_TIMELINE_ENTRIES:]
    return [{"at": at, "text": text} for at, text in latest]


def _header(incident: Incident) -> str:
    return _comment(
        f"Post-incident review of {incident.key}: {incident.title} ({incident.severity.value})",
        f"Fill it in, then submit it: afteraction review submit {incident.key} FILE",
        f"Times are ISO 8601 with a zone, e.g. {ZONE_EXAMPLE}. Quote text that starts with a "
        "special character or contains ': ' (or use a | block for several lines).",
    )


def _summaries() -> str:
    return (
        _comment(
            "executive_summary: for readers outside the team, in a few sentences: what "
            "happened, who was affected and for how long, and what is being done about it."
        )
        + _field("executive_summary", "")
        + "\n"
        + _comment(
            "technical_appendix: for engineers: the mechanism of the failure, the contributing "
            "factors and the details the summary leaves out."
        )
        + _field("technical_appendix", "")
    )


def _timeline_block(incident: Incident) -> str:
    timeline = _timeline(incident)
    paragraphs = [
        "timeline: the narrative of the response, prefilled from the incident (escalations "
        "included); correct it, add what happened before the declaration, drop the noise."
    ]
    shown = len(timeline)
    if incident.earlier_timeline_events or shown == REVIEW_TIMELINE_ENTRIES:
        paragraphs.append(
            f"These are the latest {shown} events (a review holds at most "
            f"{REVIEW_TIMELINE_ENTRIES}); the incident's workflow history has the earlier ones."
        )
    return _comment(*paragraphs) + _field("timeline", timeline)


def _blast_radius(incident: Incident) -> str:
    duration = _duration_minutes(incident)
    until = "mitigation" if incident.clock.mitigated_at else "resolution"
    return (
        _comment("blast_radius: who and what the incident touched.")
        + "blast_radius:\n"
        + _field("services", list(incident.services), 2)
        + _comment("customers: who was affected, e.g. '12% of EU checkouts'", indent=2)
        + _field("customers", "", 2)
        + _comment("regions: e.g. [eu-west-1, us-east-1]", indent=2)
        + _field("regions", [], 2)
        + _comment(
            f"duration_minutes: from the start of impact to {until}"
            if duration is not None
            else "duration_minutes: the incident has not been mitigated yet",
            indent=2,
        )
        + _field("duration_minutes", duration, 2)
    )


_EVIDENCE_EXAMPLES: list[dict[str, str]] = [
    {
        "kind": "metrics",
        "url": "https://grafana.example.com/d/checkout?from=1764250980000",
        "description": "checkout error rate during the incident",
    },
    {
        "kind": "logs",
        "url": "https://logs.example.com/search?q=service%3Acheckout+level%3Aerror",
        "description": "the first errors after deploy 4182",
    },
    {
        "kind": "traces",
        "url": "https://tracing.example.com/trace/4bf92f3577b34da6",
        "description": "a failed checkout, end to end",
    },
    {
        "kind": "topology",
        "url": "https://wiki.example.com/architecture/checkout",
        "description": "checkout and the services it calls",
    },
]


def _evidence() -> str:
    return (
        _comment(
            "evidence: links that show what happened; kind is one of metrics, logs, traces, "
            "topology or other. Replace [] with entries like these:"
        )
        + _field("evidence", [])
        + _commented_example(_EVIDENCE_EXAMPLES)
    )


def _questions() -> str:
    defaults = FocusedQuestions()
    text = _comment(
        "questions: the review's agenda; answer each, and set how many minutes it gets "
        "(timebox_minutes)."
    )
    text += "questions:\n"
    for name in FocusedQuestions.model_fields:
        answer = getattr(defaults, name)
        text += _comment(question_text(name), indent=2)
        text += _field(name, answer.model_dump(mode="json"), 2)
    return text


def _rubric(policy: Policy) -> str:
    low, high = policy.rubric_scale
    text = _comment(
        f"rubric: score each from {low} (least) to {high} (most), on the scale the team agreed."
    )
    text += "rubric:\n"
    for name in Rubric.model_fields:
        text += _comment(f"{name}: {RUBRIC_MEANING.get(name, name.replace('_', ' '))}", indent=2)
        text += _field(name, None, 2)
    return text


def _people(incident: Incident) -> str:
    schedule = incident.review_schedule
    facilitator = schedule.facilitator if schedule else None
    participants = [p.model_dump(mode="json") for p in schedule.participants] if schedule else []
    required = incident.policy.for_severity(incident.severity).required_review_functions
    note = (
        " (proposed by the rotation; change it if someone else facilitates)"
        if schedule is not None and schedule.facilitator_proposed
        else ""
    )
    functions = ", ".join(f.value for f in ReviewFunction)
    text = _comment(f"facilitator: who runs the review{note}.") + _field("facilitator", facilitator)
    text += "\n" + _comment(
        f"participants: everyone who took part, each with a function ({functions}).",
        f"{incident.severity.value} requires: {', '.join(f.value for f in required) or 'none'}.",
    )
    text += _field("participants", participants)
    if not participants:
        text += _comment("Replace [] with entries like this one:")
        text += _commented_example([{"name": "alice", "function": "engineering"}])
    return text


def _decisions() -> str:
    example = {
        "decision": "Roll back deploy 4182 rather than fix forward",
        "rationale": "the fix needed a schema change we could not test in time",
        "owner": "alice",
        "date": "2026-11-27",
    }
    return (
        _comment("decisions: the decision log. Replace [] with entries like this one:")
        + _field("decisions", [])
        + _commented_example([example])
    )


def _tags(taxonomy: Taxonomy, modes: list[FailureMode]) -> str:
    text = _comment(
        "failure_modes: the library's failure modes this incident is an instance of, by slug "
        "(`afteraction library list` shows them). `afteraction review template KEY "
        "--failure-mode SLUG` lists one here and prefills action items from its recipes."
    )
    if modes:
        text += "failure_modes:\n"
        for mode in modes:
            text += _comment(mode.name) + dump_yaml([mode.slug])
    else:
        text += _field("failure_modes", [])
    example = {
        "description": "the deploy raised the pool size past the database's connection limit",
        "trigger": taxonomy.triggers[0],
        "root_cause": taxonomy.root_causes[0],
    }
    return (
        text
        + "\n"
        + _comment(
            "contributing_factors: what made the incident happen or made it worse; each a "
            "description, with a trigger and a root_cause (both optional) from the taxonomy "
            f"in force ({taxonomy.source}). A review without any is accepted, with a warning.",
            f"Triggers: {', '.join(taxonomy.triggers)}.",
            f"Root causes: {', '.join(taxonomy.root_causes)}.",
            "Replace [] with entries like this one:",
        )
        + _field("contributing_factors", [])
        + _commented_example([example])
    )


def _suggested(modes: list[FailureMode]) -> str:
    """The action items the modes' recipes suggest, for the facilitator to give an owning team
    and a priority (a recipe knows neither the teams nor the incident's urgency)."""
    text = ""
    for mode in modes:
        for recipe in mode.recipes:
            for item in recipe.action_items:
                suggested = {
                    "title": item.title,
                    "owning_team": None,
                    "kind": item.kind.value,
                    "priority": None,
                    "due_at": None,
                    "success_criteria": item.success_criteria,
                    "slo_link": item.slo_link,
                }
                text += _comment(f"From {mode.slug}, recipe {recipe.name}:")
                text += dump_yaml([suggested])
    return text


def _action_items(incident: Incident, modes: list[FailureMode]) -> str:
    due_within = incident.policy.for_severity(incident.severity).action_items.due_within
    defaults = ", ".join(
        f"{format_duration(due)} for {kind.value}" for kind, due in due_within.items()
    )
    example = {
        "title": "Alert on checkout error rate above 2% for 5 minutes",
        "owning_team": "payments",
        "assignee": "bob",
        "kind": ActionKind.SHORT_TERM.value,
        "priority": "P2",
        "due_at": datetime(2026, 12, 15, 17, 0, tzinfo=UTC),
        "success_criteria": "a replay of the incident's traffic pages on-call within 5 minutes",
        "slo_link": "https://slo.example.com/checkout-availability",
    }
    guide = _comment(
        "action_items: each independent, testable and assignable. Fields: title, "
        "owning_team, assignee (optional), kind (short_term_mitigation | "
        "long_term_systemic), priority (P1, P2, P3 or P4), due_at (optional, ISO time with "
        f"a zone; by default it comes from the policy: {defaults} after the review), "
        "success_criteria (measurable: how anyone can tell it worked), slo_link (optional).",
    )
    suggested = _suggested(modes)
    if suggested:
        return (
            guide
            + _comment(
                "Suggested by the recipes of the failure modes above: give each an owning_team "
                "and a priority, and a due_at unless the policy's default suits; drop the ones "
                "that do not apply, add your own like this one:"
            )
            + _commented_example([example])
            + "action_items:\n"
            + suggested
        )
    return (
        guide
        + _comment("Replace [] with items like this one:")
        + _field("action_items", [])
        + _commented_example([example])
    )


def _waiver(incident: Incident) -> str:
    required = incident.policy.for_severity(incident.severity).required_review_functions
    return _comment(
        "missing_function_waiver: only when a function this severity requires "
        f"({', '.join(f.value for f in required) or 'none'}) could not take part: why the "
        "review went ahead without it. Leave null otherwise."
    ) + _field("missing_function_waiver", None)


def review_template(
    incident: Incident, *, taxonomy: Taxonomy, modes: list[FailureMode] | None = None
) -> str:
    """A YAML review file to fill in, prefilled from the incident, with comments as a guide;
    `modes` (the library's entries the review names) prefill the action items."""
    named = modes or []
    blocks = [
        _header(incident),
        _summaries(),
        _timeline_block(incident),
        _blast_radius(incident),
        _evidence(),
        _questions(),
        _rubric(incident.policy),
        _people(incident),
        _decisions(),
        _tags(taxonomy, named),
        _action_items(incident, named),
        _waiver(incident),
    ]
    return "\n".join(blocks)


# ---- reading ------------------------------------------------------------------------------


class _Problems:
    """Problems of one file, each placed at the line of the field it is about."""

    def __init__(self, source: str, lines: dict[Path, int]) -> None:
        self.source = source
        self.lines = lines
        self.found: list[tuple[int | None, str]] = []

    def add(self, path: Path, message: str) -> None:
        line = self._line(path)
        where = f" (line {line})" if line is not None else ""
        self.found.append((line, f"{self.source}: {dotted(path)}: {message}{where}"))

    def _line(self, path: Path) -> int | None:
        return line_of(self.lines, path)

    def messages(self) -> list[str]:
        ordered = sorted(self.found, key=lambda item: (item[0] is None, item[0] or 0))
        return [message for _, message in ordered]


def review_text(data: bytes, source: str) -> str:
    """The text of a review file; ReviewFileError when it is too large or not UTF-8 text."""
    return file_text(data, source, REVIEW_FILE)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds, itself or as the items of a list (optional or not)."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = [arg for arg in get_args(annotation) if arg is not type(None)]
        return _nested_model(inner[0]) if len(inner) == 1 else None
    if origin is list:
        return _nested_model(get_args(annotation)[0])
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _model_at(path: Path) -> type[BaseModel] | None:
    """The model that holds the field at `path` (list indices skipped), from Review down."""
    model: type[BaseModel] | None = Review
    for part in path[:-1]:
        if isinstance(part, int):
            continue
        if model is None or part not in model.model_fields:
            return None
        model = _nested_model(model.model_fields[part].annotation)
    return model


def _unknown_keys(data: Any, model: type[BaseModel], path: Path, problems: _Problems) -> None:
    if not isinstance(data, dict):
        return  # the validation says what shape it should have
    fields = model.model_fields
    for key, value in data.items():
        name = str(key)
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), n=1)
            hint = (
                f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(fields)}"
            )
            problems.add((*path, name), f"unknown field {name!r}; {hint}")
            continue
        nested = _nested_model(fields[name].annotation)
        if nested is None:
            continue
        if isinstance(value, list):
            for index, item in enumerate(value):
                _unknown_keys(item, nested, (*path, name, index), problems)
        else:
            _unknown_keys(value, nested, (*path, name), problems)


def _reads_as(value: object) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, date):  # datetime too
        return "a date or time"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "text"
    return "a mapping" if isinstance(value, dict) else type(value).__name__


def _explain(error: ErrorDetails, path: Path) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "missing":
        model = _model_at(path)
        field = model.model_fields.get(str(path[-1])) if model and path else None
        description = field.description if field is not None else None
        return f"Field required ({description})" if description else "Field required"
    if value is None and kind in ("string_type", "list_type"):
        return "must not be empty" if kind == "string_type" else "is empty; write [] for none"
    if kind == "list_type":
        return f"expected a list (one '- ' line per entry), not {_reads_as(value)}"
    if kind == "string_type" and isinstance(value, list | dict):
        return f"expected text, not {_reads_as(value)}"
    if kind == "string_type":
        return f"expected text, but it reads as {_reads_as(value)}: put it in quotes"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "expected a mapping of fields (name: value lines)"
    if kind.startswith("datetime"):
        return f"{value!r} is not a time; expected ISO 8601 with a zone, e.g. {ZONE_EXAMPLE}"
    if kind.startswith("date"):
        return f"{value!r} is not a date; expected YYYY-MM-DD, e.g. 2026-11-27"
    return problem_message(error)


def _error_path(error: ErrorDetails) -> Path:
    return tuple(part for part in error["loc"] if isinstance(part, (str, int)))


def _prune_at(path: Path) -> Path:
    """What to drop so the rest validates: the list item holding the error, else the field."""
    for index in range(len(path) - 1, -1, -1):
        if isinstance(path[index], int):
            return path[: index + 1]
    return path


_DROPPED = object()


def _drop(data: Any, path: Path) -> None:
    parent = data
    for part in path[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(parent, dict):
        parent.pop(path[-1], None)
    elif isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
        parent[path[-1]] = _DROPPED  # removed later, so other paths keep their indices


def _compact(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _compact(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_compact(item) for item in value if item is not _DROPPED]
    return value


def _without(data: dict[str, Any], paths: list[Path]) -> dict[str, Any]:
    copy = deepcopy(data)
    for path in paths:
        _drop(copy, path)
    result: dict[str, Any] = _compact(copy)
    return result


def _zone_problems(review: Review, problems: _Problems) -> None:
    # Naive times are ambiguous; the action items' due_at rejects them itself.
    for index, entry in enumerate(review.timeline):
        if entry.at.tzinfo is None:
            problems.add(("timeline", index, "at"), f"give a time zone, e.g. {ZONE_EXAMPLE}")


def _covered(path: Path, dropped: list[Path]) -> bool:
    """True when a check at `path` is about data already reported and dropped."""
    return any(path[: len(d)] == d or d[: len(path)] == path for d in dropped)


def _review_problems(found: list[ReviewProblem], dropped: list[Path], problems: _Problems) -> None:
    for problem in found:
        path: Path = tuple(int(p) if p.isdigit() else p for p in problem.path.split("."))
        if not _covered(path, dropped):
            problems.add(path, problem.message)


def parse_review(
    text: str,
    *,
    source: str,
    policy: Policy | None = None,
    severity: Severity | None = None,
    library: KnownTags | None = None,
) -> Review:
    """The review in a YAML text; ReviewFileError lists every problem, one per line.

    Given the incident's policy and severity, what keeps the review from being accepted
    (`check_review`) is reported in the same list; given the taxonomy in force and the
    library's slugs, so are the failure modes and contributing factors they do not know.
    """
    if (policy is None) != (severity is None):
        raise TypeError("give both policy and severity, or neither")
    data, node = load_document(text, source, REVIEW_FILE)
    lines, duplicates = field_lines(node) if node is not None else ({}, [])
    problems = _Problems(source, lines)
    if not isinstance(data, dict):
        got = "nothing" if data is None else f"a {type(data).__name__}"
        problems.add((), f"expected a mapping of review fields (name: value lines), got {got}")
        raise ReviewFileError(problems.messages())
    for path in duplicates:
        problems.add(path, "given more than once; only the last would count")
    _unknown_keys(data, Review, (), problems)

    dropped: list[Path] = []
    try:
        review: Review | None = Review.model_validate(data)
    except ValidationError as error:
        for detail in error.errors():
            path = _error_path(detail)
            problems.add(path, _explain(detail, path))
            dropped.append(_prune_at(path))
        review = _partial(data, dropped)
    if review is not None:
        _zone_problems(review, problems)
        if policy is not None and severity is not None:
            found = check_review(review, policy, policy.for_severity(severity))
            _review_problems(found, dropped, problems)
        if library is not None:
            _review_problems(
                tag_problems(review, library.taxonomy, library.slugs), dropped, problems
            )
    messages = problems.messages()
    if messages or review is None:
        raise ReviewFileError(messages)
    return review


def _partial(data: dict[str, Any], dropped: list[Path]) -> Review | None:
    """The review without its invalid parts, to check the rest against the policy."""
    try:
        return Review.model_validate(_without(data, dropped))
    except ValidationError:
        return None
