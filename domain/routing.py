"""The routing file: which tracker each team's action items go to, and whom to escalate to.

    [teams.payments]
    tracker = "local"              # or "github:owner/repo", or "jira:PROJECT"
    assignee = "alice"             # default assignee of the team's tickets
    team_lead = ["@payments-lead"]
    manager = ["@eng-manager"]
    leadership = ["@vp-eng"]

    [teams.billing]
    tracker = "jira:PAY"
    assignee = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"  # Cloud account id (DC: username)
    team_lead = ["557058:0d2c3a55-3f0e-4d43-9a2b-5b1a6c7e9f10"]
    components = ["billing-api"]   # Jira components of the team's tickets
    issue_type = "Bug"             # overrides the project's issue type

    [jira.PAY]                     # optional, per Jira project
    issue_type = "Task"
    priorities = { P1 = "Highest", P2 = "High", P3 = "Medium", P4 = "Low" }
    done_transition = "Ship it"    # by default: any transition to a done-category status
    reopen_transition = "Send back"  # by default: any transition to a to-do-category status

Without a routing file every team's items go to the local tracker and escalate to the
policy's contacts; with one, a team it does not name is refused when a review is submitted.
Team values travel with the item (TeamRoute); the `[jira.KEY]` tables are read by the worker's
Jira adapter (integrations/registry.py).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from domain.action_item import Priority, TeamRoute
from domain.policy import Policy, Rung

JIRA_PREFIX = "jira:"
JIRA_PROJECT_KEY = r"[A-Z][A-Z0-9_]+"
_TARGET = re.compile(rf"^(local|github:[\w.-]+/[\w.-]+|{JIRA_PREFIX}{JIRA_PROJECT_KEY})$")
_PROJECT_KEY = re.compile(rf"^{JIRA_PROJECT_KEY}$")
# Jira's own names for its five default priorities, mapped from the item's priority.
DEFAULT_JIRA_PRIORITIES: dict[Priority, str] = {
    Priority.P1: "Highest",
    Priority.P2: "High",
    Priority.P3: "Medium",
    Priority.P4: "Low",
}


class RoutingError(Exception):
    """The routing file is unusable, or names no route for a team; says which and where."""


class TeamEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracker: str = "local"
    assignee: str | None = None
    team_lead: list[str] = Field(default_factory=list)
    manager: list[str] = Field(default_factory=list)
    leadership: list[str] = Field(default_factory=list)
    components: list[str] = Field(default_factory=list)
    issue_type: str | None = None

    @field_validator("tracker")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if not _TARGET.match(value):
            raise ValueError("expected local, github:owner/repo or jira:PROJECT")
        return value

    @field_validator("issue_type")
    @classmethod
    def _named(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must name a Jira issue type, e.g. Task")
        return value.strip() if value is not None else None

    @field_validator("components")
    @classmethod
    def _component_names(cls, value: list[str]) -> list[str]:
        if any(not name.strip() for name in value):
            raise ValueError("a component name must not be empty")
        return [name.strip() for name in value]

    @model_validator(mode="after")
    def _jira_fields_need_jira(self) -> TeamEntry:
        if not self.tracker.startswith(JIRA_PREFIX):
            used = [name for name in ("components", "issue_type") if getattr(self, name)]
            if used:
                raise ValueError(
                    f"{' and '.join(used)} apply to jira:PROJECT trackers only "
                    f"(this team's tracker is {self.tracker!r})"
                )
        return self


class JiraProjectEntry(BaseModel):
    """A `[jira.KEY]` table: how afteraction files and moves tickets in one Jira project."""

    model_config = ConfigDict(extra="forbid")

    issue_type: str = "Task"
    priorities: dict[Priority, str] = Field(default_factory=lambda: dict(DEFAULT_JIRA_PRIORITIES))
    done_transition: str | None = None
    reopen_transition: str | None = None

    @field_validator("issue_type", "done_transition", "reopen_transition")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value.strip() if value is not None else None

    @field_validator("priorities")
    @classmethod
    def _complete(cls, value: dict[Priority, str]) -> dict[Priority, str]:
        # A partial table keeps Jira's default names for the priorities it leaves out.
        return {**DEFAULT_JIRA_PRIORITIES, **{p: name.strip() for p, name in value.items()}}


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teams: dict[str, TeamEntry] = Field(default_factory=dict)
    jira: dict[str, JiraProjectEntry] = Field(default_factory=dict)
    source: str | None = Field(default=None, description="the file it was read from")

    @field_validator("jira")
    @classmethod
    def _project_keys(cls, value: dict[str, JiraProjectEntry]) -> dict[str, JiraProjectEntry]:
        for key in value:
            if not _PROJECT_KEY.match(key):
                raise ValueError(
                    f"[jira.{key}]: expected a Jira project key (upper case, e.g. [jira.PAY])"
                )
        return value

    def jira_project(self, key: str) -> JiraProjectEntry:
        """The `[jira.KEY]` settings, or the defaults when the file has no such table."""
        return self.jira.get(key) or JiraProjectEntry()

    def jira_people(self) -> frozenset[str]:
        """Everyone the file names for a Jira team (assignees and contacts, without '@'):
        the Jira adapter turns `@name` into a mention for these."""
        people: set[str] = set()
        for entry in self.teams.values():
            if entry.tracker.startswith(JIRA_PREFIX):
                named = [entry.assignee or "", *entry.team_lead, *entry.manager, *entry.leadership]
                people.update(name.lstrip("@") for name in named if name.lstrip("@"))
        return frozenset(people)

    def route(self, team: str, policy: Policy) -> TeamRoute:
        """The team's route; contacts the file leaves out come from the policy."""
        if self.source is None:
            return TeamRoute(team=team, target="local", contacts=dict(policy.contacts))
        entry = self.teams.get(team)
        if entry is None:
            known = ", ".join(sorted(self.teams)) or "none"
            raise RoutingError(
                f"team {team!r} is not in the routing file {self.source} (teams there: {known}); "
                f"add a [teams.{team}] table or use one of those teams"
            )
        contacts = dict(policy.contacts)
        for rung, people in (
            (Rung.TEAM_LEAD, entry.team_lead),
            (Rung.MANAGER, entry.manager),
            (Rung.LEADERSHIP, entry.leadership),
        ):
            if people:
                contacts[rung] = people
        return TeamRoute(
            team=team,
            target=entry.tracker,
            assignee=entry.assignee,
            contacts=contacts,
            components=entry.components,
            issue_type=entry.issue_type,
        )


def load_routing(path: Path | None) -> Routing:
    if path is None:
        return Routing()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise RoutingError(f"{path}: cannot read the routing file ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise RoutingError(f"{path}: not valid TOML: {error}") from None
    try:
        return Routing.model_validate({**data, "source": str(path)})
    except ValidationError as error:
        problems = [
            f"{path}: {'.'.join(str(p) for p in e['loc'])}: "
            f"{str(e['msg']).removeprefix('Value error, ')}"
            for e in error.errors()
        ]
        raise RoutingError("\n".join(problems)) from None
