"""The Notifier activity: every missed deadline becomes a structured log event, and a chat
message when a webhook URL is configured.

The URL is a secret (Slack-style URLs carry their token in the path), so no error raised
here ever contains it: failures are classified by what went wrong, never by where.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.utils import parsedate_to_datetime

from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.notifications import EscalationNotice
from telemetry.logs import get_logger

log = get_logger("afteraction.notify")

SETTING = "AFTERACTION_CHAT_WEBHOOK_URL"
# A Retry-After longer than this is not waited for: an escalation that late is worthless.
MAX_RETRY_AFTER = timedelta(minutes=10)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is misconfigured: urllib would re-send a POST as a bodiless GET
    (301/302/303) and call the lost message delivered. Refusing makes the 3xx an HTTPError."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class Notifier:
    """Holds the chat webhook URL (a secret: Slack-style URLs carry their token)."""

    def __init__(self, chat_webhook_url: SecretStr | None = None, *, timeout: float = 10.0):
        self._url = chat_webhook_url
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects)

    @activity.defn(name="notify_escalation")
    async def notify_escalation(self, notice: EscalationNotice) -> None:
        info = activity.info()
        # One escalation is one event: a retried delivery is logged quietly, not counted again.
        emit = log.warning if info.attempt == 1 else log.debug
        emit(
            "incident.escalated" if info.attempt == 1 else "incident.escalation_redelivered",
            incident_key=notice.incident_key,
            workflow_id=info.workflow_id,
            deadline=notice.deadline.value,
            rung=notice.rung.value,
            recipients=notice.recipients,
            reason=notice.reason,
            attempt=info.attempt,
        )
        if self._url is not None:
            # The receiver can drop a retried delivery by this key.
            idempotency_key = f"{info.workflow_id}/{notice.deadline.value}/{notice.step}"
            body = {"text": notice.chat_text(), "afteraction": notice.model_dump(mode="json")}
            await asyncio.to_thread(self.post, body, idempotency_key)

    @property
    def configured(self) -> bool:
        return self._url is not None

    def post(self, payload: Mapping[str, object], idempotency_key: str) -> None:
        """POST `payload` as JSON to the webhook (blocking; ApplicationError when it fails)."""
        url = self._url
        if url is None:
            raise _misconfigured("is not set")
        body = json.dumps(payload)
        try:
            request = urllib.request.Request(
                url.get_secret_value(),
                data=body.encode(),
                headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
                method="POST",
            )
        except ValueError:  # its message quotes the whole URL
            raise _misconfigured("is not an http:// or https:// URL") from None
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            error.close()
            raise _refused(error.code, error.headers) from None
        except http.client.InvalidURL:  # its message quotes the host or the path
            raise _misconfigured("is not a valid URL") from None
        except urllib.error.URLError as error:
            if not isinstance(error.reason, OSError):  # e.g. 'no host given'
                raise _misconfigured(f"is not usable ({error.reason})") from None
            raise _unreachable(error.reason) from None
        except (OSError, http.client.HTTPException) as error:
            # The connection broke after the request went out: timeout, reset, garbled answer.
            raise _unreachable(error) from None


def _misconfigured(problem: str) -> ApplicationError:
    return ApplicationError(
        f"the chat webhook URL {problem}; check {SETTING}",
        type="ChatWebhookMisconfigured",
        non_retryable=True,
    )


def _refused(code: int, headers: Message | None) -> ApplicationError:
    if 300 <= code < 400:
        return ApplicationError(
            f"the chat webhook redirected with HTTP {code}; set {SETTING} to the final URL",
            type="ChatWebhookMisconfigured",
            non_retryable=True,
        )
    if 400 <= code < 500 and code not in (408, 425, 429):
        return ApplicationError(
            f"the chat webhook refused the message with HTTP {code}; check {SETTING}",
            type="ChatWebhookRefused",
            non_retryable=True,
        )
    return ApplicationError(
        f"the chat webhook answered HTTP {code}; will retry",
        type="ChatWebhookUnavailable",
        next_retry_delay=_retry_after(headers),
    )


def _unreachable(reason: BaseException) -> ApplicationError:
    return ApplicationError(
        f"the chat webhook is unreachable ({type(reason).__name__}: {reason}); will retry",
        type="ChatWebhookUnavailable",
    )


def _retry_after(headers: Message | None) -> timedelta | None:
    """Retry-After as seconds or an HTTP date, capped; None when absent or unreadable."""
    value = (headers.get("Retry-After") if headers is not None else None) or ""
    value = value.strip()
    if not value:
        return None
    if value.isascii() and value.isdigit():  # delay-seconds, the common form
        delay = timedelta(seconds=min(int(value), int(MAX_RETRY_AFTER.total_seconds())))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when - datetime.now(UTC)
    if delay <= timedelta(0):
        return None
    return min(delay, MAX_RETRY_AFTER)
