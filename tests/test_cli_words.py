"""Refusals in the CLI's words: the workflows name their updates, the CLI its commands."""

from __future__ import annotations

import pytest

from app.cli.words import CLI_COMMANDS, in_cli_words
from app.services.actions import COMMANDS as ITEM_COMMANDS
from app.services.incidents import COMMANDS as INCIDENT_COMMANDS


def test_every_update_has_its_cli_command() -> None:
    assert set(CLI_COMMANDS) == set(INCIDENT_COMMANDS) | set(ITEM_COMMANDS)


def test_a_command_in_the_wrong_state_names_the_cli_commands() -> None:
    said = (
        "cannot submit_review an incident that is tracking; allowed now: add_action_item, "
        "assign_role, add_timeline_event, set_severity"
    )
    assert in_cli_words(said) == (
        "cannot run `review submit` on an incident that is tracking; allowed now: "
        "`actions add`, `role`, `note`, `severity`"
    )


def test_a_final_incident_allows_nothing() -> None:
    said = "cannot cancel an incident that is closed; allowed now: nothing: the incident is final"
    assert in_cli_words(said) == (
        "cannot run `cancel` on an incident that is closed; allowed now: nothing: the incident "
        "is final"
    )


def test_a_command_too_large_is_named_as_typed() -> None:
    said = "the add_timeline_event command is 300 KiB once encoded, over the 256 KiB"
    assert in_cli_words(said) == "the `note` command is 300 KiB once encoded, over the 256 KiB"


@pytest.mark.parametrize(
    "said",
    [
        "cancel needs a reason that says why this is not an incident",
        "no incident INC-1; `afteraction list` shows the incidents",
        "incident INC-1 is closed; nothing about it can change now",
    ],
)
def test_other_messages_pass_unchanged(said: str) -> None:
    assert in_cli_words(said) == said


def test_an_extension_not_later_than_the_due_date_says_how_to_count_from_it() -> None:
    said = "the new due time must be later than the current one (2026-12-30T00:25+00:00)"
    assert in_cli_words(said) == (
        f"{said}; `--due +14d` counts from the current due date, `--due 14d` from now"
    )
