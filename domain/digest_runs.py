"""The weekly digest's runs: which slot a run is for, and what keys its deliveries.

A slot is one weekly send time (the policy's weekday and time in its zone). A run sends the
latest slot at or before its own time, never the slot it was scheduled for: runs the server
catches up after an outage, however many, all name the same (latest) slot, and the store's
record of each slot's delivery (store/digests.py) makes every run after the first a no-op.
Pure, so the CLI, the activities and the tests compute the same slots.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from domain.digest_policy import DigestPolicy
from domain.limits import KEY_CHARS

WORKFLOW_NAME = "WeeklyDigest"
SCHEDULE_ID = "afteraction-weekly-digest"
MANUAL_PREFIX = "manual-"


class Channel(StrEnum):
    EMAIL = "email"
    CHAT = "chat"


class DigestRequest(BaseModel):
    """What a run is asked: the schedule's runs ask nothing; `digest send --now` names its own
    delivery, so a send by hand never stands for (or stands in for) a scheduled slot."""

    delivery: str | None = Field(
        default=None, max_length=KEY_CHARS, description="a manual send's own delivery key"
    )
    week: str | None = Field(
        default=None, max_length=20, description="a manual send's ISO week (2026-W49)"
    )


class PlanRequest(BaseModel):
    """What a run asks its plan: its own time, and a manual send's delivery and week."""

    at: datetime = Field(description="the run's time (workflow.now())")
    delivery: str | None = Field(default=None, max_length=KEY_CHARS)
    week: str | None = Field(default=None, max_length=20)


class DigestPlan(BaseModel):
    """The slot a run sends, in which zone, under which delivery key, to which channels."""

    slot: datetime
    timezone: str = Field(max_length=64)
    delivery: str = Field(max_length=KEY_CHARS)
    channels: list[Channel] = Field(default_factory=list, max_length=len(Channel))
    skipped: str | None = Field(default=None, max_length=KEY_CHARS, description="why none")


class Delivery(BaseModel):
    """One channel's delivery of one slot's digest: the send activities' input."""

    task_queue: str = Field(max_length=KEY_CHARS)
    slot: datetime = Field(description="the slot whose week the digest covers")
    timezone: str = Field(max_length=64, description="the digest's zone (an IANA name)")
    delivery: str = Field(max_length=KEY_CHARS, description="the slot (ISO), or a manual key")
    channel: Channel


class DeliveryOutcome(BaseModel):
    channel: Channel
    status: str = Field(max_length=40, description="sent, already_sent, skipped")
    message_id: str | None = Field(default=None, max_length=KEY_CHARS)
    detail: str | None = Field(default=None, max_length=KEY_CHARS)


class DigestRunResult(BaseModel):
    slot: datetime
    delivery: str = Field(max_length=KEY_CHARS)
    outcomes: list[DeliveryOutcome] = Field(default_factory=list, max_length=len(Channel))


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _local_slot(day: date, policy: DigestPolicy, tz: ZoneInfo) -> datetime:
    """The policy's time on `day` in `tz`; a time skipped by a DST change is the first valid
    moment after it (the wall clock read forward, as fold=0 gives for a gap)."""
    wall = datetime.combine(day, time(policy.hour, policy.minute), tzinfo=tz)
    # A wall time in a spring-forward gap does not exist: round-trip through UTC to land on
    # the real moment it names (PEP 495: fold=0 maps a gap time by the offset before it).
    return wall.astimezone(ZoneInfo("UTC")).astimezone(tz)


def latest_slot(at: datetime, policy: DigestPolicy, timezone: str) -> datetime:
    """The latest slot at or before `at`, as an aware time in the digest's zone."""
    tz = zone(timezone)
    local = at.astimezone(tz)
    back = (local.isoweekday() - policy.weekday.iso) % 7
    slot = _local_slot(local.date() - timedelta(days=back), policy, tz)
    if slot > local:
        slot = _local_slot(local.date() - timedelta(days=back + 7), policy, tz)
    return slot


def slot_in_week(week: str, policy: DigestPolicy, timezone: str) -> datetime:
    """The slot that falls in an ISO week given as 2026-W49 (ValueError otherwise)."""
    try:
        year, number = week.upper().split("-W")
        day = date.fromisocalendar(int(year), int(number), policy.weekday.iso)
    except ValueError:
        raise ValueError(f"{week[:20]!r} is not an ISO week; give one such as 2026-W49") from None
    return _local_slot(day, policy, zone(timezone))


def week_before(slot: datetime) -> datetime:
    """The slot a week earlier, by the wall clock (a DST week is 167 or 169 hours)."""
    return _wall_shift(slot, -7)


def week_after(slot: datetime) -> datetime:
    return _wall_shift(slot, 7)


def _wall_shift(slot: datetime, days: int) -> datetime:
    tz = slot.tzinfo
    assert isinstance(tz, ZoneInfo)
    shifted = (slot + timedelta(days=days)).replace(tzinfo=tz)
    return shifted.astimezone(ZoneInfo("UTC")).astimezone(tz)


def delivery_key(slot: datetime) -> str:
    return slot.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%MZ")


def message_id(task_queue: str, delivery: str, domain: str) -> str:
    """A Message-ID derived from the delivery alone, so a resent digest carries the same one
    and a receiver can drop the copy (RFC 5322 3.6.4)."""
    digest = hashlib.sha256(f"{task_queue}\n{delivery}".encode()).hexdigest()[:32]
    return f"<digest.{digest}@{domain}>"
