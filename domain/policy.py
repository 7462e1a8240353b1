"""The severity policy: deadlines, review requirements and the escalation ladder per severity.

The defaults below are what a team gets with no policy file. A TOML file overrides any
part of them (tables merge key by key); see `load_policy`. The policy an incident runs
under is copied into its workflow input at declaration, so the deadlines of a running
incident never change behind its back and its history says which rules applied.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from domain.functions import ReviewFunction
from domain.severity import Severity

_DURATION_PART = re.compile(r"(\d+)\s*(w|d|h|m|s)")
_UNIT_SECONDS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> object:
    """Accept '90s', '15m', '4h', '2d', '1w', '1h30m' besides what pydantic takes (seconds, ISO)."""
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        if text and _DURATION_PART.sub("", text) == "":
            seconds = sum(int(n) * _UNIT_SECONDS[u] for n, u in _DURATION_PART.findall(text))
            return timedelta(seconds=seconds)
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


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

    @model_validator(mode="after")
    def _rungs_climb(self) -> EscalationLadder:
        delays = [delay for _, delay in self.rungs()]
        if any(later < earlier for earlier, later in itertools.pairwise(delays)):
            raise ValueError("rung delays must not decrease from owner to leadership")
        if self.repeat_every <= timedelta(0):
            raise ValueError("repeat_every must be longer than zero")
        return self

    def rungs(self) -> list[tuple[Rung, timedelta]]:
        return [
            (Rung.OWNER, self.owner),
            (Rung.TEAM_LEAD, self.team_lead),
            (Rung.MANAGER, self.manager),
            (Rung.LEADERSHIP, self.leadership),
        ]


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

    @model_validator(mode="after")
    def _durations_positive(self) -> SeverityPolicy:
        for name in ("acknowledge_within", "status_update_every", "resolve_within"):
            if getattr(self, name) <= timedelta(0):
                raise ValueError(f"{name} must be longer than zero")
        return self


class Policy(_Strict):
    severities: dict[Severity, SeverityPolicy]
    contacts: dict[Rung, list[str]] = Field(
        default_factory=dict,
        description="who is notified at each rung above the owner, e.g. team_lead = ['@sre-lead']",
    )

    @model_validator(mode="after")
    def _every_severity_covered(self) -> Policy:
        missing = [s.value for s in Severity if s not in self.severities]
        if missing:
            raise ValueError(f"the policy has no entry for {', '.join(missing)}")
        return self

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
        },
        "SEV2": {
            "acknowledge_within": "15m",
            "status_update_every": "1h",
            "resolve_within": "24h",
            "review_within_business_days": 5,
            "required_review_functions": ["engineering", "operations", "product"],
            "escalation": _ladder("30m", "2h", "8h", "8h"),
        },
        "SEV3": {
            "acknowledge_within": "1h",
            "status_update_every": "4h",
            "resolve_within": "3d",
            "review_within_business_days": 10,
            "required_review_functions": ["engineering", "operations"],
            "escalation": _ladder("4h", "1d", "3d", "1d"),
        },
        "SEV4": {
            "acknowledge_within": "4h",
            "status_update_every": "1d",
            "resolve_within": "14d",
            "review_within_business_days": 20,
            "required_review_functions": ["engineering"],
            "escalation": _ladder("1d", "3d", "7d", "7d"),
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


def _line_of(text: str, location: tuple[str | int, ...]) -> int | None:
    """Best-effort line number of a dotted field path in a TOML text (tomllib keeps none)."""
    keys = [str(part) for part in location if not isinstance(part, int)]
    if not keys:
        return None
    table: list[str] = []
    best: int | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        header = re.fullmatch(r"\[+\s*([^\]]+?)\s*\]+", line)
        if header:
            table = [part.strip().strip("\"'") for part in header.group(1).split(".")]
            if table == keys[: len(table)] and len(table) == len(keys):
                best = number
            continue
        key = re.match(r"([A-Za-z0-9_\-\"'.]+)\s*=", line)
        if key:
            dotted = [part.strip().strip("\"'") for part in key.group(1).split(".")]
            path = table + dotted
            if path == keys[: len(path)]:
                best = number
    return best


def policy_from_toml(text: str, *, source: str = "policy file") -> Policy:
    """Merge a TOML text over the defaults and validate; errors name the line and the field."""
    try:
        override = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PolicyFileError(f"{source}: not valid TOML: {error}") from None
    try:
        return Policy.model_validate(_merge(DEFAULT_POLICY_DATA, override))
    except ValidationError as error:
        problems = []
        for problem in error.errors():
            location = tuple(problem["loc"])
            field = ".".join(str(part) for part in location) or "(top level)"
            line = _line_of(text, location)
            where = f"line {line}" if line is not None else "(default value)"
            message = str(problem["msg"]).removeprefix("Value error, ")
            problems.append(f"{source}: {where}: {field}: {message}")
        raise PolicyFileError("\n".join(problems)) from None


def load_policy(path: Path | None) -> Policy:
    """The policy for new incidents: the defaults, overridden by the file when one is given."""
    if path is None:
        return default_policy()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise PolicyFileError(f"{path}: cannot read the policy file ({error.strerror})") from None
    return policy_from_toml(text, source=str(path))
