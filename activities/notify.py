"""The Notifier activity: every missed deadline becomes a structured log event, and a chat
message when a webhook URL is configured."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

from pydantic import SecretStr
from temporalio import activity
from temporalio.exceptions import ApplicationError

from app.logs import get_logger
from domain.notifications import EscalationNotice

log = get_logger("afteraction.notify")


class Notifier:
    """Holds the chat webhook URL (a secret: Slack-style URLs carry their token)."""

    def __init__(self, chat_webhook_url: SecretStr | None = None, *, timeout: float = 10.0):
        self._url = chat_webhook_url
        self._timeout = timeout

    @activity.defn(name="notify_escalation")
    async def notify_escalation(self, notice: EscalationNotice) -> None:
        info = activity.info()
        log.warning(
            "incident.escalated",
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
            await asyncio.to_thread(self._post, notice, idempotency_key)

    def _post(self, notice: EscalationNotice, idempotency_key: str) -> None:
        assert self._url is not None
        body = json.dumps(
            {"text": notice.chat_text(), "afteraction": notice.model_dump(mode="json")}
        )
        request = urllib.request.Request(
            self._url.get_secret_value(),
            data=body.encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": idempotency_key},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            if 400 <= error.code < 500 and error.code not in (408, 429):
                raise ApplicationError(
                    f"the chat webhook refused the message with HTTP {error.code}; "
                    "check AFTERACTION_CHAT_WEBHOOK_URL",
                    non_retryable=True,
                ) from None
            raise RuntimeError(f"chat webhook answered HTTP {error.code}") from None
        except (urllib.error.URLError, TimeoutError) as error:
            # The URL itself is a secret, so only the reason is reported.
            raise RuntimeError(
                f"chat webhook unreachable: {getattr(error, 'reason', error)}"
            ) from None
