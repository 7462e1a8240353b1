"""TicketReconciler: catches the ticket changes webhooks missed, run by a Temporal Schedule.

Each run finds the targets that have open action items (the known ones counted, only the open
items on unknown targets listed), reads each target's tickets updated since its watermark
(targets in parallel, one activity each), and signals `ticket_changed` to the items whose
ticket disagrees with them. A full sweep (its own, daily schedule) reads every
ticket since each target's oldest open item instead, to repair drift no recent change shows.
The watermarks travel to the next run as this
run's result (`workflow.get_last_completion_result`): a target that failed keeps its old
watermark, so nothing it missed is skipped; a target seen for the first time is read from when
its oldest open item started.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from domain.reconcile import (
        WORKFLOW_NAME,
        ReconcileRequest,
        ReconcileResult,
        ReconcileTarget,
        TargetReport,
        TargetsRequest,
        TargetWindow,
    )

LIST_TIMEOUT = timedelta(minutes=1)
# Runs recorded before this listed every open item to find the targets.
FIND_TARGETS_BY_COUNT = "find-reconcile-targets-by-count"
# A target read pages through its tickets: generous, but a hung tracker must not hold the run.
TARGET_TIMEOUT = timedelta(minutes=2)
# A run is retried by the next scheduled run, so an activity gives up after a few attempts.
RECONCILE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=3,
    non_retryable_error_types=["TrackerRefused"],
)


@workflow.defn(name=WORKFLOW_NAME)
class TicketReconcilerWorkflow:
    @workflow.run
    async def run(self, request: ReconcileRequest) -> ReconcileResult:
        last = workflow.get_last_completion_result(ReconcileResult)
        watermarks = dict(last.watermarks if last is not None else {})
        watermarks.update(request.watermarks)
        targets: list[TargetWindow]
        if workflow.patched(FIND_TARGETS_BY_COUNT):
            targets = await workflow.execute_activity(
                "find_reconcile_targets",
                TargetsRequest(known=watermarks, full_sweep=request.full_sweep),
                result_type=list[TargetWindow],
                start_to_close_timeout=LIST_TIMEOUT,
                retry_policy=RECONCILE_RETRY,
            )
        else:
            targets = await workflow.execute_activity(
                "list_reconcile_targets",
                result_type=list[TargetWindow],
                start_to_close_timeout=LIST_TIMEOUT,
                retry_policy=RECONCILE_RETRY,
            )
        reports = await asyncio.gather(
            *(
                self._read(
                    t,
                    t.oldest_open_at
                    if request.full_sweep
                    else watermarks.get(t.target, t.oldest_open_at),
                )
                for t in targets
            )
        )
        signalled = 0
        for report in reports:
            for drift in report.drift:
                try:
                    handle = workflow.get_external_workflow_handle(drift.workflow_id)
                    await handle.signal("ticket_changed", drift.change)
                    signalled += 1
                except Exception as error:  # the item ended meanwhile: nothing to tell
                    workflow.logger.info("could not signal %s: %s", drift.workflow_id, error)
        # Only targets with open items keep a watermark; one that gets items again is read from
        # its oldest open item.
        return ReconcileResult(
            watermarks={report.target: report.watermark for report in reports},
            reports=list(reports),
            signalled=signalled,
        )

    async def _read(self, target: TargetWindow, since: datetime) -> TargetReport:
        request = ReconcileTarget(target=target.target, since=since)
        try:
            report: TargetReport = await workflow.execute_activity(
                "reconcile_target",
                request,
                result_type=TargetReport,
                start_to_close_timeout=TARGET_TIMEOUT,
                retry_policy=RECONCILE_RETRY,
            )
        except ActivityError as error:
            return TargetReport(
                target=request.target,
                since=request.since,
                watermark=request.since,  # read it again from here next run
                error=str(error.cause or error),
            )
        return report
