"""Times as people type them: an ISO 8601 time, or a duration counted from now (how long ago
something happened, how long from now something is due) or from another time (`+14d` after
the current due date). The CLI's options and the API's bodies read them alike.

Pure: `now` is always given, so nothing here reads a clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.policy import parse_duration

ISO_EXAMPLE = "2026-11-27T14:03:00Z"


def relative(text: str, *, now: datetime, ahead: bool) -> datetime | None:
    """The time a duration (`45m`, `2d`) names: that long after `now` (`ahead`) or before it;
    None when `text` is no duration. ValueError for one too long to be a time."""
    duration = parse_duration(text)
    if not isinstance(duration, timedelta):
        return None
    return now + duration if ahead else now - duration


def moment(text: str, *, now: datetime, ahead: bool) -> datetime:
    """`text` as a zoned time: ISO 8601 (UTC when it names no zone), or a duration (`relative`).
    ValueError names the forms it takes."""
    counted = relative(text, now=now, ahead=ahead)
    if counted is not None:
        return counted
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        duration = "how long from now (7d, 36h)" if ahead else "how long ago (20m, 1h30m)"
        raise ValueError(
            f"{text!r} is not a time; give ISO 8601 ({ISO_EXAMPLE}) or {duration}"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def later_by(text: str) -> timedelta | None:
    """How much later `+DURATION` (`+14d`) is than the time it counts from; None for text that
    does not start with +, ValueError when no duration follows it."""
    if not text.strip().startswith("+"):
        return None
    duration = parse_duration(text.strip().removeprefix("+"))
    if not isinstance(duration, timedelta):
        raise ValueError(f"{text!r} is not a duration after +; give one such as +14d or +36h")
    return duration
