"""The routing file: which tracker each team's action items go to, and whom to escalate to.

    [teams.payments]
    tracker = "local"              # or "github:owner/repo", or "jira:PROJECT"
    assignee = "alice"             # default assignee of the team's tickets
    team_lead = ["@payments-lead"]
    manager = ["@eng-manager"]
    leadership = ["@vp-eng"]

Without a routing file every team's items go to the local tracker and escalate to the
policy's contacts; with one, a team it does not name is refused when a review is submitted.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from domain.action_item import TeamRoute
from domain.policy import Policy, Rung

_TARGET = re.compile(r"^(local|github:[\w.-]+/[\w.-]+|jira:[A-Z][A-Z0-9_]+)$")


class RoutingError(Exception):
    """The routing file is unusable, or names no route for a team; says which and where."""


class TeamEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tracker: str = "local"
    assignee: str | None = None
    team_lead: list[str] = Field(default_factory=list)
    manager: list[str] = Field(default_factory=list)
    leadership: list[str] = Field(default_factory=list)

    @field_validator("tracker")
    @classmethod
    def _known_target(cls, value: str) -> str:
        if not _TARGET.match(value):
            raise ValueError("expected local, github:owner/repo or jira:PROJECT")
        return value


class Routing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    teams: dict[str, TeamEntry] = Field(default_factory=dict)
    source: str | None = Field(default=None, description="the file it was read from")

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
            team=team, target=entry.tracker, assignee=entry.assignee, contacts=contacts
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
