"""The golden incidents: a scripted set of incidents with known times, played on a Temporal
server by the product's own worker, so that every insights figure can be worked out by hand.

Known times come from two places. What people report is backdated from the moment each
incident is declared (`base`, whole seconds): when impact began, when it was detected, when
it was mitigated and resolved; those durations are exact. What the workflow stamps itself
(declared, acknowledged, review submitted, and a transition given no time) is read back from
its state once the set is built. Deadlines are placed far from the moments the test acts
(minutes or hours away, never seconds), so which escalations fire is fixed by the table, on a
real clock as on a virtual one.

Every incident runs under `golden_policy`: acknowledge within 1h (1s where a scenario waits
for that escalation), review within exactly 1h of resolution, and the incident ladder owner
at once, team lead +30m, manager +90m, leadership +4h, then every 4h. Action items need
verification; their ladder is owner at once, team lead +20s (or +1h), manager +1h.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from domain.action_item import (
    AcceptRisk,
    ActionItem,
    ActionItemState,
    ExtendDeadline,
    TicketChanged,
    TicketStatus,
    VerifyItem,
    action_workflow_id,
)
from domain.commands import Acknowledge, AddTimelineEvent, Cancel, Transition
from domain.facts import action_item_facts, incident_facts
from domain.incident import Incident, workflow_id_for
from domain.policy import DEFAULT_POLICY_DATA, Policy, Rung, _merge
from domain.review import SubmitReview
from domain.severity import Severity
from store import Store
from store.facts import FactsRepository, action_item_columns, incident_columns
from tests.helpers import declare, eventually, new_key
from tests.reviews import full_review, item_spec, local_route
from workflows.incident import IncidentWorkflow

OWNER, LEAD, MANAGER, TOP = Rung.OWNER, Rung.TEAM_LEAD, Rung.MANAGER, Rung.LEADERSHIP
REVIEW_WITHIN = timedelta(hours=1)
POLICY_DUE = timedelta(days=2)  # short-term items with no due date of their own
# An item "already due" is due this long before its review: within the minute of clock skew
# the review accepts, and past the +20s team-lead step, so both rungs fire at its first pass.
ALREADY_DUE = timedelta(seconds=-45)
DAY = timedelta(days=1)

Now = Literal["now"]
NOW: Now = "now"
ItemFate = Literal["done", "accept", "open", "reopen", "reopen-done", "extend-done", "extend-open"]
# What the definitions make of the item at the end of the window (hand-classified).
ItemOutcome = Literal["on_time", "extended", "late", "accepted", "open", "overdue"]
ReviewOutcome = Literal["on_time", "late", "overdue", "pending"]


def golden_policy(*, acknowledge_within: str = "1h", item_team_lead: str = "20s") -> Policy:
    rules: dict[str, Any] = {
        "acknowledge_within": acknowledge_within,
        "status_update_every": "1h",
        "resolve_within": "1h",
        "review_within": "1h",
        "escalation": {
            "owner": "0s",
            "team_lead": "30m",
            "manager": "90m",
            "leadership": "4h",
            "repeat_every": "4h",
        },
        "action_items": {
            "due_within": {"short_term_mitigation": "2d", "long_term_systemic": "30d"},
            "remind_before": ["1d"],
            "stall_after": "30d",
            "escalation": {
                "owner": "0s",
                "team_lead": item_team_lead,
                "manager": "1h",
                "leadership": "2h",
                "repeat_every": "2h",
            },
            "verification_required": True,
        },
    }
    severities = {s.value: rules for s in Severity}
    # Whether an incident finds another as a repeat would depend on whether the other's facts
    # were written before it looked: tests/test_repeats.py and tests/test_metrics.py prove the
    # repeats, and the golden figures expect none.
    data = {"severities": severities, "repeat_window": "0s"}
    return Policy.model_validate(_merge(DEFAULT_POLICY_DATA, data))


@dataclass(frozen=True)
class ItemScenario:
    team: str
    due: timedelta | None  # after the review; None: the policy's POLICY_DUE
    fate: ItemFate
    outcome: ItemOutcome
    escalations: tuple[Rung, ...] = ()  # what its ladder fires, in order
    extend_to: timedelta | None = None  # the new due date, after the extension


@dataclass(frozen=True)
class Scenario:
    """Times are minutes before the declaration (`NOW`: at that step, with no time given)."""

    name: str
    severity: Severity
    teams: tuple[str, ...]
    started: int | None
    detected: int | None
    acknowledge: Literal["command", "implied"] | None
    mitigated: int | Now | None = None
    resolved: int | Now | None = None
    review: ReviewOutcome | None = None  # on_time and late are submitted, the others not
    items: tuple[ItemScenario, ...] = ()
    escalations: tuple[Rung, ...] = ()  # what the incident's ladder fires, in order
    wait_for_acknowledge_escalation: bool = False  # acknowledge within 1s, and miss it
    item_team_lead: str = "20s"
    cancel: bool = False
    continue_as_new: bool = False


def _item(
    team: str,
    due: timedelta | None,
    fate: ItemFate,
    outcome: ItemOutcome,
    *escalations: Rung,
    extend_to: timedelta | None = None,
) -> ItemScenario:
    return ItemScenario(team, due, fate, outcome, tuple(escalations), extend_to)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("review on time", Severity.SEV2, ("payments",), 100, 95, "command", 80, 40,
             "on_time", (_item("payments", DAY, "done", "on_time"),)),
    Scenario("review late", Severity.SEV1, ("payments",), 240, 230, "command", 200, 140, "late",
             (_item("payments", ALREADY_DUE, "done", "late", OWNER, LEAD),),
             escalations=(OWNER, LEAD)),
    Scenario("no start, detected", Severity.SEV3, ("platform",), None, 50, "command", 30, 20,
             "on_time", (_item("platform", DAY, "accept", "accepted"),)),
    Scenario("no start, no detection", Severity.SEV3, ("platform",), None, None, "implied",
             NOW, NOW, "pending"),
    Scenario("cancelled after an escalation", Severity.SEV2, ("payments",), 30, 20, "command",
             10, escalations=(OWNER,), wait_for_acknowledge_escalation=True, cancel=True),
    Scenario("still open, unacknowledged", Severity.SEV1, ("search",), 15, 10, None,
             escalations=(OWNER,), wait_for_acknowledge_escalation=True),
    Scenario("mitigating, two teams", Severity.SEV2, ("payments", "platform"), 20, 18,
             "command"),
    Scenario("mitigated, no team", Severity.SEV3, (), 60, 45, "implied", 30),
    Scenario("continued as new", Severity.SEV2, ("platform",), 300, 290, "command", 250, 200,
             "late", (_item("platform", ALREADY_DUE, "extend-done", "extended", OWNER, LEAD,
                            extend_to=2 * DAY),),
             escalations=(OWNER, LEAD, MANAGER), continue_as_new=True),
    Scenario("review overdue", Severity.SEV1, ("search",), 400, 390, "command", 380, 360,
             "overdue", escalations=(OWNER, LEAD, MANAGER, TOP)),
    Scenario("review pending", Severity.SEV4, ("payments",), 20, 19, "command", 10, 5,
             "pending"),
    Scenario("items open, overdue, reopened", Severity.SEV2, ("payments",), 90, 80, "command",
             70, 50, "on_time",
             (_item("payments", DAY, "open", "open"),
              _item("payments", ALREADY_DUE, "open", "overdue", OWNER, LEAD),
              _item("platform", ALREADY_DUE, "reopen", "overdue", OWNER, LEAD))),
    Scenario("items with the owner rung only", Severity.SEV3, ("platform",), 70, 60, "command",
             50, 45, "on_time",
             (_item("platform", ALREADY_DUE, "open", "overdue", OWNER),
              _item("search", ALREADY_DUE, "extend-open", "open", OWNER, extend_to=2 * DAY),
              _item("payments", DAY, "reopen-done", "on_time")),
             item_team_lead="1h"),
    Scenario("extended before its first due date", Severity.SEV1, ("search",), 500, 480,
             "command", 470, 100, "late",
             # Done before the date the review set: on time, not "met only an extended date".
             (_item("search", DAY, "extend-done", "on_time", extend_to=3 * DAY),
              _item("search", ALREADY_DUE, "accept", "accepted", OWNER, LEAD)),
             escalations=(OWNER, LEAD)),
    Scenario("policy due date", Severity.SEV4, ("payments",), 10, 9, "command", 8, 7,
             "on_time", (_item("payments", None, "open", "open"),)),
    Scenario("quick platform fix", Severity.SEV2, ("platform",), 45, 44, "command", 30, 25,
             "on_time", (_item("platform", DAY, "done", "on_time"),)),
    Scenario("no start, resolved unmitigated", Severity.SEV3, ("payments",), None, 25,
             "implied", None, 10, "pending"),
    Scenario("started, detection not reported", Severity.SEV2, ("search",), 35, None,
             "command", 20, 15, "on_time", (_item("search", DAY, "done", "on_time"),)),
    Scenario("leadership repeats collapse", Severity.SEV1, ("payments",), 600, 590, "command",
             580, 575, "late", (_item("payments", ALREADY_DUE, "done", "late", OWNER, LEAD),),
             # Due 515m ago: leadership's 4h step and its 8h repeat have both passed; it hears once.
             escalations=(OWNER, LEAD, MANAGER, TOP)),
    Scenario("no team, pending", Severity.SEV4, (), 15, 14, "command", 13, 12, "pending"),
    Scenario("cancelled at once", Severity.SEV3, ("platform",), 5, 4, None, cancel=True),
    Scenario("payments follow-up", Severity.SEV2, ("payments",), 50, 40, "command", 35, 30,
             "on_time", (_item("payments", DAY, "done", "on_time"),)),
)  # fmt: skip


class GoldenClock(Protocol):
    """The server's clock as the builder sees it."""

    async def now(self) -> datetime: ...

    async def advance(self, delta: timedelta) -> None:
        """Let `delta` pass on the server's clock, where time only moves when told to."""


