"""The period report for auditors: incidents run on the dev server (deadlines met, late and
missed; a review held in full, one held with a waiver, one not held; items closed on time with
evidence, accepted with an approver, still open; one incident cancelled), and every field of the
report compared with values worked out here from the workflows' own times and the policy's
durations. Then the Markdown and the CSV say the same."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from app.formats.audit_report import report_csv, report_html, report_markdown
from app.services.actions import ActionItems
from app.services.incident_filter import IncidentFilter
from app.services.incidents import Incidents
from app.services.period_evidence import PeriodEvidence
from domain.action_item import (
    AcceptRisk,
    ActionItemState,
    TicketStatus,
    VerifyItem,
    action_workflow_id,
)
from domain.audit.report import ItemOutcome, ReviewStanding, Standing
from domain.commands import Acknowledge, Cancel, Transition
from domain.escalation import DeadlineKind
from domain.functions import ReviewFunction
from domain.identity import Role
from domain.incident import Incident
from domain.policy import ActionKind
from domain.review import Participant, SubmitReview
from settings import Settings
from tests.api_server import serving_api
from tests.auth import bearer, token_secret
from tests.cli import Cli, cli_env
from tests.helpers import declare, eventually
from tests.policies import fast_policy
from tests.reviews import full_review, item_spec, item_state, local_route, signal_ticket
from worker import build_worker
from workflows.incident import IncidentWorkflow

Handle = WorkflowHandle[IncidentWorkflow, Incident]
ROUTES = {"payments": local_route("payments")}
# Acknowledge within 2 s, resolve within 6 s, review within 3 s of the resolution.
POLICY = fast_policy(status_update_every="1h")


async def state(handle: Handle) -> Incident:
    return await handle.query(IncidentWorkflow.state)


def seconds(late: timedelta) -> int:
    return round(late.total_seconds())


async def test_the_period_report_says_what_the_workflows_hold(
    client: Client, task_queue: str, worker: object
) -> None:
    # From now: an incident an earlier test declared (its worker gone) is not in the period.
    since = datetime.now(UTC)
    service = f"svc-{uuid.uuid4().hex[:8]}"

    async def incident(**fields: Any) -> Handle:
        return await declare(client, task_queue, POLICY, services=[service], **fields)

    # In time everywhere: acknowledged, resolved and reviewed at once; one item verified, one
    # accepted.
    on_time = await incident(title="on time")
    await on_time.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    await on_time.execute_update(IncidentWorkflow.resolve, Transition())
    review = full_review(
        item_spec("payments", "Cap the pool", kind=ActionKind.LONG_TERM),
        item_spec("payments", "Rewrite the pool", kind=ActionKind.LONG_TERM),
    )
    await on_time.execute_update(
        IncidentWorkflow.submit_review, SubmitReview(review=review, routes=ROUTES)
    )
    key = (await state(on_time)).key
    cap, rewrite = (action_workflow_id(key, n) for n in (1, 2))
    opened = await eventually(
        lambda: item_state(client, cap), lambda i: i.state is ActionItemState.OPEN
    )
    assert opened.ticket is not None
    await signal_ticket(client, cap, opened.ticket.key, TicketStatus.CLOSED)
    await eventually(
        lambda: item_state(client, cap), lambda i: i.state is ActionItemState.VERIFYING
    )
    await client.get_workflow_handle(cap).execute_update(
        "verify", VerifyItem(evidence="pool wait p99 flat for 7 days", by="carol")
    )
    await eventually(lambda: item_state(client, rewrite), lambda i: i.state is ActionItemState.OPEN)
    await client.get_workflow_handle(rewrite).execute_update(
        "accept_risk", AcceptRisk(rationale="replaced by the new pool", approver="vp-eng")
    )

    # Late everywhere: acknowledged after its 2 s, resolved after its 6 s, reviewed without
    # two of the functions SEV2 requires, with a waiver; its item stays open.
    late = await incident(title="late")
    await eventually(lambda: state(late), lambda i: bool(i.escalations), timeout=10)
    await late.execute_update(IncidentWorkflow.acknowledge, Acknowledge(commander="bob"))
    await eventually(
        lambda: state(late),
        lambda i: any(e.deadline is DeadlineKind.RESOLVE for e in i.escalations),
        timeout=15,
    )
    await late.execute_update(IncidentWorkflow.resolve, Transition())
    waived = full_review(
        item_spec("payments", "Alert on saturation", kind=ActionKind.LONG_TERM),
        participants=[Participant(name="erin", function=ReviewFunction.ENGINEERING)],
        missing_function_waiver="operations and product were at the offsite",
    )
    await late.execute_update(
        IncidentWorkflow.submit_review, SubmitReview(review=waived, routes=ROUTES)
    )

    # Resolved, never reviewed: its review deadline passes. And one cancelled.
    unreviewed = await incident(title="unreviewed")
    await unreviewed.execute_update(IncidentWorkflow.resolve, Transition())
    cancelled = await incident(title="false alarm")
    await cancelled.execute_update(IncidentWorkflow.cancel, Cancel(reason="synthetic check"))
    await eventually(
        lambda: state(unreviewed),
        lambda i: any(e.deadline is DeadlineKind.REVIEW for e in i.escalations),
    )

    incidents = Incidents(client, task_queue=task_queue, policy=POLICY)
    # Visibility lists them a moment after their starts.
    await eventually(
        lambda: incidents.list(),
        lambda page: (
            {"on time", "late", "unreviewed", "false alarm"}
            <= {s.title for s in page.items if service in s.services}
        ),
    )
    until = datetime.now(UTC) + timedelta(seconds=1)
    report = await PeriodEvidence(incidents, ActionItems(client)).report(since, until)
    # Tests run one at a time: the period holds this test's four incidents, and only them.
    rows = {row.title: row for row in report.incidents}
    assert sorted(rows) == ["false alarm", "late", "on time", "unreviewed"]
    states = {
        title: await state(handle)
        for title, handle in (
            ("on time", on_time),
            ("late", late),
            ("unreviewed", unreviewed),
            ("false alarm", cancelled),
        )
    }

    # ---- on time -------------------------------------------------------------------------
    row, held = rows["on time"], states["on time"]
    clock = held.clock
    assert clock.acknowledged_at is not None and clock.resolved_at is not None
    assert row.acknowledge.due_at == clock.declared_at + timedelta(seconds=2)
    assert (row.acknowledge.standing, row.acknowledge.by_seconds) == (
        Standing.MET,
        seconds(clock.acknowledged_at - (clock.declared_at + timedelta(seconds=2))),
    )
    assert row.acknowledge.by_seconds is not None and row.acknowledge.by_seconds <= -1
    assert row.resolve.standing is Standing.MET
    assert row.review.due_at == clock.resolved_at + timedelta(seconds=3)
    assert (row.review.standing, row.review.done_at) == (Standing.MET, clock.review_held_at)
    assert (row.review_standing, row.missing_functions, row.waiver) == (
        ReviewStanding.HELD,
        [],
        None,
    )
    verified, accepted = row.items
    assert (verified.id, verified.outcome, verified.verified_by, verified.evidence) == (
        f"{held.key}-1",
        ItemOutcome.ON_TIME,
        "carol",
        "pool wait p99 flat for 7 days",
    )
    assert (accepted.outcome, accepted.approver, accepted.rationale) == (
        ItemOutcome.ACCEPTED,
        "vp-eng",
        "replaced by the new pool",
    )

    # ---- late ----------------------------------------------------------------------------
    row, held = rows["late"], states["late"]
    clock = held.clock
    ack_due, resolve_due = (clock.declared_at + timedelta(seconds=s) for s in (2, 6))
    assert clock.acknowledged_at is not None and clock.resolved_at is not None
    assert (row.acknowledge.standing, row.acknowledge.by_seconds) == (
        Standing.LATE,
        seconds(clock.acknowledged_at - ack_due),
    )
    assert (row.resolve.standing, row.resolve.by_seconds) == (
        Standing.LATE,
        seconds(clock.resolved_at - resolve_due),
    )
    assert row.review_standing is ReviewStanding.HELD_WAIVED
    assert row.missing_functions == ["operations", "product"]
    assert row.waiver == "operations and product were at the offsite"
    [still_open] = row.items
    assert (still_open.outcome, still_open.closed_at) == (ItemOutcome.OPEN, None)

    # ---- unreviewed and cancelled ------------------------------------------------------------
    row, held = rows["unreviewed"], states["unreviewed"]
    assert held.clock.resolved_at is not None
    review_due = held.clock.resolved_at + timedelta(seconds=3)
    assert (row.review.standing, row.review.due_at, row.review_standing) == (
        Standing.MISSED,
        review_due,
        ReviewStanding.NOT_HELD,
    )
    assert row.review.by_seconds == seconds(report.made_at - review_due)
    row = rows["false alarm"]
    assert (row.state.value, row.cancel_reason, row.acknowledge.standing) == (
        "cancelled",
        "synthetic check",
        Standing.NOT_APPLICABLE,
    )

    # ---- totals, counted by hand from the four --------------------------------------------
    totals = report.totals
    assert (totals.incidents, totals.cancelled) == (3, 1)
    # Resolving the unreviewed one acknowledged it too, in time.
    assert totals.acknowledge == totals.resolve == {Standing.LATE: 1, Standing.MET: 2}
    assert totals.review == {Standing.MET: 2, Standing.MISSED: 1}
    assert totals.reviews == {
        ReviewStanding.HELD: 1,
        ReviewStanding.HELD_WAIVED: 1,
        ReviewStanding.NOT_HELD: 1,
    }
    assert totals.items == {ItemOutcome.ACCEPTED: 1, ItemOutcome.ON_TIME: 1, ItemOutcome.OPEN: 1}
    assert totals.verified_items == 1

    # ---- the Markdown and the CSV say the same ------------------------------------------
    markdown = report_markdown(report)
    assert markdown.index("## Totals") < markdown.index("## Incidents")
    for row in report.incidents:
        assert row.key in markdown
    assert "held, waived: without operations, product (operations and product were" in markdown
    assert "| risk accepted |" in markdown
    assert "approved by vp-eng: replaced by the new pool" in markdown
    html = report_html(report)
    assert "held, waived: without operations, product (operations and product were at the " in html
    assert html.count("<tr>") == 7 + (1 + 4) + (1 + 3)  # totals; incidents, items and headers
    table = list(csv.DictReader(io.StringIO(report_csv(report))))
    assert table[0]["key"] == "totals"
    by_key = {line["key"]: line for line in table[1:]}
    late_line = by_key[states["late"].key]
    assert (late_line["acknowledge_standing"], late_line["acknowledge_by_seconds"]) == (
        "late",
        str(rows["late"].acknowledge.by_seconds),
    )
    assert late_line["missing_functions"] == "operations product"


async def test_auditors_get_the_report_from_the_api_and_the_cli(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    address = dev_env.client.service_client.config.target_host
    task_queue = f"tq-{uuid.uuid4()}"
    settings = Settings(
        home=tmp_path,
        temporal_address=address,
        task_queue=task_queue,
        policy_file=None,
        routing_file=None,
    )
    since = datetime.now(UTC)
    async with build_worker(dev_env.client, settings):
        handle = await declare(dev_env.client, task_queue, POLICY, title="reported")
        await handle.execute_update(IncidentWorkflow.resolve, Transition())
        key = (await state(handle)).key
        incidents = Incidents(dev_env.client, task_queue=task_queue, policy=POLICY)
        await eventually(
            lambda: incidents.list(IncidentFilter(since=since)),
            lambda page: [s.key for s in page.items] == [key],
        )
        auditor = bearer(token_secret(settings, role=Role.AUDITOR))
        period = {"from": since.isoformat(), "format": "csv"}
        with serving_api(settings) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                answer = await http.get("/api/audit/report", params=period, headers=auditor)
                assert answer.status_code == 200, answer.text
                assert answer.headers["content-type"].startswith("text/csv")
                rows = list(csv.DictReader(io.StringIO(answer.text)))
                assert [(row["key"], row["review_held"]) for row in rows[1:]] == [(key, "not held")]
                viewer = bearer(token_secret(settings, role=Role.VIEWER))
                refused = await http.get("/api/audit/report", params=period, headers=viewer)
                assert refused.status_code == 403, refused.text
                garbled = {"from": "last tuesday"}
                bad = await http.get("/api/audit/report", params=garbled, headers=auditor)
                assert bad.status_code == 422, bad.text
                assert "'last tuesday' is not a time" in bad.json()["detail"]
                backwards = {"from": since.isoformat(), "to": "2000-01-01"}
                bad = await http.get("/api/audit/report", params=backwards, headers=auditor)
                assert bad.status_code == 409, bad.text
                assert "before it starts" in bad.json()["detail"]

        env = cli_env(tmp_path, address) | {"AFTERACTION_TASK_QUEUE": task_queue}
        done = await Cli(home=tmp_path, env=env, prefix=("audit",))(
            "report", "--from", since.isoformat(), "--format", "html", "--out", "report.html"
        )
        assert done.returncode == 0, done.stderr
        page = (tmp_path / "report.html").read_text(encoding="utf-8")
        assert f"<td>{key} reported</td>" in page
