"""Replay every saved IncidentWorkflow history against the current code.

A failure here means a change to workflows/ would break incidents already running (or make the
audit record of finished ones unprovable): make the change compatible (workflow.patched) instead
of editing the saved histories. See tests/histories/README.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

import worker
from domain.commands import DeclareIncident
from domain.incident import Incident
from domain.notifications import EscalationNotice
from workflows.incident import IncidentWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("incident-*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay/{path.stem}", path.read_text(encoding="utf-8"))


def replayer(*workflows: type) -> Replayer:
    return Replayer(
        workflows=list(workflows) or worker.WORKFLOWS, data_converter=pydantic_data_converter
    )


def test_saved_histories_exist_so_replay_is_not_vacuous() -> None:
    assert HISTORIES, "no tests/histories/incident-*.json: run `python -m tests.record_histories`"
    for path in HISTORIES:
        assert load(path).events, f"{path.name} holds no events"


@pytest.mark.parametrize("path", HISTORIES, ids=[path.name for path in HISTORIES])
async def test_saved_history_replays_without_nondeterminism(path: Path) -> None:
    result = await replayer().replay_workflow(load(path))
    assert result.replay_failure is None


@workflow.defn(name="IncidentWorkflow", sandboxed=False)
class IncidentWorkflowThatForgetsToNotify(IncidentWorkflow):
    """A plausible bad change: escalations are recorded but no longer notified."""

    @workflow.init
    def __init__(self, declaration: DeclareIncident) -> None:
        super().__init__(declaration)

    @workflow.run
    async def run(self, declaration: DeclareIncident) -> Incident:
        return await super().run(declaration)

    def _start_notification(self, notice: EscalationNotice) -> None:
        pass


async def test_replay_catches_a_workflow_change_that_drops_a_command() -> None:
    with_notices = [path for path in HISTORIES if b"notify_escalation" in path.read_bytes()]
    assert with_notices, "no saved history has an escalation notice"
    with pytest.raises(NondeterminismError):
        await replayer(IncidentWorkflowThatForgetsToNotify).replay_workflow(load(with_notices[0]))