class WallClock:
    """The dev server: real time passes by itself (the builder waits for the events)."""

    async def now(self) -> datetime:
        return datetime.now(UTC)

    async def advance(self, delta: timedelta) -> None:
        return None


class SkippingClock:
    def __init__(self, env: WorkflowEnvironment) -> None:
        self._env = env

    async def now(self) -> datetime:
        return await self._env.get_current_time()

    async def advance(self, delta: timedelta) -> None:
        await self._env.sleep(delta)


@dataclass
class PlayedItem:
    scenario: ItemScenario
    workflow_id: str
    state: ActionItem | None = None


@dataclass
class Played:
    scenario: Scenario
    key: str
    base: datetime  # the declaration's moment as the test saw it (whole seconds)
    items: list[PlayedItem] = field(default_factory=list)
    first_run: str | None = None
    state: Incident | None = None

    @property
    def workflow_id(self) -> str:
        return workflow_id_for(self.key)

    def at(self, minutes: int) -> datetime:
        return self.base - timedelta(minutes=minutes)

    @property
    def incident(self) -> Incident:
        assert self.state is not None, "read the states first"
        return self.state


class GoldenBuilder:
    def __init__(self, client: Client, task_queue: str, clock: GoldenClock) -> None:
        self.client = client
        self.task_queue = task_queue
        self.clock = clock
        self.played: list[Played] = []

    # ---- the phases ----------------------------------------------------------------------

    async def build(self, scenarios: Sequence[Scenario] = SCENARIOS) -> list[Played]:
        """Declare and review every scenario, then play out the items; read the states."""
        self.played = list(await asyncio.gather(*(self.declare(s) for s in scenarios)))
        await self.advance_for_deadlines()
        await asyncio.gather(*(self.respond(p) for p in self.played))
        self.items_created_by = await self.clock.now()
        await asyncio.gather(*(self.play_items(p) for p in self.played))
        await self.read_states()
        return self.played

    async def declare(self, scenario: Scenario) -> Played:
        base = (await self.clock.now()).replace(microsecond=0)
        played = Played(scenario, new_key(), base)
        fields: dict[str, Any] = {"key": played.key, "teams": list(scenario.teams)}
        if scenario.started is not None:
            fields["started_at"] = played.at(scenario.started)
        if scenario.detected is not None:
            fields["detected_at"] = played.at(scenario.detected)
        if scenario.continue_as_new:
            fields["history_limit"] = 20
        policy = golden_policy(
            acknowledge_within="1s" if scenario.wait_for_acknowledge_escalation else "1h",
            item_team_lead=scenario.item_team_lead,
        )
        handle = await declare(
            self.client, self.task_queue, policy, severity=scenario.severity, **fields
        )
        played.first_run = handle.result_run_id
        return played

    async def advance_for_deadlines(self) -> None:
        """Past the 1s acknowledge deadlines (a virtual clock must be told to move)."""
        if any(p.scenario.wait_for_acknowledge_escalation for p in self.played):
            await self.clock.advance(timedelta(seconds=2))

    async def respond(self, played: Played) -> None:
        scenario = played.scenario
        handle = self.incident_handle(played)
        if scenario.wait_for_acknowledge_escalation:
            await self.wait_escalations(played, len(scenario.escalations))
        if scenario.acknowledge == "command":
            await handle.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
        if scenario.mitigated is not None:
            await handle.execute_update(IncidentWorkflow.mitigate, self.transition(played, "m"))
        if scenario.resolved is not None:
            await handle.execute_update(IncidentWorkflow.resolve, self.transition(played, "r"))
        # A resolution backdated past its review deadline fires the ladder's steps at once.
        await self.wait_escalations(played, len(scenario.escalations))
        if scenario.cancel:
            await handle.execute_update(IncidentWorkflow.cancel, Cancel(reason="false alarm"))
        if scenario.continue_as_new:
            await self.continue_as_new(played)
        if scenario.review in ("on_time", "late"):
            await self.submit_review(played)

    def transition(self, played: Played, which: Literal["m", "r"]) -> Transition:
        scenario = played.scenario
        moment = scenario.mitigated if which == "m" else scenario.resolved
        assert moment is not None
        return Transition(at=None if moment == NOW else played.at(moment), note=scenario.name)

    async def continue_as_new(self, played: Played) -> None:
        handle = self.incident_handle(played)
        for number in range(4):
            await handle.execute_update(
                IncidentWorkflow.add_timeline_event, AddTimelineEvent(text=f"note {number}")
            )

        first_run = self.client.get_workflow_handle(played.workflow_id, run_id=played.first_run)

        async def last_event() -> EventType.ValueType:
            return (await first_run.fetch_history()).events[-1].event_type

        continued = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        await eventually(last_event, lambda event: event == continued)

    async def submit_review(self, played: Played) -> None:
        now = await self.clock.now()
        specs = [
            item_spec(
                item.team,
                f"{played.scenario.name}: item {number}",
                due_at=None if item.due is None else now + item.due,
            )
            for number, item in enumerate(played.scenario.items, start=1)
        ]
        teams = {item.team for item in played.scenario.items}
        await self.incident_handle(played).execute_update(
            IncidentWorkflow.submit_review,
            SubmitReview(
                review=full_review(*specs),
                routes={team: local_route(team) for team in teams},
                by="fran",
            ),
        )
        for number, scenario in enumerate(played.scenario.items, start=1):
            played.items.append(PlayedItem(scenario, action_workflow_id(played.key, number)))
        # Open (its ticket made), with the steps its ladder owes for a due date already past.
        for item in played.items:
            await eventually(
                lambda item=item: self.item_state(item),  # type: ignore[misc]
                lambda state, item=item: (  # type: ignore[misc]
                    state.state is ActionItemState.OPEN
                    and len(state.escalations) == len(item.scenario.escalations)
                ),
            )

    async def play_items(self, played: Played) -> None:
        for item in played.items:
            fate = item.scenario.fate
            handle = self.client.get_workflow_handle(item.workflow_id)
            if fate in ("extend-done", "extend-open"):
                assert item.scenario.extend_to is not None
                due = await self.clock.now() + item.scenario.extend_to
                await handle.execute_update(
                    "extend_deadline", ExtendDeadline(due_at=due, reason="vendor", by="bob")
                )
            if fate in ("reopen", "reopen-done"):
                await self.ticket(item, TicketStatus.CLOSED, ActionItemState.VERIFYING)
                await self.ticket(item, TicketStatus.OPEN, ActionItemState.OPEN)
            if fate in ("done", "reopen-done", "extend-done"):
                await self.ticket(item, TicketStatus.CLOSED, ActionItemState.VERIFYING)
                await handle.execute_update("verify", VerifyItem(evidence="dashboards", by="carol"))
            if fate == "accept":
                await handle.execute_update(
                    "accept_risk", AcceptRisk(rationale="replaced by the rewrite", approver="vp")
                )

    async def ticket(
        self, item: PlayedItem, status: TicketStatus, then: ActionItemState
    ) -> ActionItem:
        state = await self.item_state(item)
        assert state.ticket is not None
        # The tracker's time of each change rises, so none is taken for a late delivery.
        changes = (state.ticket_status_at or state.created_at) + timedelta(seconds=1)
        await self.client.get_workflow_handle(item.workflow_id).signal(
            "ticket_changed",
            TicketChanged(
                ticket_key=state.ticket.key,
                event="closed" if status is TicketStatus.CLOSED else "reopened",
                status=status,
                at=max(changes, await self.clock.now()),
                source="local",
                delivery_id=str(uuid.uuid4()),
            ),
        )
        return await eventually(lambda: self.item_state(item), lambda s: s.state is then)

    async def read_states(self) -> None:
        for played in self.played:
            played.state = await self.incident_handle(played).query(IncidentWorkflow.state)
            for item in played.items:
                item.state = await self.item_state(item)

    # ---- reading ---------------------------------------------------------------------------

    def incident_handle(self, played: Played) -> WorkflowHandle[Any, Incident]:
        """The incident's latest run (it may have continued as new)."""
        return self.client.get_workflow_handle(played.workflow_id, result_type=Incident)

    async def item_state(self, item: PlayedItem) -> ActionItem:
        state: ActionItem = await self.client.get_workflow_handle(item.workflow_id).query(
            "state", result_type=ActionItem
        )
        return state

    async def wait_escalations(self, played: Played, count: int) -> Incident:
        handle = self.incident_handle(played)
        return await eventually(
            lambda: handle.query(IncidentWorkflow.state),
            lambda incident: incident.escalation_count >= count,
        )

    async def terminate_running(self) -> None:
        """Items and incidents left open would hold a time-skipping server's clock (those
        already finished refuse, and that is fine)."""
        ids = [p.workflow_id for p in self.played] + [
            i.workflow_id for p in self.played for i in p.items
        ]
        for workflow_id in ids:
            with contextlib.suppress(RPCError):
                await self.client.get_workflow_handle(workflow_id).terminate("golden set done")


