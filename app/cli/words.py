"""Refusals in the CLI's own words.

The workflows and the services name a command by its Temporal update (`schedule_review`,
`assign_role`); the API keeps those names. A person at a terminal typed `review schedule` or
`role`, so the CLI says those instead. Only the refusals whose shape is known are reworded:
any other message passes through unchanged.
"""

from __future__ import annotations

import re

# The `afteraction` command that sends each update (incidents' and action items').
CLI_COMMANDS: dict[str, str] = {
    "acknowledge": "ack",
    "assign_role": "role",
    "add_timeline_event": "note",
    "set_severity": "severity",
    "mitigate": "mitigate",
    "resolve": "resolve",
    "cancel": "cancel",
    "schedule_review": "review schedule",
    "submit_review": "review submit",
    "add_action_item": "actions add",
    "extend_deadline": "actions extend",
    "verify": "actions verify",
    "accept_risk": "actions accept",
}

# workflows/incident.py, IncidentWorkflow._require_state.
_WRONG_STATE = re.compile(
    r"^cannot (?P<command>\w+) an incident that is (?P<state>\w+); allowed now: (?P<allowed>.*)$",
    re.DOTALL,
)
# app/services/incidents.py, check_size.
_TOO_LARGE = re.compile(r"^the (?P<command>\w+) command is ")
# workflows/action_item.py, the extend_deadline validator.
_NOT_LATER = "the new due time must be later than the current one"


def _command(name: str) -> str:
    return f"`{CLI_COMMANDS.get(name, name)}`"


def in_cli_words(message: str) -> str:
    """`message`, a refusal from a service or the API, naming the CLI's commands."""
    wrong_state = _WRONG_STATE.match(message)
    if wrong_state is not None:
        allowed = wrong_state["allowed"]
        if not allowed.startswith("nothing"):
            allowed = ", ".join(_command(name) for name in allowed.split(", "))
        return (
            f"cannot run {_command(wrong_state['command'])} on an incident that is "
            f"{wrong_state['state']}; allowed now: {allowed}"
        )
    too_large = _TOO_LARGE.match(message)
    if too_large is not None:
        return f"the {_command(too_large['command'])} command is " + message[too_large.end() :]
    if message.startswith(_NOT_LATER):
        return message + "; `--due +14d` counts from the current due date, `--due 14d` from now"
    return message
