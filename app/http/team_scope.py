"""A token scoped to a team acts only on that team's work: its incidents (those that list the
team), and its action items (those the team owns). Reads are not scoped: a team sees the
incidents it learns from. Unscoped callers pass every check."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import HTTPException

from app.http.auth import Principal


def _refuse(caller: Principal, what: str) -> HTTPException:
    return HTTPException(
        403,
        f"{caller.actor.display_name} acts for team {caller.team!r} only, and {what}; "
        "use a token of that team, or one with no team",
    )


def check_incident(caller: Principal, key: str, teams: Iterable[str]) -> None:
    if caller.team is not None and caller.team not in set(teams):
        raise _refuse(caller, f"{key} does not list it among its teams")


def check_items(caller: Principal, owners: Iterable[tuple[str, str]]) -> None:
    """`owners`: (item, owning team) pairs the caller would act on."""
    if caller.team is None:
        return
    for item, team in owners:
        if team != caller.team:
            raise _refuse(caller, f"{item} is owned by {team!r}")
