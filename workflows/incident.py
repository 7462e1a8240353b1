"""IncidentWorkflow: one durable workflow per incident, from declaration to review.

People move the incident with Updates (each validator rejects a command that is invalid
in the current state before anything is written to history); the run loop keeps the
policy's deadlines as durable timers and walks the escalation ladder when one is missed.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.common import (
    BOUNDED_HANDOVER,
    MIN_TIMER,
    UPDATE_ACTIVITY_RETRY,
    UPDATE_ACTIVITY_TIMEOUT,
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
        ActionItemSpec,
        ActionItemState,
        ActionItemSummary,
        StartActionItem,
        TeamRoute,
        action_workflow_id,
    )
    from domain.commands import (
        Acknowledge,
        AddTimelineEvent,
        AssignRole,
        Cancel,
        CarriedOver,
        DeclareIncident,
        SetSeverity,
        Transition,
    )
    from domain.deadlines import (
        INCIDENT_DEADLINES,
        STATUS_REMINDER_TOP_STEP,
        DeadlineTracker,
        MissedDeadline,
        deadline_due_at,
        describe_miss,
        recipients,
        rung_for_step,
        step_at,
        steps_due,
    )
    from domain.escalation import DeadlineKind, EscalationRecord
    from domain.facts import incident_facts
    from domain.identity import SCHEDULES, Actor
    from domain.incident import (
        Incident,
        IncidentClock,
        IncidentState,
        IncidentStatus,
        Role,
        TimelineEvent,
        TimelineKind,
    )
    from domain.limits import INCIDENT_ACTION_ITEMS, NAMES_ITEMS
    from domain.notifications import EscalationNotice
    from domain.recurrence import (
        RECURRENCES,
        EarlierIncident,
        EarlierItem,
        Recurrence,
        RecurrenceStage,
        RepeatProven,
        RepeatQuery,
        describe,
        proved_by,
    )
    from domain.review import (
        AddActionItem,
        ReviewRecord,
        ReviewSchedule,
        ScheduleReview,
        SubmitReview,
        check_review,
        missing_functions,
    )
    from domain.severity import Severity

# How far ahead of the workflow clock a reported time may be (the reporter's clock drifts).
CLOCK_SKEW = timedelta(minutes=1)
# Histories recorded before this applied every item report as it came.
APPLY_NEWER_REPORTS = "apply-only-newer-action-item-reports"
# Histories recorded before this let the review commands interleave at their awaits.
REVIEW_COMMANDS_IN_TURN = "review-commands-in-turn"
# Histories recorded before this started a review's action items one workflow task each.
START_ITEMS_TOGETHER = "start-review-items-together"
# Histories recorded before this looked for no earlier incidents.
FIND_REPEATS = "find-repeat-incidents"
# One read of the read model; it may be busy, but a declaration must not wait long on it.
REPEAT_LOOKUP_TIMEOUT = timedelta(seconds=30)
REPEAT_LOOKUP_GIVE_UP = timedelta(minutes=10)
REPEAT_LOOKUP_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)

_TRANSITIONS: dict[str, tuple[IncidentState, ...]] = {
    "schedule_review": (IncidentState.RESOLVED, IncidentState.IN_REVIEW),
    "submit_review": (IncidentState.RESOLVED, IncidentState.IN_REVIEW),
    "add_action_item": (IncidentState.REVIEWED, IncidentState.TRACKING),
    "acknowledge": (IncidentState.DECLARED,),
    "mitigate": (IncidentState.DECLARED, IncidentState.MITIGATING),
    "resolve": (IncidentState.DECLARED, IncidentState.MITIGATING, IncidentState.MITIGATED),
    "cancel": (IncidentState.DECLARED, IncidentState.MITIGATING, IncidentState.MITIGATED),
}


@workflow.defn(name="IncidentWorkflow")
class IncidentWorkflow:
    @workflow.init
    def __init__(self, declaration: DeclareIncident) -> None:
        # Set up here, not in run(), so an Update that arrives with the start finds the state.
        if declaration.carried_over is not None:
            self._incident = declaration.carried_over.incident
            self._deadlines = declaration.carried_over.deadlines
        else:
            self._incident = self._declare(declaration)
            self._deadlines = DeadlineTracker(status_anchor=self._incident.clock.declared_at)
        self._changed = False
        self._search_attributes = SearchAttributeWriter()
        # Notifications in flight: they run beside the deadline loop, never in its way.
        self._background = Background()
        # The review commands await (the facilitator, the items' starts): one at a time.
        self._review_turn = asyncio.Lock()
        self._record_facts = declaration.record_facts
        self._facts = FactsWriter(
            self._background,
            activity="record_incident_facts",
            state=lambda: self.incident,
            derive=lambda revision: incident_facts(self.incident, revision=revision),
            enabled=declaration.record_facts,
        )

    # ---- run loop: the durable timers -------------------------------------------------

    @workflow.run
    async def run(self, declaration: DeclareIncident) -> Incident:
        incident = self.incident
        self._upsert_search_attributes()
        self._facts.changed()
        if declaration.carried_over is None and workflow.patched(FIND_REPEATS):
            self._look_for_repeats(
                RecurrenceStage.DECLARATION, incident.services, incident.failure_modes
            )
        run_length = RunLength(declaration.history_limit)
        while not incident.state.is_final:
            if run_length.exceeded():
                await self._continue_as_new(declaration)
            # Nothing below awaits before the wait, so a command that arrives while the
            # deadlines are evaluated is seen by the wait and never lost.
            self._changed = False
            for notice in self._fire_due_deadlines(workflow.now()):
                self._announce(notice)
            wake_at = self._next_wake_at()
            # Every step due by now has fired, so wake_at is later; the floor is only a guard.
            timeout = None if wake_at is None else max(wake_at - workflow.now(), MIN_TIMER)
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._changed, timeout=timeout)
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self._background.idle
        )
        return incident

    async def _continue_as_new(self, declaration: DeclareIncident) -> None:
        """Hand the incident and its deadlines to a fresh run, once no handler is mid-way."""
        await workflow.wait_condition(
            lambda: workflow.all_handlers_finished() and self._background.idle
        )
        incident = self.incident
        if workflow.patched(BOUNDED_HANDOVER):
            # The latest of the timeline and the escalations: the history keeps them all.
            incident = incident.carried()
        carried = CarriedOver(incident=incident, deadlines=self._deadlines)
        workflow.continue_as_new(declaration.model_copy(update={"carried_over": carried}))

    def _announce(self, notice: EscalationNotice) -> None:
        """The one place an escalation leaves the workflow, beside its loop."""
        self._background.spawn(notify_escalation(notice))

    def _declare(self, declaration: DeclareIncident) -> Incident:
        now = workflow.now()
        detected = declaration.detected_at or now
        started = declaration.started_at or detected
        incident = Incident(
            key=declaration.key,
            title=declaration.title,
            severity=declaration.severity,
            services=declaration.services,
            teams=declaration.teams,
            failure_modes=declaration.failure_modes,
            summary=declaration.summary,
            declared_by=declaration.declared_by,
            declared_by_actor=declaration.actor,
            clock=IncidentClock(
                started_at=started,
                detected_at=detected,
                declared_at=now,
                started_reported=declaration.started_at is not None,
                detected_reported=declaration.detected_at is not None,
            ),
            policy=declaration.policy,
        )
        incident.timeline.append(
            TimelineEvent(
                at=now,
                kind=TimelineKind.DECLARED,
                text=f"declared {declaration.severity}: {declaration.title}",
                author=declaration.declared_by,
                actor=declaration.actor,
            )
        )
        return incident

    def _fire_due_deadlines(self, now: datetime) -> list[EscalationNotice]:
        """Record every ladder step that is due by `now` and return what to notify."""
        incident = self.incident
        ladder = incident.policy.for_severity(incident.severity).escalation
        notices: list[EscalationNotice] = []
        tracker = self._deadlines
        for kind in INCIDENT_DEADLINES:
            due_at = deadline_due_at(kind, incident, status_anchor=tracker.status_anchor)
            if due_at is None or due_at > now:
                tracker.missed.pop(kind, None)
                if kind is DeadlineKind.STATUS_UPDATE and due_at is None:
                    tracker.status_misses = 0
                continue
            if kind is DeadlineKind.STATUS_UPDATE:
                # The reminder re-arms the cadence; a further miss goes to the team lead too.
                step = min(tracker.status_misses, STATUS_REMINDER_TOP_STEP)
                notices.append(self._escalate(kind, due_at, step, now))
                tracker.status_misses += 1
                tracker.status_anchor = now
                continue
            missed = tracker.missed.setdefault(kind, MissedDeadline(kind=kind, due_at=due_at))
            missed.due_at = due_at  # a severity change may have moved it
            for step in steps_due(due_at, missed.steps_taken, ladder, now):
                notices.append(self._escalate(kind, due_at, step, now))
                missed.steps_taken = step + 1
        if notices:
            self._upsert_search_attributes()
            self._facts.changed()
        return notices

    def _escalate(
        self, kind: DeadlineKind, due_at: datetime, step: int, now: datetime
    ) -> EscalationNotice:
        incident = self.incident
        rung = rung_for_step(step)
        reason = describe_miss(kind, incident, due_at)
        notified = recipients(rung, incident)
        incident.escalations.append(
            EscalationRecord(
                at=now, deadline=kind, due_at=due_at, rung=rung, notified=notified, reason=reason
            )
        )
        self._record(
            now,
            TimelineKind.ESCALATED,
            f"{reason}; escalated to {rung.value.replace('_', ' ')}: {', '.join(notified)}",
            None,
            SCHEDULES,
        )
        workflow.logger.warning(
            "deadline missed: %s; escalating to %s (%s)", reason, rung.value, ", ".join(notified)
        )
        return EscalationNotice(
            incident_key=incident.key,
            title=incident.title,
            severity=incident.severity,
            deadline=kind,
            due_at=due_at,
            rung=rung,
            recipients=notified,
            reason=reason,
            step=incident.escalation_count,
        )

    def _next_wake_at(self) -> datetime | None:
        incident = self.incident
        if incident.state.is_final:
            return None
        ladder = incident.policy.for_severity(incident.severity).escalation
        candidates: list[datetime] = []
        for kind in INCIDENT_DEADLINES:
            due_at = deadline_due_at(kind, incident, status_anchor=self._deadlines.status_anchor)
            if due_at is None:
                continue
            missed = self._deadlines.missed.get(kind)
            candidates.append(
                due_at if missed is None else step_at(due_at, missed.steps_taken, ladder)
            )
        return min(candidates, default=None)

    # ---- queries ---------------------------------------------------------------------

    @workflow.query
    def state(self) -> Incident:
        return self.incident

    # ---- updates: validate, then change state and answer --------------------------------

    @workflow.update
    def acknowledge(self, command: Acknowledge) -> IncidentStatus:
        now = workflow.now()
        incident = self.incident
        incident.roles.commander = command.commander
        incident.clock.acknowledged_at = now
        incident.state = IncidentState.MITIGATING
        self._record(
            now,
            TimelineKind.ACKNOWLEDGED,
            f"acknowledged; commander {command.commander}",
            command.by or command.commander,
            command.actor,
        )
        return self._changed_state()

    @acknowledge.validator
    def _validate_acknowledge(self, command: Acknowledge) -> None:
        self._require_state("acknowledge")

    @workflow.update
    def assign_role(self, command: AssignRole) -> IncidentStatus:
        roles = self.incident.roles
        if command.role is Role.SUBJECT_MATTER_EXPERT:
            roles.subject_matter_experts.append(command.person)
        else:
            setattr(roles, command.role.value, command.person)
        self._record(
            workflow.now(),
            TimelineKind.ROLE_ASSIGNED,
            f"{command.role.value.replace('_', ' ')}: {command.person}",
            command.by,
            command.actor,
        )
        return self._changed_state()

    @assign_role.validator
    def _validate_assign_role(self, command: AssignRole) -> None:
        self._require_not_final("assign a role")
        roles = self.incident.roles
        if (
            command.role is Role.SUBJECT_MATTER_EXPERT
            and command.person in roles.subject_matter_experts
        ):
            raise rejected(
                f"{command.person} is already a subject-matter expert on this incident; "
                "add someone else, or give them another role"
            )
        if (
            command.role is Role.SUBJECT_MATTER_EXPERT
            and len(roles.subject_matter_experts) >= NAMES_ITEMS
        ):
            raise rejected(
                f"the incident already has {NAMES_ITEMS} subject-matter experts, the most it "
                "keeps; note further helpers in the timeline instead"
            )
        if (
            command.role is not Role.SUBJECT_MATTER_EXPERT
            and getattr(roles, command.role.value) == command.person
        ):
            raise rejected(
                f"{command.person} is already the {command.role.value.replace('_', ' ')}; "
                "name someone else for it, or give them another role"
            )

    @workflow.update
    def set_severity(self, command: SetSeverity) -> IncidentStatus:
        incident = self.incident
        previous = incident.severity
        incident.severity = command.severity
        text = f"severity {previous} -> {command.severity}"
        if command.reason:
            text += f": {command.reason}"
        self._record(workflow.now(), TimelineKind.SEVERITY_CHANGED, text, command.by, command.actor)
        return self._changed_state()

    @set_severity.validator
    def _validate_set_severity(self, command: SetSeverity) -> None:
        self._require_not_final("change the severity")
        if command.severity == self.incident.severity:
            others = ", ".join(s.value for s in Severity if s != command.severity)
            raise rejected(
                f"the incident is already {command.severity}; choose another severity: {others}"
            )

    @workflow.update
    def add_timeline_event(self, command: AddTimelineEvent) -> IncidentStatus:
        self._record(
            command.at or workflow.now(), TimelineKind.NOTE, command.text, command.by, command.actor
        )
        return self._changed_state()

    @add_timeline_event.validator
    def _validate_add_timeline_event(self, command: AddTimelineEvent) -> None:
        self._require_not_final("add a timeline event")
        self._require_not_future(command.at)

    @workflow.update
    def mitigate(self, command: Transition) -> IncidentStatus:
        incident = self.incident
        at = command.at or workflow.now()
        self._stamp_acknowledged(at)
        incident.clock.mitigated_at = at
        incident.state = IncidentState.MITIGATED
        self._record(
            at,
            TimelineKind.MITIGATED,
            command.note or "impact mitigated",
            command.by,
            command.actor,
        )
        return self._changed_state()

    @mitigate.validator
    def _validate_mitigate(self, command: Transition) -> None:
        self._require_state("mitigate")
        self._require_not_future(command.at)
        self._require_not_before(command.at, "the incident started", self.incident.clock.started_at)

    @workflow.update
    def resolve(self, command: Transition) -> IncidentStatus:
        incident = self.incident
        at = command.at or workflow.now()
        self._stamp_acknowledged(at)
        if incident.clock.mitigated_at is None:
            incident.clock.mitigated_at = at
        incident.clock.resolved_at = at
        incident.state = IncidentState.RESOLVED
        self._record(
            at, TimelineKind.RESOLVED, command.note or "resolved", command.by, command.actor
        )
        return self._changed_state()

    @resolve.validator
    def _validate_resolve(self, command: Transition) -> None:
        self._require_state("resolve")
        self._require_not_future(command.at)
        clock = self.incident.clock
        if clock.mitigated_at is not None:
            self._require_not_before(command.at, "it was mitigated", clock.mitigated_at)
        else:
            self._require_not_before(command.at, "the incident started", clock.started_at)

    @workflow.update
    def cancel(self, command: Cancel) -> IncidentStatus:
        now = workflow.now()
        incident = self.incident
        incident.state = IncidentState.CANCELLED
        incident.cancel_reason = command.reason.strip()
        incident.clock.cancelled_at = now
        self._record(
            now,
            TimelineKind.CANCELLED,
            f"cancelled: {incident.cancel_reason}",
            command.by,
            command.actor,
        )
        return self._changed_state()

    @cancel.validator
    def _validate_cancel(self, command: Cancel) -> None:
        self._require_state("cancel")
        if not command.reason.strip():
            raise rejected(
                "cancel needs a reason that says why this is not an incident, "
                "e.g. 'false alarm: synthetic check'"
            )

    # ---- the review and its action items -----------------------------------------------

    @workflow.update
    async def schedule_review(self, command: ScheduleReview) -> IncidentStatus:
        async with self._in_turn("schedule_review") as in_turn:
            incident = self.incident
            facilitator = command.facilitator
            proposed = False
            if facilitator is None and incident.policy.facilitators:
                facilitator = await self._propose_facilitator()
                proposed = True
                if in_turn:
                    # Only the review commands wait their turn: make sure nothing else moved
                    # the incident while the pool was asked, as in_review now would undo it.
                    self._require_state("schedule_review")
            incident.review_schedule = ReviewSchedule(
                at=command.at,
                facilitator=facilitator,
                facilitator_proposed=proposed,
                participants=command.participants,
                scheduled_by=command.actor,
            )
            incident.state = IncidentState.IN_REVIEW
            who = f" with facilitator {facilitator}" if facilitator else ""
            self._record(
                workflow.now(),
                TimelineKind.REVIEW_SCHEDULED,
                f"review scheduled for {command.at.isoformat(timespec='minutes')}{who}",
                command.actor.label if command.actor else None,
                command.actor,
            )
            return self._changed_state()

    async def _propose_facilitator(self) -> str:
        try:
            facilitator: str = await workflow.execute_activity(
                "propose_facilitator",
                self.incident.policy.facilitators,
                result_type=str,
                start_to_close_timeout=UPDATE_ACTIVITY_TIMEOUT,
                retry_policy=UPDATE_ACTIVITY_RETRY,
            )
        except ActivityError as error:
            raise ApplicationError(
                f"could not propose a facilitator from the pool ({error.cause or error}); "
                "name the facilitator and schedule the review again",
                type="FacilitatorUnavailable",
                non_retryable=True,
            ) from None
        return facilitator

    @schedule_review.validator
    def _validate_schedule_review(self, command: ScheduleReview) -> None:
        self._require_state("schedule_review")
        if command.at.tzinfo is None:
            raise rejected("give the review time with a time zone, e.g. 2026-12-01T15:00:00Z")
        now = workflow.now()
        if command.at < now - CLOCK_SKEW:
            raise rejected(
                f"the review time {command.at.isoformat(timespec='minutes')} is in the past "
                f"(now {now.isoformat(timespec='minutes')}); give a time from now on"
            )

    @workflow.update
    async def submit_review(self, command: SubmitReview) -> IncidentStatus:
        async with self._in_turn("submit_review"):
            incident = self.incident
            now = workflow.now()
            review = command.review
            warnings = []
            missing = missing_functions(review, incident.policy.for_severity(incident.severity))
            if missing:
                warnings.append(
                    f"held without {', '.join(f.value for f in missing)}: "
                    f"{review.missing_function_waiver}"
                )
            incident.review = ReviewRecord(
                review=review,
                submitted_at=now,
                submitted_by=command.by,
                submitted_by_actor=command.actor,
                warnings=warnings,
            )
            incident.clock.review_held_at = now
            incident.state = IncidentState.REVIEWED
            self._record(now, TimelineKind.REVIEWED, "review submitted", command.by, command.actor)
            starts = [
                self._start_action_item(spec, command.routes[spec.owning_team])
                for spec in review.action_items
            ]
            if workflow.patched(START_ITEMS_TOGETHER):
                # Each start takes its number before its first await, so they stay 1..N, and
                # all of them go out in one workflow task instead of one task each.
                await asyncio.gather(*starts)
            else:
                for start in starts:
                    await start
            incident.state = IncidentState.TRACKING
            if review.failure_modes and workflow.patched(FIND_REPEATS):
                self._look_for_repeats(RecurrenceStage.REVIEW, [], review.failure_modes)
            return self._changed_state()

    @submit_review.validator
    def _validate_submit_review(self, command: SubmitReview) -> None:
        self._require_state("submit_review")
        incident = self.incident
        problems = [
            str(problem)
            for problem in check_review(
                command.review, incident.policy, incident.policy.for_severity(incident.severity)
            )
        ]
        for index, spec in enumerate(command.review.action_items):
            past = self._past_due(spec)
            if past:
                problems.append(f"action_items.{index}.due_at: {past}")
            if spec.owning_team not in command.routes:
                problems.append(
                    f"action_items.{index}.owning_team: no route for team {spec.owning_team!r}"
                )
        if problems:
            raise rejected("the review cannot be accepted:\n" + "\n".join(problems))

    @workflow.update
    async def add_action_item(self, command: AddActionItem) -> ActionItemSummary:
        async with self._in_turn("add_action_item"):
            summary = await self._start_action_item(command.spec, command.route)
            self.incident.state = IncidentState.TRACKING
            self._changed_state()
            return summary

    @add_action_item.validator
    def _validate_add_action_item(self, command: AddActionItem) -> None:
        self._require_state("add_action_item")
        if len(self.incident.action_items) >= INCIDENT_ACTION_ITEMS:
            raise rejected(
                f"the incident already tracks {INCIDENT_ACTION_ITEMS} action items, the most it "
                "can; track further work in the owning team's tracker"
            )
        past = self._past_due(command.spec)
        if past:
            raise rejected(f"due_at: {past}")
        if command.route.team != command.spec.owning_team:
            raise rejected(
                f"the route is for team {command.route.team!r}, "
                f"the item is owned by {command.spec.owning_team!r}"
            )

    @contextlib.asynccontextmanager
    async def _in_turn(self, command: str) -> AsyncIterator[bool]:
        """Run a review command once no other is mid-way, or refuse it if, by its turn, the
        incident has moved on from where its validator accepted it (two reviews submitted
        together: the second is refused, not recorded over the first). Yields whether the
        commands take turns: histories recorded before they did replay the old way."""
        if not workflow.patched(REVIEW_COMMANDS_IN_TURN):
            yield False
            return
        async with self._review_turn:
            self._require_state(command)
            yield True

    async def _start_action_item(self, spec: ActionItemSpec, route: TeamRoute) -> ActionItemSummary:
        incident = self.incident
        number = len(incident.action_items) + 1
        policy = incident.policy.for_severity(incident.severity).action_items
        due_at = spec.due_at or workflow.now() + policy.due_within[spec.kind]
        summary = ActionItemSummary(
            number=number,
            id=f"{incident.key}-{number}",
            title=spec.title,
            owning_team=spec.owning_team,
            kind=spec.kind,
            state=ActionItemState.CREATING,
            due_at=due_at,
        )
        incident.action_items.append(summary)
        await workflow.start_child_workflow(
            "ActionItemWorkflow",
            StartActionItem(
                incident_key=incident.key,
                incident_title=incident.title,
                number=number,
                severity=incident.severity,
                spec=spec,
                due_at=due_at,
                route=route,
                policy=policy,
                record_facts=self._record_facts,
            ),
            id=action_workflow_id(incident.key, number),
            # Items outlive the run that started them: the incident may continue as new.
            parent_close_policy=workflow.ParentClosePolicy.ABANDON,
        )
        return summary

    # ---- repeats: earlier incidents that failed the same way ---------------------------

    def _look_for_repeats(
        self, stage: RecurrenceStage, services: list[str], failure_modes: list[str]
    ) -> None:
        """Beside the loop: a slow read model must not hold up the deadlines."""
        incident = self.incident
        if (
            not self._record_facts  # it looks in the read model, which this incident skips
            or not (services or failure_modes)
            or incident.policy.repeat_window <= timedelta(0)
        ):
            return
        self._background.spawn(self._find_repeats(stage, services, failure_modes))

    async def _find_repeats(
        self, stage: RecurrenceStage, services: list[str], failure_modes: list[str]
    ) -> None:
        incident = self.incident
        declared_at = incident.clock.declared_at
        query = RepeatQuery(
            key=incident.key,
            services=services,
            failure_modes=failure_modes,
            since=declared_at - incident.policy.repeat_window,
            until=declared_at,
            exclude=proved_by(incident),
        )
        try:
            earlier: list[EarlierIncident] = await workflow.execute_activity(
                "find_earlier_incidents",
                query,
                result_type=list[EarlierIncident],
                start_to_close_timeout=REPEAT_LOOKUP_TIMEOUT,
                # A worker without the activity must not keep the incident from ending.
                schedule_to_close_timeout=REPEAT_LOOKUP_GIVE_UP,
                retry_policy=REPEAT_LOOKUP_RETRY,
            )
        except ActivityError as error:
            workflow.logger.error(
                "could not look for incidents %s repeats: %s", incident.key, error.cause or error
            )
            return
        # Re-read after the await: an incident cancelled meanwhile was declared in error, and
        # proves nothing.
        if (
            not earlier
            or incident.state is IncidentState.CANCELLED
            or len(incident.recurrences) >= RECURRENCES
        ):
            return
        now = workflow.now()
        open_items = [(e, item) for e in earlier if e.proves_fixes for item in e.open_items]
        recurrence = Recurrence(
            stage=stage,
            found_at=now,
            earlier=earlier,
            escalated=[item.id for _, item in open_items],
        )
        incident.recurrences.append(recurrence)
        self._record(now, TimelineKind.REPEAT, describe(recurrence), None, SCHEDULES)
        self._changed_state()
        await asyncio.gather(*(self._prove(e, item) for e, item in open_items))

    async def _prove(self, earlier: EarlierIncident, item: EarlierItem) -> None:
        """Tell an earlier incident's open item that this incident repeats its failure."""
        incident = self.incident
        proof = RepeatProven(
            incident_key=incident.key,
            incident_title=incident.title,
            earlier_key=earlier.key,
            matched_on=earlier.matched_on,
        )
        handle = workflow.get_external_workflow_handle(action_workflow_id(earlier.key, item.number))
        try:
            await handle.signal("repeat_proven", proof)
        except Exception as error:  # the item ended meanwhile: it needs no escalation
            workflow.logger.info("could not tell %s of the repeat: %s", item.id, error)

    @workflow.signal
    def action_item_changed(self, summary: ActionItemSummary) -> None:
        incident = self.incident
        index = next(
            (i for i, known in enumerate(incident.action_items) if known.number == summary.number),
            None,
        )
        if index is None:
            return
        if workflow.patched(APPLY_NEWER_REPORTS) and not summary.supersedes(
            incident.action_items[index]
        ):
            # A late report (e.g. "verifying" after "done"): applying it would keep the
            # incident tracking an item that has finished and will never report again.
            return
        incident.action_items[index] = summary
        if (
            incident.state is IncidentState.TRACKING
            and incident.action_items
            and all(item.state.is_final for item in incident.action_items)
        ):
            now = workflow.now()
            incident.state = IncidentState.CLOSED
            incident.clock.closed_at = now
            self._record(
                now, TimelineKind.CLOSED, "every action item is done or accepted", None, SCHEDULES
            )
        self._changed_state()

    # ---- helpers ---------------------------------------------------------------------

    @property
    def incident(self) -> Incident:
        return self._incident

    def _require_state(self, command: str) -> None:
        state = self.incident.state
        if state not in _TRANSITIONS[command]:
            allowed = sorted(name for name, states in _TRANSITIONS.items() if state in states)
            also = (
                ["assign_role", "add_timeline_event", "set_severity"] if not state.is_final else []
            )
            options = ", ".join(allowed + also) or "nothing: the incident is final"
            raise rejected(
                f"cannot {command} an incident that is {state.value}; allowed now: {options}"
            )

    def _require_not_final(self, action: str) -> None:
        state = self.incident.state
        if state.is_final:
            raise rejected(f"cannot {action}: the incident is {state.value}")

    def _require_not_future(self, at: datetime | None) -> None:
        if at is None:
            return
        if at.tzinfo is None:
            # Comparing it with the workflow clock would raise a TypeError nobody can act on.
            raise rejected(
                f"{at.isoformat()} has no time zone; give one, e.g. 2026-11-27T14:03:00Z"
            )
        now = workflow.now()
        if at > now + CLOCK_SKEW:
            raise rejected(
                f"{at.isoformat()} is in the future (now {now.isoformat(timespec='seconds')}); "
                "give the time it happened, or leave the time out to mean now"
            )

    def _past_due(self, spec: ActionItemSpec) -> str | None:
        """Why the item's due date cannot be (it has passed), or None."""
        now = workflow.now()
        if spec.due_at is None or spec.due_at >= now - CLOCK_SKEW:
            return None
        return (
            f"{spec.due_at.isoformat(timespec='minutes')} has passed (now "
            f"{now.isoformat(timespec='minutes')}); give a later date, or leave it out for the "
            "policy's default"
        )

    def _require_not_before(self, at: datetime | None, what: str, earliest: datetime) -> None:
        if at is not None and at < earliest:
            raise rejected(
                f"{at.isoformat()} is before {what} ({earliest.isoformat()}); "
                "give a time no earlier than that, or leave the time out to mean now"
            )

    def _record(
        self,
        at: datetime,
        kind: TimelineKind,
        text: str,
        author: str | None,
        actor: Actor | None = None,
    ) -> None:
        # Kept in time order: a backdated event lands where it happened, after its equals.
        event = TimelineEvent(at=at, kind=kind, text=text, author=author, actor=actor)
        bisect.insort_right(self.incident.timeline, event, key=lambda e: e.at)
        if kind not in (TimelineKind.ESCALATED, TimelineKind.REPEAT):
            # Any word from the responders counts as a status update.
            tracker = self._deadlines
            tracker.status_anchor = max(tracker.status_anchor, workflow.now())
            tracker.status_misses = 0

    def _stamp_acknowledged(self, at: datetime) -> None:
        """Mitigating or resolving an unacknowledged incident acknowledges it (MTTA), no
        earlier than it was declared: a declaration after the fact, with the mitigation in the
        past, was acknowledged when it was declared."""
        clock = self.incident.clock
        if clock.acknowledged_at is None:
            clock.acknowledged_at = max(min(at, workflow.now()), clock.declared_at)

    def _changed_state(self) -> IncidentStatus:
        self._changed = True
        self._upsert_search_attributes()
        self._facts.changed()
        return IncidentStatus.of(self.incident)

    def _upsert_search_attributes(self) -> None:
        incident = self.incident
        clock = incident.clock
        pairs: list[SearchAttributeUpdate] = [
            sa.SEVERITY.value_set(incident.severity.value),
            sa.STATE.value_set(incident.state.value),
            sa.SERVICES.value_set(incident.services),
            sa.TEAMS.value_set(incident.teams),
            sa.TITLE.value_set(incident.title),
            sa.DECLARED_AT.value_set(clock.declared_at),
            sa.ESCALATION_COUNT.value_set(incident.escalation_count),
        ]
        pairs.append(sa.INCIDENT_KEY.value_set(incident.key))
        schedule = incident.review_schedule
        if schedule is not None and schedule.facilitator:
            pairs.append(sa.FACILITATOR.value_set(schedule.facilitator))
        if clock.resolved_at is not None:
            pairs.append(sa.RESOLVED_AT.value_set(clock.resolved_at))
        dues = [
            due
            for kind in INCIDENT_DEADLINES
            if (due := deadline_due_at(kind, incident, status_anchor=self._deadlines.status_anchor))
        ]
        pairs.append(sa.DUE_AT.value_set(min(dues)) if dues else sa.DUE_AT.value_unset())
        self._search_attributes.upsert(pairs)
