"""Replay every saved workflow history (IncidentWorkflow and ActionItemWorkflow) against the
current code.

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
from domain.action_item import ActionItem, StartActionItem
from domain.commands import DeclareIncident
from domain.incident import Incident
from domain.notifications import EscalationNotice
from workflows.action_item import ActionItemWorkflow
from workflows.incident import IncidentWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay/{path.stem}", path.read_text(encoding="utf-8"))


def workflow_type(path: Path) -> str:
    started = load(path).events[0].workflow_execution_started_event_attributes
    return started.workflow_type.name


def workflow_name(definition: type) -> str:
    name: str = getattr(definition, "__temporal_workflow_definition").name
    return name


def with_notices(type_name: str) -> list[Path]:
    """Saved histories of `type_name` in which an escalation was notified."""
    return [
        path
        for path in HISTORIES
        if workflow_type(path) == type_name and b"notify_escalation" in path.read_bytes()
    ]


def replayer(*workflows: type) -> Replayer:
    return Replayer(
        workflows=list(workflows) or worker.WORKFLOWS, data_converter=pydantic_data_converter
    )


def test_saved_histories_of_every_workflow_type_exist_so_replay_is_not_vacuous() -> None:
    assert HISTORIES, "no tests/histories/*.json: run `python -m tests.record_histories`"
    for path in HISTORIES:
        assert load(path).events, f"{path.name} holds no events"
    recorded = {workflow_type(path) for path in HISTORIES}
    registered = {workflow_name(definition) for definition in worker.WORKFLOWS}
    assert recorded == registered, (
        f"histories of {sorted(recorded)}; worker runs {sorted(registered)}"
    )


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

    def _announce(self, notice: EscalationNotice) -> None:
        pass


async def test_replay_catches_an_incident_workflow_change_that_drops_a_command() -> None:
    found = with_notices("IncidentWorkflow")
    assert found, "no saved IncidentWorkflow history has an escalation notice"
    with pytest.raises(NondeterminismError):
        await replayer(IncidentWorkflowThatForgetsToNotify).replay_workflow(load(found[0]))


@workflow.defn(name="ActionItemWorkflow", sandboxed=False)
class ActionItemWorkflowThatForgetsToNotify(ActionItemWorkflow):
    """The same bad change in an action item: its escalations go unannounced."""

    @workflow.init
    def __init__(self, start: StartActionItem) -> None:
        super().__init__(start)

    @workflow.run
    async def run(self, start: StartActionItem) -> ActionItem:
        return await super().run(start)

    def _announce(self, notice: EscalationNotice) -> None:
        pass


async def test_replay_catches_an_action_item_workflow_change_that_drops_a_command() -> None:
    found = with_notices("ActionItemWorkflow")
    assert found, "no saved ActionItemWorkflow history has an escalation notice"
    with pytest.raises(NondeterminismError):
        await replayer(ActionItemWorkflowThatForgetsToNotify).replay_workflow(load(found[0]))
