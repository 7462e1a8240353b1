"""Policies with short durations, so lifecycle tests run in seconds on the dev server."""

from __future__ import annotations

from typing import Any

from domain.policy import DEFAULT_POLICY_DATA, Policy, _merge


def fast_policy(**severity_overrides: Any) -> Policy:
    """Every severity: ack 2s, status every 4s, resolve 6s, review 3s; ladder 0/1/2/3s."""
    fast: dict[str, Any] = {
        "acknowledge_within": "2s",
        "status_update_every": "4s",
        "resolve_within": "6s",
        "review_within": "3s",
        "escalation": {
            "owner": "0s",
            "team_lead": "1s",
            "manager": "2s",
            "leadership": "3s",
            "repeat_every": "2s",
        },
        **severity_overrides,
    }
    data = _merge(
        DEFAULT_POLICY_DATA, {"severities": {s: fast for s in ("SEV1", "SEV2", "SEV3", "SEV4")}}
    )
    return Policy.model_validate(data)


def slow_policy() -> Policy:
    """Deadlines far in the future: tests of commands see no escalations."""
    return fast_policy(
        acknowledge_within="1h", status_update_every="1h", resolve_within="1h", review_within="1h"
    )
