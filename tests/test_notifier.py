"""The Notifier activity against a real HTTP receiver on 127.0.0.1: what it posts, how each
failure is classified for Temporal's retries, and that the webhook URL (a secret) never
shows in an error or a log line. Last, the whole path on the dev server: a missed
acknowledgement reaches the chat webhook, owner first, then the team lead."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import Notifier
from domain.commands import Cancel
from domain.escalation import DeadlineKind
from domain.incident import IncidentState
from domain.notifications import EscalationNotice
from domain.policy import Rung
from domain.severity import Severity
from settings import Settings
from telemetry.logs import configure_logging
from tests.helpers import declare, eventually
from tests.policies import fast_policy
from worker import build_worker
from workflows.incident import IncidentWorkflow

TOKEN = "SECRET-TOKEN"
HOOK_PATH = f"/hooks/T000/{TOKEN}"
WORKFLOW_ID = "incident/INC-261127-7KQ2"
SETTING = "AFTERACTION_CHAT_WEBHOOK_URL"


@dataclass
class Received:
    at: datetime
    path: str
    headers: dict[str, str]  # names lower-cased
    body: dict[str, Any]


@dataclass
class Receiver:
    """A chat webhook: records every POST and answers with `status` and `reply_headers`."""

    url: str = ""
    status: int = 200
    reply_headers: dict[str, str] = field(default_factory=dict)
    requests: list[Received] = field(default_factory=list)

    async def received(self) -> list[Received]:
        return list(self.requests)


def handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            receiver.requests.append(
                Received(
                    at=datetime.now(UTC),
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=json.loads(body),
                )
            )
            self.send_response(receiver.status)
            for name, value in receiver.reply_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request line holds the secret path; keep stderr clean

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(receiver))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}{HOOK_PATH}"
    yield receiver
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """The captured output, for tests that log as JSON (`configure_logging` in the test: the
    captured stdout is only in place then); process-wide state is put back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    structlog.reset_defaults()
    yield capsys
    structlog.reset_defaults()
    root.handlers, root.level = handlers, level


def make_notice() -> EscalationNotice:
    return EscalationNotice(
        incident_key="INC-261127-7KQ2",
        title="Checkout errors",
        severity=Severity.SEV2,
        deadline=DeadlineKind.ACKNOWLEDGE,
        due_at=datetime(2026, 11, 27, 14, 18, tzinfo=UTC),
        rung=Rung.TEAM_LEAD,
        recipients=["@payments-lead", "bob"],
        reason="SEV2 not acknowledged within 15m (due 2026-11-27 14:18:00 UTC)",
        step=2,
    )


async def notify(
    url: str | None, notice: EscalationNotice | None = None, *, attempt: int = 1
) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=WORKFLOW_ID, attempt=attempt)
    notifier = Notifier(SecretStr(url) if url is not None else None, timeout=5.0)
    await env.run(notifier.notify_escalation, notice or make_notice())


async def failure(url: str) -> Exception:
    with pytest.raises(Exception) as raised:
        await notify(url)
    return raised.value


def retryable(error: BaseException) -> bool:
    """What Temporal decides (NOTIFY_RETRY names no non-retryable types)."""
    return not (isinstance(error, ApplicationError) and error.non_retryable)


def assert_secret_kept(error: BaseException, capsys: pytest.CaptureFixture[str]) -> None:
    captured = capsys.readouterr()
    for text in (
        str(error),
        repr(error),
        "".join(traceback.format_exception(error)),
        captured.out,
        captured.err,
    ):
        assert TOKEN not in text
        assert "SECRET TOKEN" not in text
    # The escalation is logged before delivery is tried, whatever happens to the delivery.
    events = [json.loads(line)["event"] for line in captured.out.splitlines() if line.strip()]
    assert "incident.escalated" in events


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# ---- delivery ------------------------------------------------------------------------


async def test_posts_the_notice_as_json_with_an_idempotency_key(receiver: Receiver) -> None:
    notice = make_notice()
    await notify(receiver.url, notice)

    [request] = receiver.requests
    assert request.path == HOOK_PATH
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == f"{WORKFLOW_ID}/acknowledge/2"
    text = request.body["text"]
    for expected in ("@payments-lead", "@bob", notice.incident_key, "SEV2", notice.reason):
        assert expected in text
    assert "team lead" in text
    assert "@@" not in text
    assert EscalationNotice.model_validate(request.body["afteraction"]) == notice


async def test_without_a_url_only_the_log_event_is_written(
    logs: pytest.CaptureFixture[str],
) -> None:
    configure_logging(log_format="json")
    notice = make_notice()
    await notify(None, notice)

    [line] = [json.loads(line) for line in logs.readouterr().out.splitlines() if line.strip()]
    assert line["event"] == "incident.escalated"
    assert line["level"] == "warning"
    assert line["incident_key"] == notice.incident_key
    assert line["workflow_id"] == WORKFLOW_ID
    assert line["deadline"] == "acknowledge"
    assert line["rung"] == "team_lead"
    assert line["recipients"] == ["@payments-lead", "bob"]
    assert line["reason"] == notice.reason
    assert line["attempt"] == 1


async def test_a_retried_delivery_is_not_logged_as_a_second_escalation(
    logs: pytest.CaptureFixture[str],
) -> None:
    configure_logging(log_format="json")
    await notify(None, make_notice(), attempt=3)
    events = [json.loads(line)["event"] for line in logs.readouterr().out.splitlines() if line]
    assert "incident.escalated" not in events


