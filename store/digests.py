"""The record of each weekly digest delivery, keyed by (task queue, delivery, channel): a send
claims it as `sending` before it talks to the receiver and marks it `sent` after the receiver
accepted the message. A retry that finds `sent` sends nothing; one that finds `sending` sends
again under the same Message-ID (see activities/digest.py for why that is safe)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from domain.digest_runs import Delivery
from store.database import Store
from store.schema import DigestDeliveryRow


class DeliveryStatus(StrEnum):
    SENDING = "sending"
    SENT = "sent"


class DigestDeliveries:
    def __init__(self, store: Store) -> None:
        self._store = store

    def claim(self, delivery: Delivery, *, message_id: str, at: datetime) -> DeliveryStatus:
        """Record the delivery as `sending` unless it is recorded; the status it had before
        (`sending` for a first claim too: either way the message is to be sent)."""
        row = DigestDeliveryRow
        insert: Any = (
            postgresql_insert(row) if self._store.dialect == "postgresql" else sqlite_insert(row)
        )
        statement = insert.values(
            task_queue=delivery.task_queue,
            delivery=delivery.delivery,
            channel=delivery.channel.value,
            slot=delivery.slot,
            status=DeliveryStatus.SENDING.value,
            message_id=message_id,
            attempts=0,
            started_at=at,
        ).on_conflict_do_nothing()
        key = self._key(delivery)
        with self._store.writing() as session:
            session.execute(statement)
            session.execute(update(row).where(*key).values(attempts=row.attempts + 1))
            status = session.execute(select(row.status).where(*key)).scalar_one()
        return DeliveryStatus(status)

    def mark_sent(self, delivery: Delivery, *, at: datetime) -> None:
        with self._store.writing() as session:
            session.execute(
                update(DigestDeliveryRow)
                .where(*self._key(delivery))
                .values(status=DeliveryStatus.SENT.value, sent_at=at)
            )

    def get(self, delivery: Delivery) -> DigestDeliveryRow | None:
        with self._store.reading() as session:
            found = session.scalars(select(DigestDeliveryRow).where(*self._key(delivery))).first()
            if found is not None:
                session.expunge(found)
            return found

    @staticmethod
    def _key(delivery: Delivery) -> tuple[Any, ...]:
        row = DigestDeliveryRow
        return (
            row.task_queue == delivery.task_queue,
            row.delivery == delivery.delivery,
            row.channel == delivery.channel.value,
        )
