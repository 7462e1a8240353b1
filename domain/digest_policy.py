"""When the weekly digest goes out and to whom: the policy file's `[digest]` table.

The time zone is the policy's, else AFTERACTION_TIMEZONE (UTC by default): the worker resolves
it (`effective_timezone`), so the schedule and the slot arithmetic agree on one zone.
"""

from __future__ import annotations

import re
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from domain.limits import NAME_CHARS, NAMES_ITEMS

_TIME = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$")
_ADDRESS = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+$")


class Weekday(StrEnum):
    MONDAY = "monday"
    TUESDAY = "tuesday"
    WEDNESDAY = "wednesday"
    THURSDAY = "thursday"
    FRIDAY = "friday"
    SATURDAY = "saturday"
    SUNDAY = "sunday"

    @property
    def iso(self) -> int:
        """1 for Monday ... 7 for Sunday, as `date.isoweekday()`."""
        return list(Weekday).index(self) + 1


def check_timezone(name: str) -> str:
    """An IANA zone name (Europe/Berlin, UTC); ValueError naming it otherwise."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name[:60]!r} is not a time zone; give an IANA name such as UTC or Europe/Berlin"
        ) from None
    return name


def check_address(address: str) -> str:
    """An email address (ValueError naming it otherwise): no display name, no list."""
    if len(address) > NAME_CHARS or not _ADDRESS.match(address):
        raise ValueError(
            f"{address[:60]!r} is not an email address; give one such as sre-leads@example.com"
        )
    return address


class DigestPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(
        default=True, description="false: no weekly digest (a send by hand still goes)"
    )
    weekday: Weekday = Weekday.MONDAY
    time: str = Field(default="09:00", description="HH:MM, 24-hour, in the digest's time zone")
    timezone: str | None = Field(
        default=None, description="an IANA zone; unset means AFTERACTION_TIMEZONE"
    )
    recipients: list[str] = Field(
        default_factory=list, max_length=NAMES_ITEMS, description="email addresses"
    )
    chat: bool = Field(default=True, description="also post the short form to the chat webhook")

    @field_validator("time")
    @classmethod
    def _clock_time(cls, value: str) -> str:
        if not _TIME.match(value):
            raise ValueError(f"{value[:20]!r} is not a time of day; give HH:MM, e.g. 09:00")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @field_validator("recipients")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            check_address(address)
        return value

    @property
    def hour(self) -> int:
        return int(self.time[:2])

    @property
    def minute(self) -> int:
        return int(self.time[3:])

    def effective_timezone(self, default: str) -> str:
        return self.timezone or default
