"""ActionItemWorkflow: one durable workflow per action item, until it is done or accepted.

It creates the ticket exactly once (the idempotency key is this workflow's id, written into
the ticket and looked up before creating), reminds before the due date, walks the ladder
when the item is overdue or stalled, follows the ticket's state through `ticket_changed`
signals, and reports every change to its incident.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError

from workflows.common import (
    BOUNDED_HANDOVER,
    MIN_TIMER,
    Background,
    RunLength,
    notify_escalation,
    rejected,
)
from workflows.facts import FactsWriter
from workflows.upserts import SearchAttributeWriter

with workflow.unsafe.imports_passed_through():
    from domain import search_attributes as sa
    from domain.action_item import (
        PROVING_INCIDENTS,
        AcceptRisk,
        ActionItem,
        ActionItemCarriedOver,
        ActionItemState,
        ActionItemSummary,
        ExtendDeadline,
        Extension,
        MissedStep,
        RiskAcceptance,
        StartActionItem,
        TicketChanged,
        TicketStatus,
        Verification,
        VerifyItem,
        action_item_id,
    )
    from domain.deadlines import LADDER, rung_for_step, step_at, steps_due
    from domain.escalation import DeadlineKind, EscalationRecord
    from domain.facts import action_item_facts
    from domain.notifications import EscalationNotice
    from domain.policy import Rung, format_duration
    from domain.recurrence import RepeatProven, next_rung
    from domain.tickets import (
        CommentOnTicket,
        EnsureTicket,
        Ticket,
        TicketChange,
        TicketDraft,
        UpdateTicket,
    )

# One tracker call (a look-up and a create at most). The server retries an attempt only when
# this runs out, so it is also how long a ticket waits after a worker dies mid-call: short,
# but longer than an attempt can take (the adapters bound their calls well under it, see
# store/database.py SQLITE_BUSY_TIMEOUT), so a retry never runs beside a live attempt.
TRACKER_TIMEOUT = timedelta(seconds=20)
TRACKER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["TrackerRefused"],
)
# A refused ticket creation (e.g. a tracker not configured) is tried again this often.
TICKET_RETRY_EVERY = timedelta(hours=1)
SEEN_DELIVERIES_KEPT = 200
REPORT_ONLY_CHANGES = "report-only-changes-to-incident"
IGNORE_OTHER_TICKETS = "ignore-changes-to-other-tickets"
# Histories recorded before this applied every status change in the order it arrived.
APPLY_NEWER_TICKET_CHANGES = "apply-only-newer-ticket-status-changes"
# Histories recorded before this forgot a missed deadline's ladder while the ticket was closed,
# so a reopened item that was still overdue told the owner again.
LADDER_WAITS_WHILE_CLOSED = "keep-the-ladder-while-the-ticket-is-closed"
# Histories recorded before this left an accepted item's ticket open, with a comment.
CLOSE_ACCEPTED_AS_NOT_PLANNED = "close-accepted-tickets-as-not-planned"
ITEM_DEADLINES = (DeadlineKind.ACTION_DUE, DeadlineKind.ACTION_STALLED)


@workflow.defn(name="ActionItemWorkflow")
class ActionItemWorkflow:
    @workflow.init
    def __init__(self, start: StartActionItem) -> None:
        if start.carried_over is not None:
            self._item = start.carried_over.item
            self._missed = dict(start.carried_over.missed)
        else:
            now = workflow.now()
            self._item = ActionItem(
                id=action_item_id(start.incident_key, start.number),
                incident_key=start.incident_key,
                number=start.number,
                severity=start.severity,
                spec=start.spec,
                due_at=start.due_at,
                route=start.route,
                policy=start.policy,
                created_at=now,
                last_activity_at=now,
                first_due_at=start.due_at,
            )
            self._missed = {}
        self._changed = False
        self._search_attributes = SearchAttributeWriter()
        self._reported: ActionItemSummary | None = None
        self._retry_ticket = False
        self._background = Background()
        self._facts = FactsWriter(
            self._background,
            activity="record_action_item_facts",
            state=lambda: self.item,
            derive=lambda revision: action_item_facts(self.item, revision=revision),
            enabled=start.record_facts,
        )

    @property
    def item(self) -> ActionItem:
        return self._item

    # ---- run loop ----------------------------------------------------------------------

    @workflow.run
    async def run(self, start: StartActionItem) -> ActionItem:
        item = self.item
        self._upsert_search_attributes()
        self._facts.changed()
        run_length = RunLength(start.history_limit)
        if item.ticket is None:
            await self._create_ticket(start)
        while not item.state.is_final:
            if run_length.exceeded():
                await self._continue_as_new(start)
            self._changed = False
            self._fire_due(workflow.now(), start)
            wake_at = self._next_wake_at()
            timeout = None if wake_at is None else max(wake_at - workflow.now(), MIN_TIMER)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._changed, timeout=timeout)
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self._background.idle
        )
        await self._report_to_incident()
        return item

    async def _create_ticket(self, start: StartActionItem) -> None:
        item = self.item
        draft = TicketDraft(
            idempotency_key=workflow.info().workflow_id,
            title=f"[{item.incident_key}] {item.spec.title}",
            body=self._ticket_body(start),
            labels=["afteraction", item.spec.kind.value, item.severity.value.lower()],
            assignee=item.spec.assignee or item.route.assignee,
            due_at=item.due_at,
            priority=item.spec.priority.value,
            components=list(item.route.components),
            issue_type=item.route.issue_type,
        )
        # Only the first execution of the create, in the first run of this item, cannot have
        # been preceded by another: every later one (after a refusal, in a run that continued
        # or was reset) looks for the ticket first.
        info = workflow.info()
        first_run = info.run_id == info.first_execution_run_id
        while item.ticket is None and not item.state.is_final:
            may_exist = not first_run or item.ticket_error is not None
            try:
                ticket: Ticket = await workflow.execute_activity(
                    "ensure_ticket",
                    EnsureTicket(target=item.route.target, draft=draft, may_exist=may_exist),
                    result_type=Ticket,
                    start_to_close_timeout=TRACKER_TIMEOUT,
                    retry_policy=TRACKER_RETRY,
                )
            except ActivityError as error:
                # Refused (bad configuration): keep the item, say why, try again later or on
                # request; the incident shows the error meanwhile.
                item.ticket_error = str(error.cause or error)
                # Cleared before the report's await: a retry_ticket signal that arrives while
                # the incident is being told must not be lost.
                self._retry_ticket = False
                await self._report_to_incident()
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: self._retry_ticket or item.state.is_final,
                        timeout=TICKET_RETRY_EVERY,
                    )
                continue
            item.ticket = ticket.ref
            item.ticket_error = None
            if item.state is ActionItemState.CREATING:
                item.state = ActionItemState.OPEN
            if ticket.status is TicketStatus.CLOSED and item.state is ActionItemState.OPEN:
                self._ticket_closed(workflow.now())
        self._upsert_search_attributes()
        self._facts.changed()
        await self._report_to_incident()

    def _ticket_body(self, start: StartActionItem) -> str:
        spec = self.item.spec
        lines = [
            f"Action item {self.item.id} from incident {start.incident_key}: "
            f"{start.incident_title}",
            "",
            f"Owning team: {spec.owning_team}",
            f"Kind: {spec.kind.value.replace('_', ' ')}",
            f"Priority: {spec.priority.value}",
            f"Due: {self.item.due_at.isoformat(timespec='minutes')}",
            "",
            "Success criteria:",
            spec.success_criteria,
        ]
        if spec.slo_link:
            lines += ["", f"SLO: {spec.slo_link}"]
        lines += ["", "Close this ticket when the work is done; afteraction follows it."]
        return "\n".join(lines)

    async def _continue_as_new(self, start: StartActionItem) -> None:
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self._background.idle
        )
        item = self.item
        if workflow.patched(BOUNDED_HANDOVER):
            # The latest escalations and extensions: the history keeps them all.
            item = item.carried()
        carried = ActionItemCarriedOver(item=item, missed=self._missed)
        workflow.continue_as_new(start.model_copy(update={"carried_over": carried}))

    # ---- deadlines ---------------------------------------------------------------------

    def _deadline_due_at(self, kind: DeadlineKind) -> datetime | None:
        item = self.item
        if item.state is not ActionItemState.OPEN:
            return None
        if kind is DeadlineKind.ACTION_DUE:
            return item.due_at
        stalled_at = item.last_activity_at + item.policy.stall_after
        # Once the item is due, the overdue ladder speaks for it; a stall that would fall at
        # or after the due date would only notify the same people twice.
        return stalled_at if stalled_at < item.due_at else None

    def _reminders_due(self) -> list[tuple[datetime, timedelta]]:
        item = self.item
        if item.state is not ActionItemState.OPEN:
            return []
        # A reminder whose moment passed before the due date was set (at creation or at the
        # last extension) would arrive late and name the wrong lead time: it is skipped.
        since = item.extensions[-1].at if item.extensions else item.created_at
        reminders = []
        for before in item.policy.remind_before:
            moment = item.due_at - before
            if moment > since and moment not in item.reminders_sent:
                reminders.append((moment, before))
        return reminders

    def _fire_due(self, now: datetime, start: StartActionItem) -> None:
        item = self.item
        for moment, before in self._reminders_due():
            if moment <= now:
                item.reminders_sent.append(moment)
                owner = self._recipients(Rung.OWNER)
                self._comment(
                    f"{self._mentions(owner)} reminder: {item.id} is due "
                    f"{item.due_at.isoformat(timespec='minutes')} (in {format_duration(before)}). "
                    f"Success criteria: {item.spec.success_criteria}",
                    key=f"reminder/{moment.isoformat()}",
                )
        ladder = item.policy.escalation
        for kind in ITEM_DEADLINES:
            due_at = self._deadline_due_at(kind)
            if (
                due_at is None
                and kind in self._missed
                and workflow.patched(LADDER_WAITS_WHILE_CLOSED)
            ):
                # Not open (its ticket is closed): the ladder waits where it stands. The same
                # deadline is still missed when the ticket reopens, so the item goes on up the
                # ladder from there, and no rung hears of it twice.
                continue
            if due_at is None or due_at > now:
                self._missed.pop(kind, None)
                continue
            missed = self._missed.setdefault(kind, MissedStep(due_at=due_at))
            missed.due_at = due_at
            for step in steps_due(due_at, missed.steps_taken, ladder, now):
                self._escalate(kind, due_at, step, now, start)
                missed.steps_taken = step + 1
        self._upsert_search_attributes()
        self._facts.changed()

    def _escalate(
        self, kind: DeadlineKind, due_at: datetime, step: int, now: datetime, start: StartActionItem
    ) -> None:
        item = self.item
        if kind is DeadlineKind.ACTION_DUE:
            reason = f"{item.id} is overdue (due {due_at.isoformat(timespec='minutes')})"
        else:
            reason = (
                f"{item.id} has had no tracker activity for "
                f"{format_duration(item.policy.stall_after)}"
            )
        self._climb(kind, due_at, rung_for_step(step), reason, now)

    def _climb(
        self, kind: DeadlineKind, due_at: datetime, rung: Rung, reason: str, now: datetime
    ) -> None:
        """Record one step up the ladder, and tell the ticket and the rung's people."""
        item = self.item
        notified = self._recipients(rung)
        item.escalations.append(
            EscalationRecord(
                at=now, deadline=kind, due_at=due_at, rung=rung, notified=notified, reason=reason
            )
        )
        number = item.escalation_count
        self._comment(
            f"{self._mentions(notified)} escalated to {rung.value.replace('_', ' ')}: {reason}. "
            f"Success criteria: {item.spec.success_criteria}",
            key=f"escalation/{number}",
        )
        self._update_ticket(TicketChange(add_labels=[f"escalated:{rung.value}"]))
        notice = EscalationNotice(
            incident_key=item.incident_key,
            title=f"{item.id} {item.spec.title}",
            severity=item.severity,
            deadline=kind,
            due_at=due_at,
            rung=rung,
            recipients=notified,
            reason=reason,
            step=number,
        )
        self._announce(notice)

    def _next_wake_at(self) -> datetime | None:
        ladder = self.item.policy.escalation
        candidates = [moment for moment, _ in self._reminders_due()]
        for kind in ITEM_DEADLINES:
            due_at = self._deadline_due_at(kind)
            if due_at is None:
                continue
            missed = self._missed.get(kind)
            candidates.append(
                due_at if missed is None else step_at(due_at, missed.steps_taken, ladder)
            )
        return min(candidates, default=None)

    def _recipients(self, rung: Rung) -> list[str]:
        item = self.item
        if rung is Rung.OWNER:
            return [item.spec.assignee or item.route.assignee or item.spec.owning_team]
        return list(item.route.contacts.get(rung, [rung.value]))

    @staticmethod
    def _mentions(people: list[str]) -> str:
        return " ".join(f"@{person.lstrip('@')}" for person in people)

    # ---- side effects, beside the loop -------------------------------------------------

    def _update_ticket(self, change: TicketChange) -> None:
        item = self.item
        if item.ticket is None:
            return
        update = UpdateTicket(target=item.route.target, key=item.ticket.key, change=change)
        self._background.spawn(self._tracker_call("update_ticket", update))

    def _comment(self, text: str, *, key: str) -> None:
        item = self.item
        if item.ticket is None:
            return
        comment = CommentOnTicket(
            target=item.route.target,
            key=item.ticket.key,
            text=text,
            idempotency_key=f"{workflow.info().workflow_id}/{key}",
        )
        self._background.spawn(self._tracker_call("comment_on_ticket", comment))

    async def _tracker_call(self, activity: str, payload: Any) -> None:
        try:
            await workflow.execute_activity(
                activity,
                payload,
                start_to_close_timeout=TRACKER_TIMEOUT,
                retry_policy=TRACKER_RETRY,
            )
        except ActivityError as error:
            workflow.logger.error("%s for %s failed: %s", activity, self.item.id, error.cause)

    def _announce(self, notice: EscalationNotice) -> None:
        """The one place an escalation leaves the workflow, beside its loop."""
        self._background.spawn(notify_escalation(notice))

    async def _report_to_incident(self) -> None:
        parent = workflow.info().parent
        if parent is None:
            return
        item = self.item
        summary = ActionItemSummary.of(item)
        if workflow.patched(REPORT_ONLY_CHANGES):
            # The incident already knows this (the last report may race its closing).
            if summary == self._reported:
                return
            self._reported = summary
        # Reports run beside each other and may reach the incident out of order: the number
        # (kept in the item, so it keeps rising across continue-as-new) lets it drop a late one.
        item.reports_sent += 1
        report = summary.model_copy(update={"sequence": item.reports_sent})
        handle = workflow.get_external_workflow_handle(parent.workflow_id)
        try:
            await handle.signal("action_item_changed", report)
        except Exception as error:  # the incident may have ended; the item goes on regardless
            workflow.logger.info("could not tell incident %s: %s", parent.workflow_id, error)

    def _changed_state(self) -> ActionItemSummary:
        self._changed = True
        self._upsert_search_attributes()
        self._facts.changed()
        self._background.spawn(self._report_to_incident())
        return ActionItemSummary.of(self.item)

    # ---- queries, signals, updates -----------------------------------------------------

    @workflow.query
    def state(self) -> ActionItem:
        return self.item

    @workflow.signal
    def ticket_changed(self, change: TicketChanged) -> None:
        item = self.item
        if self._other_ticket(change.ticket_key):
            return
        if change.delivery_id is not None:
            if change.delivery_id in item.seen_deliveries:
                return
            item.seen_deliveries = [*item.seen_deliveries, change.delivery_id][
                -SEEN_DELIVERIES_KEPT:
            ]
        if change.activity and change.at > item.last_activity_at:
            item.last_activity_at = min(change.at, workflow.now())
        if change.status is not None and self._stale(change):
            self._changed_state()
            return
        if change.status is TicketStatus.CLOSED and item.state is ActionItemState.OPEN:
            self._ticket_closed(workflow.now())
            item.closed_by = change.actor
        elif change.status is TicketStatus.OPEN and item.state is ActionItemState.VERIFYING:
            item.state = ActionItemState.OPEN
            item.closed_at = None
            item.closed_by = None
            item.reopened += 1
        self._changed_state()

    def _stale(self, change: TicketChanged) -> bool:
        """A status older than the last one applied (by the tracker's own updated time): a late
        delivery, or a captured one sent again under a new id, must not undo a later change."""
        item = self.item
        if not workflow.patched(APPLY_NEWER_TICKET_CHANGES):
            return False
        if item.ticket_status_at is not None and change.at < item.ticket_status_at:
            return True
        item.ticket_status_at = change.at
        return False

    def _other_ticket(self, ticket_key: str) -> bool:
        """A change to a ticket that is not this item's (a duplicate still carrying its key):
        ignored, so closing a duplicate does not close the item. Behind a patch: histories
        recorded before it applied such changes."""
        ticket = self.item.ticket
        if ticket is None or ticket.key.casefold() == ticket_key.casefold():
            return False
        return workflow.patched(IGNORE_OTHER_TICKETS)

    def _ticket_closed(self, now: datetime) -> None:
        item = self.item
        item.closed_at = now
        if item.policy.verification_required:
            item.state = ActionItemState.VERIFYING
        else:
            item.state = ActionItemState.DONE

    @workflow.signal
    def repeat_proven(self, proof: RepeatProven) -> None:
        """A later incident failed the way this item is to prevent: one rung up, at once."""
        item = self.item
        if (
            item.state.is_final
            or proof.incident_key in item.proven_by
            or len(item.proven_by) >= PROVING_INCIDENTS
        ):
            return
        item.proven_by.append(proof.incident_key)
        latest = item.escalations[-1].rung if item.escalations else None
        rung = next_rung(latest)
        shared = f" ({', '.join(proof.matched_on)})" if proof.matched_on else ""
        reason = (
            f'{proof.incident_key} "{proof.incident_title}" repeats {proof.earlier_key}'
            f"{shared}, the failure {item.id} is to prevent: the repeat proves it necessary"
        )
        self._climb(DeadlineKind.REPEAT, item.due_at, rung, reason, workflow.now())
        # The timed ladders go on above the rung that has now heard, never back to it.
        for missed in self._missed.values():
            missed.steps_taken = max(missed.steps_taken, LADDER.index(rung) + 1)
        self._changed_state()

    @workflow.signal
    def retry_ticket(self) -> None:
        """Try creating the ticket again now (after fixing the tracker's configuration)."""
        self._retry_ticket = True

    @workflow.update
    def extend_deadline(self, command: ExtendDeadline) -> ActionItemSummary:
        item = self.item
        now = workflow.now()
        item.extensions.append(
            Extension(
                at=now,
                previous_due_at=item.due_at,
                due_at=command.due_at,
                reason=command.reason,
                by=command.by,
                actor=command.actor,
            )
        )
        item.due_at = command.due_at
        item.reminders_sent = []
        # A new due date is a new deadline: the ladder of the old one ends here, even while
        # it waits for a closed ticket (histories before this ended it at the next pass of the
        # run loop, which sees the due date in the future: the same state, the same commands).
        self._missed.pop(DeadlineKind.ACTION_DUE, None)
        if item.ticket is not None:
            self._update_ticket(TicketChange(due_at=command.due_at))
            self._comment(
                f"due date extended to {command.due_at.isoformat(timespec='minutes')}"
                f"{' by ' + command.by if command.by else ''}: {command.reason}",
                key=f"extension/{item.earlier_extensions + len(item.extensions)}",
            )
        return self._changed_state()

    @extend_deadline.validator
    def _validate_extend_deadline(self, command: ExtendDeadline) -> None:
        self._require_not_final("extend the deadline of")
        if command.due_at.tzinfo is None:
            raise rejected("give the new due time with a time zone, e.g. 2026-12-15T17:00:00Z")
        if command.due_at <= workflow.now():
            raise rejected("the new due time must be in the future")
        if command.due_at <= self.item.due_at:
            raise rejected(
                f"the new due time must be later than the current one "
                f"({self.item.due_at.isoformat(timespec='minutes')})"
            )

    @workflow.update
    def verify(self, command: VerifyItem) -> ActionItemSummary:
        item = self.item
        item.verification = Verification(
            at=workflow.now(), by=command.by, evidence=command.evidence, actor=command.actor
        )
        item.state = ActionItemState.DONE
        self._comment(f"verified by {command.by}: {command.evidence}", key="verification")
        return self._changed_state()

    @verify.validator
    def _validate_verify(self, command: VerifyItem) -> None:
        state = self.item.state
        if state is not ActionItemState.VERIFYING:
            hint = {
                ActionItemState.CREATING: "its ticket is still being created",
                ActionItemState.OPEN: "close its ticket first, then confirm the criteria",
            }.get(state, f"it is already {state.value}")
            raise rejected(f"cannot verify {self.item.id}: {hint}")

    @workflow.update
    def accept_risk(self, command: AcceptRisk) -> ActionItemSummary:
        item = self.item
        item.acceptance = RiskAcceptance(
            at=workflow.now(),
            rationale=command.rationale,
            approver=command.approver,
            actor=command.actor,
        )
        item.state = ActionItemState.ACCEPTED
        item.closed_at = workflow.now()
        self._comment(
            f"risk accepted by {command.approver} (won't do): {command.rationale}",
            key="acceptance",
        )
        if workflow.patched(CLOSE_ACCEPTED_AS_NOT_PLANNED):
            # The owning team's board shows it as won't do, not as work still to pick up.
            self._update_ticket(TicketChange(close_as_not_planned=True))
        return self._changed_state()

    @accept_risk.validator
    def _validate_accept_risk(self, command: AcceptRisk) -> None:
        self._require_not_final("accept the risk of")

    def _require_not_final(self, action: str) -> None:
        if self.item.state.is_final:
            raise rejected(f"cannot {action} {self.item.id}: it is {self.item.state.value}")

    def _upsert_search_attributes(self) -> None:
        item = self.item
        updates: list[SearchAttributeUpdate] = [
            sa.STATE.value_set(item.state.value),
            sa.SEVERITY.value_set(item.severity.value),
            sa.TEAMS.value_set([item.spec.owning_team]),
            sa.TITLE.value_set(item.spec.title),
            sa.INCIDENT_KEY.value_set(item.incident_key),
            sa.DUE_AT.value_set(item.due_at),
            sa.ESCALATION_COUNT.value_set(item.escalation_count),
            sa.TRACKER.value_set(item.route.target),
        ]
        if item.ticket is not None:
            updates.append(sa.TICKET_KEY.value_set(item.ticket.key))
        self._search_attributes.upsert(updates)