async def unsettled(builder: GoldenBuilder, store: Store) -> list[str]:
    """What `insights check` would list, for servers that cannot list workflows (the
    time-skipping test server does not implement ListWorkflowExecutions): each workflow's
    facts, derived from its queried state, against its row, revision included."""
    facts = FactsRepository(store)
    rows, item_rows = await asyncio.to_thread(lambda: (facts.incidents(), facts.action_items()))
    problems: list[str] = []

    def compare(subject: str, expected: dict[str, Any], stored: dict[str, Any] | None) -> None:
        if stored is None:
            problems.append(f"{subject}: no row")
            return
        problems.extend(
            f"{subject}.{name}: workflow {value!r}, row {stored.get(name)!r}"
            for name, value in expected.items()
            if stored.get(name) != value
        )

    for played in builder.played:
        incident = await builder.incident_handle(played).query(IncidentWorkflow.state)
        derived = incident_facts(incident, revision=incident.facts_written)
        expected = {**incident_columns(derived), "revision": derived.revision}
        compare(played.key, expected, rows.get(played.key))
        for item in played.items:
            state = await builder.item_state(item)
            item_facts = action_item_facts(state, revision=state.facts_written)
            expected = {**action_item_columns(item_facts), "revision": item_facts.revision}
            compare(item_facts.id, expected, item_rows.get(item_facts.id))
    return problems


async def settle(probe: Callable[[], Awaitable[list[str]]]) -> None:
    await eventually(probe, lambda problems: problems == [], timeout=30)
