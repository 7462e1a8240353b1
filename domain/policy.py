"""The severity policy: deadlines, review requirements and the escalation ladder per severity.

The defaults below are what a team gets with no policy file. A TOML file overrides any
part of them (tables merge key by key); see `load_policy`. The policy an incident runs
under is copied into its workflow input at declaration, so the deadlines of a running
incident never change behind its back and its history says which rules applied.
"""

from __future__ import annotations

import itertools
import json
import re
import tomllib
from collections.abc import Iterator
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from domain.digest_policy import DigestPolicy
from domain.functions import ReviewFunction
from domain.limits import LONGEST_DURATION
from domain.severity import Severity

_DURATION_PART = re.compile(r"([0-9]+)\s*(w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
DURATION_FORMS = "e.g. '90s', '15m', '1h30m', '2d', ISO 8601 'PT5M' or a number of seconds"


def parse_duration(value: object) -> object:
    """Accept '90s', '15m', '4h', '2d', '1w', '1h30m' besides what pydantic takes (seconds, ISO).

    ValueError for one longer than LONGEST_DURATION: deadlines are arithmetic on durations.
    """
    if isinstance(value, bool):
        # TOML `true` is not a duration, though pydantic would read it as one second.
        raise ValueError(f"{value!r} is not a duration; expected {DURATION_FORMS}")
    if not isinstance(value, str):
        return value
    text = value.strip().lower().replace(" ", "")
    if re.fullmatch(r"[0-9]+", text):
        parts = [(text, "s")]
    elif text and _DURATION_PART.sub("", text) == "":
        parts = _DURATION_PART.findall(text)
    else:
        return value
    # More digits than any duration needs would only make an integer too large to convert.
    if any(len(number) > 12 for number, _ in parts):
        raise ValueError(_too_long(value))
    seconds = sum(int(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if seconds > LONGEST_DURATION.total_seconds():
        raise ValueError(_too_long(value))
    return timedelta(seconds=seconds)


def _too_long(shown: str) -> str:
    shown = shown if len(shown) <= 40 else shown[:40] + "..."
    return (
        f"{shown!r} is longer than {format_duration(LONGEST_DURATION)}, the longest duration "
        "afteraction takes; give a shorter one"
    )


def not_too_long(value: timedelta) -> timedelta:
    if value > LONGEST_DURATION:
        raise ValueError(_too_long(format_duration(value)))
    return value


def format_duration(value: timedelta) -> str:
    """The short form parse_duration reads back: '1h30m', '2d', '0s'."""
    total = value.total_seconds()
    if total != int(total):
        return f"{total:g}s"
    seconds = int(total)
    if seconds == 0:
        return "0s"
    sign, seconds = ("-", -seconds) if seconds < 0 else ("", seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return sign + "".join(parts)


Duration = Annotated[timedelta, BeforeValidator(parse_duration), AfterValidator(not_too_long)]


class Rung(StrEnum):
    """The escalation ladder, lowest first."""

    OWNER = "owner"
    TEAM_LEAD = "team_lead"
    MANAGER = "manager"
    LEADERSHIP = "leadership"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EscalationLadder(_Strict):
    """How long after a missed deadline each rung is notified; the top rung repeats."""

    owner: Duration = timedelta(0)
    team_lead: Duration
    manager: Duration
    leadership: Duration
    repeat_every: Duration = Field(description="how often the top rung is reminded again")

    @field_validator("owner", "team_lead", "manager", "leadership")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative: a rung is notified after the deadline")
        return value

    @field_validator("repeat_every")
    @classmethod
    def _repeat_positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value

    @model_validator(mode="after")
    def _rungs_climb(self) -> EscalationLadder:
        for (earlier, earlier_delay), (later, later_delay) in itertools.pairwise(self.rungs()):
            if later_delay < earlier_delay:
                raise PydanticCustomError(
                    "rung_order",
                    "{later} ({later_delay}) comes before {earlier} ({earlier_delay}); "
                    "rung delays must not decrease from owner to leadership",
                    {
                        "later": later.value,
                        "later_delay": format_duration(later_delay),
                        "earlier": earlier.value,
                        "earlier_delay": format_duration(earlier_delay),
                        "fields": (later.value, earlier.value),
                    },
                )
        return self

    def rungs(self) -> list[tuple[Rung, timedelta]]:
        return [
            (Rung.OWNER, self.owner),
            (Rung.TEAM_LEAD, self.team_lead),
            (Rung.MANAGER, self.manager),
            (Rung.LEADERSHIP, self.leadership),
        ]


class ActionKind(StrEnum):
    SHORT_TERM = "short_term_mitigation"
    LONG_TERM = "long_term_systemic"


def _action_ladder() -> EscalationLadder:
    return EscalationLadder(
        owner=timedelta(0),
        team_lead=timedelta(days=2),
        manager=timedelta(days=7),
        leadership=timedelta(days=14),
        repeat_every=timedelta(days=7),
    )


class ActionItemPolicy(_Strict):
    """Due dates, reminders, stall detection and the escalation ladder of action items."""

    due_within: dict[ActionKind, Duration] = Field(
        default_factory=lambda: {
            ActionKind.SHORT_TERM: timedelta(days=14),
            ActionKind.LONG_TERM: timedelta(days=60),
        },
        description="default due date after the review, by kind",
    )
    remind_before: list[Duration] = Field(
        default_factory=lambda: [timedelta(days=3), timedelta(days=1)],
        description="reminders on the ticket this long before the due date",
    )
    stall_after: Duration = Field(
        default=timedelta(days=14), description="no tracker activity for this long is a stall"
    )
    escalation: EscalationLadder = Field(default_factory=_action_ladder)
    verification_required: bool = Field(
        default=True, description="a closed ticket waits for someone to confirm the criteria"
    )

    @field_validator("stall_after")
    @classmethod
    def _stall_positive(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class SeverityPolicy(_Strict):
    acknowledge_within: Duration
    status_update_every: Duration
    resolve_within: Duration
    review_within_business_days: int = Field(ge=0)
    review_within: Duration | None = Field(
        default=None,
        description="an exact review deadline; when set it replaces the business-day count",
    )
    required_review_functions: list[ReviewFunction]
    escalation: EscalationLadder
    # Defaults keep policies saved in older incident histories readable.
    action_items: ActionItemPolicy = Field(default_factory=ActionItemPolicy)

    @field_validator("acknowledge_within", "status_update_every", "resolve_within", "review_within")
    @classmethod
    def _durations_positive(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("must be longer than zero")
        return value


class Policy(_Strict):
    severities: dict[Severity, SeverityPolicy]
    contacts: dict[Rung, list[str]] = Field(
        default_factory=dict,
        description="who is notified at each rung above the owner, e.g. team_lead = ['@sre-lead']",
    )

    @field_validator("contacts")
    @classmethod
    def _no_owner_contacts(cls, value: dict[Rung, list[str]]) -> dict[Rung, list[str]]:
        if Rung.OWNER in value:
            raise PydanticCustomError(
                "owner_contact",
                "the owner rung notifies the incident commander; "
                "contacts name team_lead, manager and leadership",
                {"fields": (Rung.OWNER.value,)},
            )
        return value

    @model_validator(mode="after")
    def _every_severity_covered(self) -> Policy:
        missing = [s.value for s in Severity if s not in self.severities]
        if missing:
            raise ValueError(f"the policy has no entry for {', '.join(missing)}")
        return self

    rubric_scale: tuple[int, int] = Field(
        default=(1, 5), description="lowest and highest rubric score, e.g. [1, 5]"
    )
    facilitators: list[str] = Field(
        default_factory=list, description="the pool review facilitators rotate through"
    )
    repeat_window: Duration = Field(
        default=timedelta(days=90),
        description="how far back a new incident looks for earlier ones of the same service or "
        "failure mode; 0s looks for none",
    )
    digest: DigestPolicy = Field(
        default_factory=DigestPolicy, description="when the weekly digest goes out, to whom"
    )

    @field_validator("rubric_scale")
    @classmethod
    def _lowest_first(cls, value: tuple[int, int]) -> tuple[int, int]:
        low, high = value
        if not 0 <= low < high <= 100:
            raise ValueError(
                f"[{low}, {high}] is not a scale: give the lowest score first, then a higher "
                "one, both from 0 to 100, e.g. [1, 5]"
            )
        return value

    def for_severity(self, severity: Severity) -> SeverityPolicy:
        return self.severities[severity]


def _ladder(team_lead: str, manager: str, leadership: str, repeat: str) -> dict[str, str]:
    return {
        "owner": "0s",
        "team_lead": team_lead,
        "manager": manager,
        "leadership": leadership,
        "repeat_every": repeat,
    }


def _action_items(short_term: str, long_term: str, *, verify: bool) -> dict[str, Any]:
    return {
        "due_within": {"short_term_mitigation": short_term, "long_term_systemic": long_term},
        "verification_required": verify,
    }


DEFAULT_POLICY_DATA: dict[str, Any] = {
    "severities": {
        "SEV1": {
            "acknowledge_within": "5m",
            "status_update_every": "30m",
            "resolve_within": "4h",
            "review_within_business_days": 2,
            "required_review_functions": [
                "engineering",
                "operations",
                "product",
                "security",
                "support",
            ],
            "escalation": _ladder("15m", "30m", "1h", "1h"),
            "action_items": _action_items("7d", "30d", verify=True),
        },
        "SEV2": {
            "acknowledge_within": "15m",
            "status_update_every": "1h",
            "resolve_within": "24h",
            "review_within_business_days": 5,
            "required_review_functions": ["engineering", "operations", "product"],
            "escalation": _ladder("30m", "2h", "8h", "8h"),
            "action_items": _action_items("14d", "45d", verify=True),
        },
        "SEV3": {
            "acknowledge_within": "1h",
            "status_update_every": "4h",
            "resolve_within": "3d",
            "review_within_business_days": 10,
            "required_review_functions": ["engineering", "operations"],
            "escalation": _ladder("4h", "1d", "3d", "1d"),
            "action_items": _action_items("30d", "90d", verify=True),
        },
        "SEV4": {
            "acknowledge_within": "4h",
            "status_update_every": "1d",
            "resolve_within": "14d",
            "review_within_business_days": 20,
            "required_review_functions": ["engineering"],
            "escalation": _ladder("1d", "3d", "7d", "7d"),
            "action_items": _action_items("60d", "180d", verify=False),
        },
    },
    "contacts": {
        "team_lead": ["sre-team-lead"],
        "manager": ["engineering-manager"],
        "leadership": ["vp-engineering"],
    },
}


class PolicyFileError(Exception):
    """A policy file cannot be used; the message names the file, the line and the field."""


def default_policy() -> Policy:
    return Policy.model_validate(DEFAULT_POLICY_DATA)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_TOML_LINE = re.compile(r"at line (\d+), column \d+")
_TRIPLE_QUOTES = ('"""', "'''")


class _KeyLine(NamedTuple):
    """A table header or key of a TOML text: where it is and the full dotted path it sets."""

    line: int
    path: list[str]
    is_header: bool
    value_at: int  # offset of the text after `=`; -1 for a header


def _line_number(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1  # as tomllib counts in its error messages


def _skip_string(text: str, pos: int) -> int:
    """Offset just past the one-line string that opens at text[pos] (a quote)."""
    quote = text[pos]
    i = pos + 1
    while i < len(text) and text[i] != "\n":
        if quote == '"' and text[i] == "\\":
            i += 2
            continue
        if text[i] == quote:
            return i + 1
        i += 1
    return i


def _closing_triple(text: str, pos: int, delimiter: str) -> int:
    """Offset just past the `delimiter` that closes a multi-line string, or -1."""
    i = pos
    while True:
        found = text.find(delimiter, i)
        if found < 0:
            return -1
        before = text[pos:found]
        backslashes = len(before) - len(before.rstrip("\\"))
        if delimiter == _TRIPLE_QUOTES[1] or backslashes % 2 == 0:
            end = found + 3
            while end < len(text) and text[end] == delimiter[0]:
                end += 1  # up to two quotes may end the content itself
            return end
        i = found + 1


def _tokens(text: str, pos: int) -> Iterator[tuple[int, str]]:
    """(offset, character) of the value text from pos on, with strings and comments
    skipped whole: a string yields only its opening quote."""
    i = pos
    while i < len(text):
        char = text[i]
        if char == "#":
            newline = text.find("\n", i)
            i = len(text) if newline < 0 else newline
            continue
        yield i, char
        if text.startswith(_TRIPLE_QUOTES, i):
            end = _closing_triple(text, i + 3, text[i : i + 3])
            i = len(text) if end < 0 else end
        elif char in "\"'":
            i = _skip_string(text, i)
        else:
            i += 1


def _end_of_value(text: str, pos: int) -> int:
    """Offset of the newline ending the value that starts at pos (arrays, inline tables
    and multi-line strings may span lines)."""
    depth = 0
    for offset, char in _tokens(text, pos):
        if char == "\n" and depth <= 0:
            return offset
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return len(text)


def _item_offset(text: str, pos: int, index: int) -> int | None:
    """Offset of item `index` of the array value starting at pos, or None."""
    depth = 0
    count = 0
    for offset, char in _tokens(text, pos):
        if char in " \t\r\n":
            continue
        if depth == 0 and char != "[":
            return None  # not an array
        if depth == 1 and count == index and char not in ",]":
            return offset
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth == 0:
                return None
        elif char == "," and depth == 1:
            count += 1
    return None


def _unescape(raw: str) -> str:
    """The text of a basic-string key; its escapes are JSON's, bar the rare \\U and \\e."""
    if "\\" not in raw:
        return raw
    try:
        return str(json.loads(f'"{raw}"'))
    except ValueError:
        return raw


def _parse_key(text: str, pos: int) -> tuple[list[str], int] | None:
    """The (dotted, possibly quoted) TOML key at text[pos:] and the offset after it."""
    parts: list[str] = []
    i = pos
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] in "\"'":
            end = _skip_string(text, i)
            raw = text[i + 1 : end - 1]
            parts.append(_unescape(raw) if text[i] == '"' else raw)
            i = end
        else:
            bare = _BARE_KEY.match(text, i)
            if bare is None:
                return None
            parts.append(bare.group())
            i = bare.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == ".":
            i += 1
            continue
        return parts, i


def _toml_keys(text: str) -> list[_KeyLine]:
    """Every table header and key of a TOML text, in order; the insides of multi-line
    arrays and strings are values, never taken for keys or headers."""
    found: list[_KeyLine] = []
    table: list[str] = []
    i = 0
    while i < len(text):
        newline = text.find("\n", i)
        line_end = len(text) if newline < 0 else newline
        while i < line_end and text[i] in " \t":
            i += 1
        if text.startswith("[", i):
            key = _parse_key(text[:line_end], i + (2 if text.startswith("[[", i) else 1))
            if key is not None:
                table = key[0]
                found.append(_KeyLine(_line_number(text, i), list(table), True, -1))
        elif i < line_end and text[i] != "#":
            key = _parse_key(text[:line_end], i)
            if key is not None:
                parts, after = key
                if text.startswith("=", after):
                    found.append(_KeyLine(_line_number(text, i), table + parts, False, after + 1))
                    line_end = _end_of_value(text, after + 1)
        i = line_end + 1
    return found


def _match_line(text: str, location: tuple[str | int, ...]) -> tuple[int, int] | None:
    """(score, line) of the line that sets the field at `location`; see `_line_of`."""
    location = tuple(part for part in location if part != "[key]")
    keys = [str(part) for part in location if not isinstance(part, int)]
    if not keys:
        return None
    after_keys = location[len(keys)] if len(location) > len(keys) else None
    index = after_keys if isinstance(after_keys, int) else None
    best: tuple[int, int] | None = None
    for found in _toml_keys(text):
        path = found.path
        if path == keys:
            score, line = 3, found.line
            if index is not None and not found.is_header:
                item = _item_offset(text, found.value_at, index)
                if item is not None:
                    line = _line_number(text, item)
        elif not found.is_header and len(path) < len(keys) and keys[: len(path)] == path:
            score, line = 2, found.line
        elif len(path) > len(keys) and path[: len(keys)] == keys:
            score, line = 1, found.line
        else:
            continue
        if best is None or score > best[0]:
            best = (score, line)
    return best


def _line_of(text: str, location: tuple[str | int, ...]) -> int | None:
    """The line of a TOML text that sets the field at `location` (a pydantic error location).

    Best match first: the line naming the field itself (a key, a table header, or for a
    list item the item's own line); else the key whose inline value holds it; else the
    first line setting something inside it. tomllib keeps no positions, so this reads the
    text's own headers and (dotted, quoted) keys, skipping comments and multi-line values.
    """
    match = _match_line(text, location)
    return match[1] if match is not None else None


def _table_model(parent: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model a table of the policy file is read into, to list its fields."""
    if not parent:
        return Policy
    if parent == ("digest",):
        return DigestPolicy
    if parent[0] == "severities" and len(parent) == 2:
        return SeverityPolicy
    if parent[0] == "severities" and len(parent) == 3 and parent[2] == "escalation":
        return EscalationLadder
    return None


def _dotted(location: tuple[str | int, ...]) -> str:
    text = ""
    for part in location:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "(top level)"


def _explain(problem: ErrorDetails, location: tuple[str | int, ...]) -> str:
    kind = problem["type"]
    context = problem.get("ctx") or {}
    if kind.startswith("time_delta"):
        return f"{problem['input']!r} is not a duration; expected {DURATION_FORMS}"
    if kind == "extra_forbidden":
        model = _table_model(location[:-1])
        allowed = f"; expected one of {', '.join(model.model_fields)}" if model else ""
        return f"unknown field {location[-1]!r}{allowed}"
    if "[key]" in location and "expected" in context:
        return f"unknown key {problem['input']!r}; expected {context['expected']}"
    return problem["msg"].removeprefix("Value error, ")


def _describe(error: ValidationError, text: str, source: str) -> str:
    """One line per problem, in file order: source, line, dotted field path, what is wrong."""
    errors = error.errors()
    unknown_tables = [
        tuple(problem["loc"][: problem["loc"].index("[key]")])
        for problem in errors
        if "[key]" in problem["loc"]
    ]
    problems: list[tuple[int | None, str]] = []
    for problem in errors:
        location = tuple(problem["loc"])
        if "[key]" not in location and any(
            location[: len(table)] == table for table in unknown_tables
        ):
            continue  # "Field required" inside an unknown table only repeats its error
        line = _line_of(text, location)
        # A table-level check names the fields at fault: point at one the file sets.
        for field in (problem.get("ctx") or {}).get("fields", ()):
            match = _match_line(text, (*location, field))
            if match is not None and match[0] == 3:
                line, location = match[1], (*location, field)
                break
        shown = tuple(part for part in location if part != "[key]")
        where = f"line {line}" if line is not None else "(default value)"
        problems.append(
            (line, f"{source}: {where}: {_dotted(shown)}: {_explain(problem, location)}")
        )
    problems.sort(key=lambda item: (item[0] is None, item[0] or 0))
    return "\n".join(message for _, message in problems)


def policy_from_toml(text: str, *, source: str = "policy file") -> Policy:
    """Merge a TOML text over the defaults and validate; errors name the line and the field.

    Every problem is reported at once, one per line of the PolicyFileError's message.
    """
    try:
        override = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        at = _TOML_LINE.search(str(error))
        where = f"line {at.group(1)}: " if at else ""
        raise PolicyFileError(f"{source}: {where}not valid TOML: {error}") from None
    try:
        return Policy.model_validate(_merge(DEFAULT_POLICY_DATA, override))
    except ValidationError as error:
        raise PolicyFileError(_describe(error, text, source)) from None


def load_policy(path: Path | None) -> Policy:
    """The policy for new incidents: the defaults, overridden by the file when one is given."""
    if path is None:
        return default_policy()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyFileError(f"{path}: no such policy file") from None
    except OSError as error:
        raise PolicyFileError(f"{path}: cannot read the policy file ({error.strerror})") from None
    except UnicodeDecodeError as error:
        raise PolicyFileError(f"{path}: not a UTF-8 text file ({error.reason})") from None
    return policy_from_toml(text, source=str(path))
