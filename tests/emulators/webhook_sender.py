"""Webhook deliveries the way GitHub and Jira send them: signed, in order.

An emulator hands each event to `WebhookSender.send`; one background thread POSTs them to the
configured URL with the tracker's headers and an HMAC-SHA256 signature of the exact body bytes
(or, `synchronous`, the caller's thread posts it before `send` returns).
Deliveries can be dropped (`drop_next`) to emulate a lost webhook, and redelivered with the same
delivery id (`redeliver`), as GitHub's "Redeliver" button does. Nothing is sent until `to()`
names a receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import threading
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    delivery_id: str
    event: str
    body: bytes
    headers: dict[str, str]
    dropped: bool = False
    status: int | None = None  # what the receiver answered; None while not sent or failed
    answer: str = ""
    error: str | None = None

    @property
    def payload(self) -> Any:
        return json.loads(self.body)

    @property
    def identifier(self) -> str:
        """Jira's name for the delivery id (X-Atlassian-Webhook-Identifier)."""
        return self.delivery_id


@dataclass
class WebhookSender:
    """`signature_header` is X-Hub-Signature-256 for GitHub, X-Hub-Signature for Jira."""

    event_header: str | None
    delivery_header: str
    signature_header: str
    user_agent: str
    extra_headers: dict[str, str] = field(default_factory=dict)
    synchronous: bool = False
    url: str | None = None
    secret: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    _drop: int = 0
    _queue: queue.Queue[Delivery | None] = field(default_factory=queue.Queue)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _thread: threading.Thread | None = None

    def to(self, url: str, secret: str | None) -> None:
        """Deliver from now on to `url`, signed with `secret` (None: unsigned)."""
        with self._lock:
            self.url, self.secret = url, secret
            if self._thread is None and not self.synchronous:
                self._thread = threading.Thread(
                    target=self._deliver_forever, name="webhook-sender", daemon=True
                )
                self._thread.start()

    def drop_next(self, n: int = 1) -> None:
        """The next n deliveries are lost on the way (recorded as dropped, never sent)."""
        with self._lock:
            self._drop += n

    def send(self, event: str, payload: dict[str, Any]) -> Delivery | None:
        """Queue one delivery (None while no receiver is configured)."""
        with self._lock:
            if self.url is None:
                return None
            body = json.dumps(payload, separators=(",", ":")).encode()
            delivery = Delivery(str(uuid.uuid4()), event, body, self._headers(event, body))
            self.deliveries.append(delivery)
            if self._drop > 0:
                self._drop -= 1
                delivery.dropped, delivery.error = True, "dropped"
                return delivery
        self._dispatch(delivery)
        return delivery

    def redeliver(self, delivery: Delivery, **headers: str) -> Delivery:
        """The same body and delivery id again (a sender's retry or a manual redelivery),
        with `headers` added (Jira marks its retries with X-Atlassian-Webhook-Retry)."""
        again = Delivery(
            delivery.delivery_id, delivery.event, delivery.body, {**delivery.headers, **headers}
        )
        with self._lock:
            self.deliveries.append(again)
        self._dispatch(again)
        return again

    def _dispatch(self, delivery: Delivery) -> None:
        if self.synchronous:
            self._post(delivery)
        else:
            self._queue.put(delivery)

    def wait(self, timeout: float = 10.0) -> None:
        """Until every queued delivery has been answered (or failed)."""
        done = threading.Event()

        def drained() -> None:
            self._queue.join()
            done.set()

        threading.Thread(target=drained, daemon=True).start()
        if not done.wait(timeout):
            raise TimeoutError(f"webhook deliveries still pending after {timeout}s")

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=5)
            self._thread = None

    def _headers(self, event: str, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": self.user_agent}
        headers.update(self.extra_headers)
        if self.event_header is not None:
            headers[self.event_header] = event
        if self.secret is not None:
            headers[self.signature_header] = sign(self.secret, body)
        return headers

    def _deliver_forever(self) -> None:
        while True:
            delivery = self._queue.get()
            try:
                if delivery is None:
                    return
                self._post(delivery)
            finally:
                self._queue.task_done()

    def _post(self, delivery: Delivery) -> None:
        assert self.url is not None
        headers = {**delivery.headers, self.delivery_header: delivery.delivery_id}
        request = urllib.request.Request(
            self.url, data=delivery.body, headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                delivery.status = response.status
                delivery.answer = response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as error:
            delivery.status = error.code
            delivery.answer = error.read().decode("utf-8", "replace")
        except OSError as error:
            delivery.error = f"{type(error).__name__}: {error}"
