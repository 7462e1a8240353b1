"""Day-scale deadlines under the DEFAULT policy, on Temporal's time-skipping test server.

The worker is the product's own (worker.build_worker); only the clock is virtual. Time moves
only when a test calls env.sleep, so each check runs at an exact point of the ladder.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from domain.commands import Acknowledge, Cancel, Transition
from domain.deadlines import add_business_days
from domain.escalation import DeadlineKind, EscalationRecord
from domain.incident import Incident
from domain.policy import Rung, default_policy
from domain.severity import Severity
from tests.helpers import declare, eventually, sleep_until
from workflows.incident import IncidentWorkflow

Handle = WorkflowHandle[IncidentWorkflow, Incident]

# The virtual clock stamps a timer's workflow task a few milliseconds after it is due.
TOLERANCE = timedelta(seconds=5)
FRIDAY = 4


async def state(handle: Handle) -> Incident:
    return await handle.query(IncidentWorkflow.state)


def escalations_for(incident: Incident, kind: DeadlineKind) -> list[EscalationRecord]:
    return [record for record in incident.escalations if record.deadline is kind]


async def steps_after(
    env: WorkflowEnvironment,
    handle: Handle,
    kind: DeadlineKind,
    moment: datetime,
    *,
    expect: int,
) -> list[EscalationRecord]:
    """Skip to `moment`, then the escalations for `kind`: polled (in real time) until `expect`
    are there, in case the last workflow task is still running; the caller asserts the count."""
    await sleep_until(env, moment)
    try:
        incident = await eventually(
            lambda: state(handle),
            lambda incident: len(escalations_for(incident, kind)) >= expect,
            timeout=5,
        )
    except AssertionError:
        incident = await state(handle)
    return escalations_for(incident, kind)


async def test_unacknowledged_sev2_walks_the_default_ladder_and_repeats_every_eight_hours(
    ts_env: WorkflowEnvironment, ts_worker: tuple[Client, str]
) -> None:
    client, task_queue = ts_worker
    handle = await declare(client, task_queue, default_policy(), severity=Severity.SEV2)
    try:
        declared_at = (await state(handle)).clock.declared_at
        due_at = declared_at + timedelta(minutes=15)
        minute = timedelta(minutes=1)
        ack = DeadlineKind.ACKNOWLEDGE

        # (delay after the deadline, rungs notified by then); a minute either side of each step.
        ladder = [
            (timedelta(0), Rung.OWNER),
            (timedelta(minutes=30), Rung.TEAM_LEAD),
            (timedelta(hours=2), Rung.MANAGER),
            (timedelta(hours=8), Rung.LEADERSHIP),
            (timedelta(hours=16), Rung.LEADERSHIP),
            (timedelta(hours=24), Rung.LEADERSHIP),
        ]
        for count, (delay, rung) in enumerate(ladder):
            before = await steps_after(ts_env, handle, ack, due_at + delay - minute, expect=count)
            assert len(before) == count, f"step {count} ({rung}) came early: {before}"
            after = await steps_after(
                ts_env, handle, ack, due_at + delay + minute, expect=count + 1
            )
            assert len(after) == count + 1, f"step {count} ({rung}) did not come: {after}"
            step = after[-1]
            assert step.rung is rung
            assert step.due_at == due_at
            assert delay <= step.at - step.due_at <= delay + TOLERANCE

        steps = escalations_for(await state(handle), ack)
        assert [step.notified for step in steps] == [
            ["alice"],
            ["sre-team-lead"],
            ["engineering-manager"],
            ["vp-engineering"],
            ["vp-engineering"],
            ["vp-engineering"],
        ]
        # Meanwhile the hourly status reminders and the 24h resolve deadline kept their own pace.
        incident = await state(handle)
        reminders = escalations_for(incident, DeadlineKind.STATUS_UPDATE)
        assert len(reminders) == 24
        [resolve, *_] = escalations_for(incident, DeadlineKind.RESOLVE)
        assert resolve.due_at == declared_at + timedelta(hours=24)
    finally:
        await handle.terminate("test done")


async def test_resolved_sev2_without_review_escalates_after_five_business_days(
    ts_env: WorkflowEnvironment, ts_worker: tuple[Client, str]
) -> None:
    client, task_queue = ts_worker
    # Resolve on a Friday afternoon, so the five business days span a weekend.
    now = await ts_env.get_current_time()
    days_to_friday = (FRIDAY - now.weekday()) % 7 or 7
    friday = (now + timedelta(days=days_to_friday)).replace(
        hour=15, minute=0, second=0, microsecond=0
    )
    await sleep_until(ts_env, friday)

    handle = await declare(client, task_queue, default_policy(), severity=Severity.SEV2)
    try:
        await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
        await handle.execute_update(IncidentWorkflow.resolve, Transition(note="rolled back"))
        resolved_at = (await state(handle)).clock.resolved_at
        assert resolved_at is not None
        assert resolved_at.weekday() == FRIDAY

        due_at = add_business_days(resolved_at, 5)
        assert due_at - resolved_at == timedelta(days=7)  # Saturday and Sunday do not count

        review = DeadlineKind.REVIEW
        # Five calendar days later (Wednesday) nothing is due yet, nor just before the deadline.
        wednesday = resolved_at + timedelta(days=5)
        assert await steps_after(ts_env, handle, review, wednesday, expect=0) == []
        just_before = due_at - timedelta(minutes=1)
        assert await steps_after(ts_env, handle, review, just_before, expect=0) == []

        [step] = await steps_after(ts_env, handle, review, due_at + timedelta(minutes=1), expect=1)
        assert step.due_at == due_at
        assert step.at.weekday() == FRIDAY
        assert (step.rung, step.notified) == (Rung.OWNER, ["bob"])
        assert timedelta(0) <= step.at - due_at <= TOLERANCE
        assert "review not submitted within 5 business days" in step.reason

        # Then the same ladder as any missed deadline: the team lead 30 minutes later.
        steps = await steps_after(ts_env, handle, review, due_at + timedelta(minutes=31), expect=2)
        assert [s.rung for s in steps] == [Rung.OWNER, Rung.TEAM_LEAD]
        # Resolved, so no response deadline fired during the week.
        incident = await state(handle)
        assert {record.deadline for record in incident.escalations} == {review}
    finally:
        await handle.terminate("test done")


async def test_worker_from_worker_py_runs_incidents_on_the_time_skipping_server(
    ts_env: WorkflowEnvironment, ts_worker: tuple[Client, str]
) -> None:
    """A declared-and-cancelled SEV1 completes; its result comes back through the pydantic
    converter with the clock stamped by the virtual time."""
    client, task_queue = ts_worker
    handle = await declare(client, task_queue, default_policy(), severity=Severity.SEV1)
    await ts_env.sleep(timedelta(minutes=6))  # past the SEV1 five-minute acknowledge deadline
    await handle.execute_update(IncidentWorkflow.cancel, Cancel(reason="synthetic check"))

    result = await handle.result()

    assert result.state.value == "cancelled"
    assert result.clock.cancelled_at is not None
    # The first workflow task (which stamps declared_at) may run a moment after the sleep began.
    assert result.clock.cancelled_at - result.clock.declared_at > timedelta(minutes=5)
    assert [record.rung.value for record in result.escalations][:1] == ["owner"]
    [owner] = escalations_for(result, DeadlineKind.ACKNOWLEDGE)
    assert owner.due_at == result.clock.declared_at + timedelta(minutes=5)
