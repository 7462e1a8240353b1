"""The weekly digest's activities: which slot a run sends, and its delivery by email and chat,
each exactly once per slot as far as a sender can make it so.

Exactly once. Each delivery (task queue, slot, channel) has a row in `digest_deliveries`
(store/digests.py). A send first claims the row as `sending`, then sends, then marks it `sent`;
a retry that finds `sent` sends nothing. One that finds `sending` sends again: the attempt
before it died (a killed worker, a lost connection) somewhere between the claim and the mark.
If it died before the server accepted the message, the server has nothing: SMTP discards a
transaction whose DATA did not end with the server's 250 reply, so the resend is the only copy.
If it died after the 250 but before the mark (or the 250 was lost on the way back), the resend
is a second copy; no client can close that window (RFC 1047), so every copy carries the same
Message-ID, derived from the slot, and receivers that deduplicate by it show one. The chat
webhook gets the same key as its Idempotency-Key header.

The sends heartbeat while they wait on the receiver, so a worker that dies mid-send is noticed
within HEARTBEAT_TIMEOUT (workflows/digest.py) and a new worker retries, instead of the whole
start-to-close timeout later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.notify import Notifier
from activities.store_errors import store_unavailable
from domain.digest import Digest
from domain.digest_html import html
from domain.digest_policy import DigestPolicy
from domain.digest_runs import (
    Channel,
    Delivery,
    DeliveryOutcome,
    DigestPlan,
    PlanRequest,
    delivery_key,
    latest_slot,
    message_id,
    slot_in_week,
)
from domain.digest_text import chat_text, plain_text, subject
from domain.policy import PolicyFileError, load_policy
from integrations.email import SmtpFailed, parse_smtp_url, send
from settings import Settings
from store import StoreError, configured_store
from store.digest_facts import DigestReader
from store.digests import DeliveryStatus, DigestDeliveries
from telemetry.logs import get_logger

log = get_logger("afteraction.digest")

HEARTBEAT_EVERY = timedelta(seconds=1)


def channels_for(policy: DigestPolicy, settings: Settings, notifier: Notifier) -> list[Channel]:
    channels = []
    if settings.smtp_url is not None and policy.recipients:
        channels.append(Channel.EMAIL)
    if policy.chat and notifier.configured:
        channels.append(Channel.CHAT)
    return channels


def email_message(digest: Digest, *, sender: str, recipients: list[str], mid: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = subject(digest)
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Message-ID"] = mid
    message["Date"] = formatdate(usegmt=True)
    message.set_content(plain_text(digest))
    message.add_alternative(html(digest), subtype="html")
    return message


class DigestActivities:
    def __init__(self, settings: Settings, notifier: Notifier) -> None:
        self._settings = settings
        self._notifier = notifier

    def _policy(self) -> DigestPolicy:
        try:
            return load_policy(self._settings.policy_file).digest
        except PolicyFileError as error:
            raise ApplicationError(str(error), type="PolicyFileError", non_retryable=True) from None

    @activity.defn(name="plan_digest")
    def plan_digest(self, request: PlanRequest) -> DigestPlan:
        """The latest slot at or before the run's time, and the channels it goes to."""
        policy = self._policy()
        timezone = policy.effective_timezone(self._settings.timezone)
        slot = latest_slot(request.at, policy, timezone)
        if request.week is not None:
            try:
                slot = slot_in_week(request.week, policy, timezone)
            except ValueError as error:
                raise ApplicationError(str(error), type="BadWeek", non_retryable=True) from None
        channels = channels_for(policy, self._settings, self._notifier)
        skipped = None
        # Off turns off the schedule's sends; a send by hand (its own delivery) still goes.
        if not policy.enabled and request.delivery is None:
            channels, skipped = [], "the policy's [digest] is disabled"
        elif not channels:
            skipped = (
                "no channel: set AFTERACTION_SMTP_URL and the policy's [digest] recipients, or "
                "AFTERACTION_CHAT_WEBHOOK_URL"
            )
        plan = DigestPlan(
            slot=slot,
            timezone=timezone,
            delivery=request.delivery or delivery_key(slot),
            channels=channels,
            skipped=skipped,
        )
        log.info(
            "digest.planned",
            slot=slot.isoformat(),
            delivery=plan.delivery,
            channels=[c.value for c in channels],
            skipped=skipped,
        )
        return plan

    @activity.defn(name="send_digest_email")
    async def send_digest_email(self, delivery: Delivery) -> DeliveryOutcome:
        url = self._settings.smtp_url
        if url is None:
            raise ApplicationError("AFTERACTION_SMTP_URL is not set", non_retryable=True)
        server = parse_smtp_url(url.get_secret_value())
        recipients = self._policy().recipients
        sender = self._settings.smtp_from

        def deliver(digest: Digest, mid: str) -> None:
            message = email_message(digest, sender=sender, recipients=recipients, mid=mid)
            try:
                send(server, message, ca_file=self._settings.smtp_ca_file)
            except SmtpFailed as error:
                raise ApplicationError(
                    str(error), type="SmtpFailed", non_retryable=error.permanent
                ) from None

        return await self._deliver(delivery, deliver)

    @activity.defn(name="send_digest_chat")
    async def send_digest_chat(self, delivery: Delivery) -> DeliveryOutcome:
        def deliver(digest: Digest, mid: str) -> None:
            payload = {"text": chat_text(digest), "afteraction": {"digest": delivery.delivery}}
            self._notifier.post(payload, mid)

        return await self._deliver(delivery, deliver)

    async def _deliver(
        self, delivery: Delivery, deliver: Callable[[Digest, str], None]
    ) -> DeliveryOutcome:
        domain = self._settings.smtp_from.rpartition("@")[2] or "afteraction"
        mid = message_id(delivery.task_queue, delivery.delivery, domain)
        fields = {
            "task_queue": delivery.task_queue,
            "delivery": delivery.delivery,
            "channel": delivery.channel.value,
            "message_id": mid,
            "attempt": activity.info().attempt,
        }
        try:
            store = await asyncio.to_thread(configured_store, self._settings)
            deliveries = DigestDeliveries(store)
            status = await asyncio.to_thread(
                lambda: deliveries.claim(delivery, message_id=mid, at=datetime.now(UTC))
            )
            if status is DeliveryStatus.SENT:
                log.info("digest.already_sent", **fields)
                return DeliveryOutcome(
                    channel=delivery.channel, status="already_sent", message_id=mid
                )
            digest = await asyncio.to_thread(
                lambda: DigestReader(store).digest(
                    task_queue=delivery.task_queue, slot=delivery.slot, timezone=delivery.timezone
                )
            )
            log.info("digest.sending", **fields)
            await _heartbeating(asyncio.to_thread(deliver, digest, mid))
            await asyncio.to_thread(lambda: deliveries.mark_sent(delivery, at=datetime.now(UTC)))
        except StoreError as error:
            raise store_unavailable(error, "the digest's") from None
        log.info("digest.sent", **fields)
        return DeliveryOutcome(channel=delivery.channel, status="sent", message_id=mid)


async def _heartbeating(work: Coroutine[Any, Any, None]) -> None:
    """Await `work`, heartbeating meanwhile: the server learns of a dead worker in seconds."""
    task = asyncio.ensure_future(work)
    while True:
        done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY.total_seconds())
        if done:
            task.result()
            return
        activity.heartbeat()