# ---- failures: classified for Temporal's retries, the URL never shown ------------------


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410])
async def test_a_refusal_is_not_retried_and_names_the_setting(
    receiver: Receiver, logs: pytest.CaptureFixture[str], status: int
) -> None:
    configure_logging(log_format="json")
    receiver.status = status
    error = await failure(receiver.url)

    assert isinstance(error, ApplicationError)
    assert error.non_retryable
    assert SETTING in error.message
    assert str(status) in error.message
    assert len(receiver.requests) == 1
    assert_secret_kept(error, logs)


@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_an_overloaded_or_failing_receiver_is_retried(
    receiver: Receiver, logs: pytest.CaptureFixture[str], status: int
) -> None:
    configure_logging(log_format="json")
    receiver.status = status
    error = await failure(receiver.url)

    assert retryable(error)
    assert str(status) in str(error)
    assert_secret_kept(error, logs)


@pytest.mark.parametrize(
    ("retry_after", "delay"),
    [("7", timedelta(seconds=7)), ("86400", timedelta(minutes=10)), ("soon", None)],
)
async def test_retry_after_sets_the_next_retry_delay(
    receiver: Receiver, retry_after: str, delay: timedelta | None
) -> None:
    receiver.status = 429
    receiver.reply_headers = {"Retry-After": retry_after}
    error = await failure(receiver.url)

    assert isinstance(error, ApplicationError)
    assert not error.non_retryable
    assert error.next_retry_delay == delay


async def test_retry_after_as_an_http_date(receiver: Receiver) -> None:
    receiver.status = 503
    later = datetime.now(UTC) + timedelta(seconds=120)
    receiver.reply_headers = {"Retry-After": later.strftime("%a, %d %b %Y %H:%M:%S GMT")}
    error = await failure(receiver.url)

    assert isinstance(error, ApplicationError)
    assert error.next_retry_delay is not None
    assert timedelta(seconds=100) < error.next_retry_delay <= timedelta(seconds=120)


async def test_an_unreachable_receiver_is_retried(logs: pytest.CaptureFixture[str]) -> None:
    configure_logging(log_format="json")
    error = await failure(f"http://127.0.0.1:{closed_port()}{HOOK_PATH}")

    assert retryable(error)
    assert "unreachable" in str(error)
    assert_secret_kept(error, logs)


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_not_followed(
    receiver: Receiver, logs: pytest.CaptureFixture[str], status: int
) -> None:
    configure_logging(log_format="json")
    # Followed, a 301/302/303 would turn the POST into a bodiless GET: a message lost silently.
    receiver.status = status
    receiver.reply_headers = {"Location": f"{receiver.url}/moved"}
    error = await failure(receiver.url)

    assert isinstance(error, ApplicationError)
    assert error.non_retryable
    assert SETTING in error.message
    assert [request.path for request in receiver.requests] == [HOOK_PATH]
    assert_secret_kept(error, logs)


@pytest.mark.parametrize(
    "url",
    [
        f"http://127.0.0.1:1/hooks/T000/{TOKEN.replace('-', ' ')}",  # a space in the path
        f"http://127.0.0.1:port/hooks/T000/{TOKEN}",  # a port that is not a number
        f"https//hooks.example.com/T000/{TOKEN}",  # no scheme
        f"http:///hooks/T000/{TOKEN}",  # no host
    ],
)
async def test_a_malformed_url_is_not_retried_and_not_shown(
    logs: pytest.CaptureFixture[str], url: str
) -> None:
    configure_logging(log_format="json")
    error = await failure(url)

    assert isinstance(error, ApplicationError)
    assert error.non_retryable
    assert SETTING in error.message
    assert_secret_kept(error, logs)


# ---- end to end on the dev server ---------------------------------------------------------


async def test_a_missed_acknowledgement_reaches_the_chat_webhook(
    client: Client, task_queue: str, receiver: Receiver
) -> None:
    """fast_policy: acknowledge within 2s; the owner at once, the team lead 1s later."""
    settings = Settings(chat_webhook_url=SecretStr(receiver.url))
    async with build_worker(client, settings, task_queue=task_queue):
        handle = await declare(client, task_queue, fast_policy(), declared_by="alice")
        received = await eventually(
            receiver.received,
            lambda requests: (
                sum(r.body["afteraction"]["rung"] == "team_lead" for r in requests) > 0
            ),
            timeout=30,
        )
        await handle.execute_update(
            IncidentWorkflow.cancel, Cancel(reason="false alarm: test", by="alice")
        )
        incident = await handle.result()

    assert incident.state is IncidentState.CANCELLED
    owner, lead = received[:2]
    for request, rung, recipient in ((owner, "owner", "alice"), (lead, "team_lead", None)):
        notice = EscalationNotice.model_validate(request.body["afteraction"])
        assert notice.incident_key == incident.key
        assert notice.deadline is DeadlineKind.ACKNOWLEDGE
        assert notice.rung == rung
        assert notice.due_at == incident.clock.declared_at + timedelta(seconds=2)
        assert request.at >= notice.due_at  # a deadline never fires early
        assert request.path == HOOK_PATH
        assert request.headers["idempotency-key"] == f"{handle.id}/acknowledge/{notice.step}"
        if recipient is not None:
            assert notice.recipients == [recipient]
        for person in notice.recipients:
            assert f"@{person}" in request.body["text"]
    assert owner.body["afteraction"]["step"] < lead.body["afteraction"]["step"]
    # Every escalation the incident recorded was delivered, once.
    delivered = [r.headers["idempotency-key"] for r in receiver.requests]
    assert len(delivered) == len(set(delivered)) == len(incident.escalations)
