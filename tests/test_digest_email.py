"""The digest as it arrives at a real SMTP server (aiosmtpd on loopback, STARTTLS and AUTH):
a seeded week's email parsed part by part and compared with the digest of that week; the
schedule's calendar and catch-up; runs started late for three missed weeks send one email."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleBackfill,
    ScheduleOverlapPolicy,
    WorkflowFailureError,
)

from domain.digest_html import html
from domain.digest_policy import DigestPolicy
from domain.digest_runs import Channel, DigestRequest, DigestRunResult, message_id
from domain.digest_text import chat_text, plain_text, subject
from integrations.temporal_schedules import (
    DIGEST_CATCHUP_WINDOW,
    digest_schedule_id,
    ensure_digest_schedule,
)
from store import configured_store
from store.digest_facts import DigestReader
from store.digests import DeliveryStatus
from tests.digest_week import (
    RECIPIENTS,
    SENDER,
    SLOT,
    WEEK,
    ZONE,
    delivery_record,
    seed,
    smtp_settings,
)
from tests.helpers import eventually
from tests.smtp_server import PASSWORD, SmtpServer, smtp_server
from tests.test_notifier import Receiver, receiver  # noqa: F401 (a fixture)
from worker import build_worker
from workflows.digest import WeeklyDigestWorkflow


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as server:
        yield server


async def test_a_seeded_week_arrives_as_its_digest(
    client: Client,
    task_queue: str,
    tmp_path: Path,
    smtp: SmtpServer,
    receiver: Receiver,  # noqa: F811
) -> None:
    home = tmp_path / "home"
    settings = smtp_settings(home, smtp).model_copy(
        update={"chat_webhook_url": SecretStr(receiver.url)}
    )
    store = configured_store(settings)
    seed(store)
    delivery = f"manual-{uuid.uuid4().hex[:8]}"
    async with build_worker(client, settings, task_queue=task_queue):
        result = await client.execute_workflow(
            WeeklyDigestWorkflow.run,
            DigestRequest(delivery=delivery, week=WEEK),
            id=f"digest-test-{delivery}",
            task_queue=task_queue,
        )
    expected = DigestReader(store).digest(task_queue=task_queue, slot=SLOT, timezone=ZONE)
    mid = message_id(task_queue, delivery, "digest.example.com")
    assert [(o.channel, o.status, o.message_id) for o in result.outcomes] == [
        (Channel.EMAIL, "sent", mid),
        (Channel.CHAT, "sent", mid),
    ]
    # The chat's short form, keyed like the email so a receiver can drop a resent copy.
    [posted] = await receiver.received()
    assert posted.body["text"] == chat_text(expected)
    assert posted.headers["idempotency-key"] == mid
    assert "Action items: 1 due, 2 overdue" in posted.body["text"]
    assert result.slot == SLOT

    [received] = smtp.handler.messages()
    assert smtp.handler.logins == ["digest"]  # after STARTTLS: the server requires it
    assert received.envelope_from == SENDER
    assert received.recipients == RECIPIENTS
    message = received.message
    assert message["Subject"] == subject(expected)
    assert message["Message-ID"] == mid
    assert message["From"] == SENDER
    assert message["To"] == ", ".join(RECIPIENTS)
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(preferencelist=("plain",))
    rich = message.get_body(preferencelist=("html",))
    assert text is not None and rich is not None
    # SMTP carries lines ending in CRLF.
    body = text.get_content().replace("\r\n", "\n")
    assert body == plain_text(expected)
    assert rich.get_content().replace("\r\n", "\n").rstrip("\n") == html(expected)
    # The seeded week's figures, as the reader of the email sees them.
    assert "  SEV2: 1 declared, 2 open\n" in body
    assert "INC-A INC-A title — held Thu 26 Nov 13:00, missing security (waived)" in body
    assert "on-time closure: 50% (1 of 2) vs 67% (2 of 3)" in body
    assert "approved by vp-eng" in body and "INC-A INC-A title → INC-OLD1, INC-OLD2" in body
    assert PASSWORD not in message.as_string()

    assert delivery_record(store, task_queue, delivery) == (DeliveryStatus.SENT, mid, 1)


async def test_a_refused_login_fails_the_run_at_once_and_names_no_password(
    client: Client, task_queue: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    wrong = smtp.url.replace(PASSWORD, "not-the-password")
    settings = smtp_settings(tmp_path / "home", smtp).model_copy(
        update={"smtp_url": SecretStr(wrong)}
    )
    async with build_worker(client, settings, task_queue=task_queue):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(
                WeeklyDigestWorkflow.run,
                DigestRequest(delivery="manual-refused", week=WEEK),
                id=f"digest-test-{uuid.uuid4()}",
                task_queue=task_queue,
            )
    message = str(failed.value.cause)
    assert "refused the SMTP login" in message and "AFTERACTION_SMTP_URL" in message
    assert "not-the-password" not in message
    assert smtp.handler.messages() == []


async def test_a_refused_webhook_does_not_hold_up_the_email(
    client: Client,
    task_queue: str,
    tmp_path: Path,
    smtp: SmtpServer,
    receiver: Receiver,  # noqa: F811
) -> None:
    receiver.status = 404
    settings = smtp_settings(tmp_path / "home", smtp).model_copy(
        update={"chat_webhook_url": SecretStr(receiver.url)}
    )
    async with build_worker(client, settings, task_queue=task_queue):
        with pytest.raises(WorkflowFailureError) as failed:
            await client.execute_workflow(
                WeeklyDigestWorkflow.run,
                DigestRequest(delivery="manual-webhook-refused", week=WEEK),
                id=f"digest-test-{uuid.uuid4()}",
                task_queue=task_queue,
            )
    assert "chat: " in str(failed.value.cause) and "HTTP 404" in str(failed.value.cause)
    assert len(smtp.handler.messages()) == 1
    assert len(await receiver.received()) == 1  # refused for good: not retried


async def test_a_disabled_digest_is_sent_only_by_hand(
    client: Client, task_queue: str, tmp_path: Path, smtp: SmtpServer
) -> None:
    settings = smtp_settings(tmp_path / "home", smtp)
    assert settings.policy_file is not None
    with settings.policy_file.open("a", encoding="utf-8") as policy:
        policy.write("enabled = false\n")
    async with build_worker(client, settings, task_queue=task_queue):
        scheduled, by_hand = [
            await client.execute_workflow(
                WeeklyDigestWorkflow.run,
                request,
                id=f"digest-test-{uuid.uuid4()}",
                task_queue=task_queue,
            )
            for request in (DigestRequest(), DigestRequest(delivery="manual-while-off"))
        ]
    assert scheduled.outcomes == []
    assert [o.status for o in by_hand.outcomes] == ["sent"]
    assert len(smtp.handler.messages()) == 1


async def test_the_schedule_follows_the_policy(client: Client) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    monday = DigestPolicy()
    assert await ensure_digest_schedule(client, task_queue, monday, ZONE) == "created"
    assert await ensure_digest_schedule(client, task_queue, monday, ZONE) == "unchanged"
    handle = client.get_schedule_handle(digest_schedule_id(task_queue))
    described = await handle.describe()
    spec = described.schedule.spec
    assert spec.time_zone_name == ZONE
    [calendar] = spec.calendars
    assert [(r.start, r.end) for r in calendar.day_of_week] == [(1, 1)]
    assert [(r.start, r.end) for r in calendar.hour] == [(9, 9)]
    assert [(r.start, r.end) for r in calendar.minute] == [(0, 0)]
    assert described.schedule.policy.catchup_window == DIGEST_CATCHUP_WINDOW
    assert described.schedule.policy.overlap is ScheduleOverlapPolicy.SKIP
    # The server's own next times: Mondays, 09:00 in Berlin, whatever the offset that week.
    upcoming = described.info.next_action_times[:3]
    assert [t.astimezone(SLOT.tzinfo).strftime("%a %H:%M") for t in upcoming] == ["Mon 09:00"] * 3

    friday = DigestPolicy(weekday="friday", time="16:30")
    assert await ensure_digest_schedule(client, task_queue, friday, ZONE) == "updated"
    described = await handle.describe()
    [calendar] = described.schedule.spec.calendars
    assert [(r.start, r.end) for r in calendar.day_of_week] == [(5, 5)]
    assert [(r.start, r.end) for r in calendar.minute] == [(30, 30)]

    disabled = DigestPolicy(enabled=False)
    assert await ensure_digest_schedule(client, task_queue, disabled, ZONE) == "deleted"
    assert await ensure_digest_schedule(client, task_queue, disabled, ZONE) == "off"


async def test_runs_started_late_for_three_missed_weeks_send_the_latest_once(
    client: Client, tmp_path: Path, smtp: SmtpServer
) -> None:
    """The runs the server starts for missed slots (a backfill over the last three weeks, run
    one after another as a catch-up is) all send the latest slot: one email."""
    task_queue = f"tq-{uuid.uuid4()}"
    settings = smtp_settings(tmp_path / "home", smtp)
    policy = DigestPolicy(timezone=ZONE, recipients=RECIPIENTS)
    await ensure_digest_schedule(client, task_queue, policy, ZONE)
    handle = client.get_schedule_handle(digest_schedule_id(task_queue))
    now = datetime.now(UTC)
    try:
        async with build_worker(client, settings, task_queue=task_queue):
            await handle.backfill(
                ScheduleBackfill(
                    start_at=now - timedelta(days=21),
                    end_at=now,
                    overlap=ScheduleOverlapPolicy.BUFFER_ALL,
                )
            )
            described = await eventually(
                handle.describe,
                lambda found: len(found.info.recent_actions) == 3,
                timeout=30,
            )
            results = []
            for recent in described.info.recent_actions:
                action = recent.action
                assert isinstance(action, ScheduleActionExecutionStartWorkflow)
                run = client.get_workflow_handle(
                    action.workflow_id,
                    run_id=action.first_execution_run_id,
                    result_type=DigestRunResult,
                )
                results.append(await run.result())
    finally:
        await handle.delete()
    scheduled = [r.scheduled_at for r in described.info.recent_actions]
    assert len({s.date() for s in scheduled}) == 3  # three different missed Mondays
    assert {r.slot for r in results} == {max(scheduled)}
    statuses = sorted(o.status for r in results for o in r.outcomes)
    assert statuses == ["already_sent", "already_sent", "sent"]
    assert len(smtp.handler.messages()) == 1
