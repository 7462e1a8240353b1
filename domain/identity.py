"""Who may do what: roles, the permissions they grant, and the actor every command carries.

The actor always comes from a credential (an API token, an OIDC token, the operating-system
user of a CLI that talks to Temporal directly, a tracker's signed webhook, or afteraction's own
schedules), never from a field a caller types.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, Field


class Role(StrEnum):
    VIEWER = "viewer"
    RESPONDER = "responder"
    REVIEWER = "reviewer"
    APPROVER = "approver"
    AUDITOR = "auditor"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"  # incidents, items, reviews, tickets
    RESPOND = "respond"  # declare, acknowledge, roles, notes, severity, mitigate, resolve, cancel
    REVIEW = "review"  # schedule and submit reviews; add, extend and verify items; retry tickets
    APPROVE = "approve"  # accept the risk of an action item
    AUDIT = "audit"  # read everything, export evidence
    ADMIN = "admin"  # API tokens


# Least privilege, each role a superset of the one it grows from: a reviewer also responds,
# an approver also reviews. An auditor reads and exports but changes nothing.
GRANTS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.RESPONDER: frozenset({Permission.READ, Permission.RESPOND}),
    Role.REVIEWER: frozenset({Permission.READ, Permission.RESPOND, Permission.REVIEW}),
    Role.APPROVER: frozenset(
        {Permission.READ, Permission.RESPOND, Permission.REVIEW, Permission.APPROVE}
    ),
    Role.AUDITOR: frozenset({Permission.READ, Permission.AUDIT}),
    Role.ADMIN: frozenset(Permission),
}


def permissions_of(roles: frozenset[Role]) -> frozenset[Permission]:
    granted: frozenset[Permission] = frozenset()
    for role in roles:
        granted |= GRANTS[role]
    return granted


def roles_granting(permission: Permission) -> list[Role]:
    """The roles that hold `permission`, least powerful first (for messages)."""
    return [role for role in Role if permission in GRANTS[role]]


class ActorKind(StrEnum):
    TOKEN = "token"
    OIDC = "oidc"
    CLI = "cli"
    TRACKER = "tracker"
    SCHEDULE = "schedule"


class Actor(BaseModel):
    """Who did something, as the credential proved it."""

    kind: ActorKind
    subject: str = Field(
        min_length=1, max_length=255, description="the token's name, the OIDC subject, ..."
    )
    display_name: str = Field(min_length=1, max_length=255)
    via: str | None = Field(
        default=None,
        max_length=500,
        description="what vouched for it: the token's name, the OIDC issuer, the CLI's host, "
        "the tracker",
    )

    @property
    def label(self) -> str:
        """How a record names the actor in one line: token:ci-bot, cli:alice@laptop,
        oidc:Alice Smith (an OIDC subject is an opaque id, so its display name stands in)."""
        name = self.display_name if self.kind is ActorKind.OIDC else self.subject
        return f"{self.kind.value}:{name}"


# Escalations, reminders and closings that afteraction's own timers make.
SCHEDULES = Actor(
    kind=ActorKind.SCHEDULE,
    subject="deadlines",
    display_name="afteraction deadlines",
    via="durable timers",
)

# A command's or a record's actor; None in histories from before actors were recorded.
ActorField = Annotated[
    Actor | None, Field(default=None, description="who did it, as their credential proved")
]
