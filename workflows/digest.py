"""WeeklyDigest: one run per slot of the digest's Temporal Schedule (or `digest send --now`).

A run asks which slot to send: the latest at or before the run's own time, not the time it was
scheduled for, so the runs the server starts late after an outage (catch-up) all send the
latest week, and every run after the first finds its deliveries recorded as sent and sends
nothing (activities/digest.py). The schedule never overlaps its runs, so two runs never send
one slot at once (unless an operator forces it: a backfill or trigger with overlap AllowAll,
whose runs may both find the slot's delivery `sending` and both send). Each channel is its own
activity: a failing webhook does not hold up the email, and the run fails (visible on the
schedule) only after both have had their tries.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.digest import DigestActivities
    from domain.digest_runs import (
        WORKFLOW_NAME,
        Channel,
        Delivery,
        DeliveryOutcome,
        DigestPlan,
        DigestRequest,
        DigestRunResult,
        PlanRequest,
    )

PLAN_TIMEOUT = timedelta(seconds=30)
# A send waits on a mail server; a dead worker is noticed by its missing heartbeat instead.
SEND_TIMEOUT = timedelta(minutes=2)
HEARTBEAT_TIMEOUT = timedelta(seconds=5)
# Bounded: a digest hours late is still worth sending, one a day late is not.
SEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    maximum_attempts=12,
    non_retryable_error_types=["PolicyFileError", "BadWeek"],
)


@workflow.defn(name=WORKFLOW_NAME)
class WeeklyDigestWorkflow:
    @workflow.run
    async def run(self, request: DigestRequest) -> DigestRunResult:
        plan = await workflow.execute_activity_method(
            DigestActivities.plan_digest,
            PlanRequest(at=workflow.now(), delivery=request.delivery, week=request.week),
            start_to_close_timeout=PLAN_TIMEOUT,
            retry_policy=SEND_RETRY,
        )
        outcomes = [await self._send(plan, channel) for channel in plan.channels]
        failed = [o for o in outcomes if o.status == "failed"]
        if failed:
            raise ApplicationError(
                "; ".join(f"{o.channel}: {o.detail}" for o in failed), type="DigestNotDelivered"
            )
        if plan.skipped:
            workflow.logger.info("digest %s not sent: %s", plan.delivery, plan.skipped)
        return DigestRunResult(slot=plan.slot, delivery=plan.delivery, outcomes=outcomes)

    async def _send(self, plan: DigestPlan, channel: Channel) -> DeliveryOutcome:
        delivery = Delivery(
            task_queue=workflow.info().task_queue,
            slot=plan.slot,
            timezone=plan.timezone,
            delivery=plan.delivery,
            channel=channel,
        )
        send = (
            DigestActivities.send_digest_email
            if channel is Channel.EMAIL
            else DigestActivities.send_digest_chat
        )
        try:
            return await workflow.execute_activity_method(
                send,
                delivery,
                start_to_close_timeout=SEND_TIMEOUT,
                heartbeat_timeout=HEARTBEAT_TIMEOUT,
                retry_policy=SEND_RETRY,
            )
        except ActivityError as error:
            return DeliveryOutcome(
                channel=channel, status="failed", detail=str(error.cause or error)[:400]
            )
