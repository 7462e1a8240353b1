"""How much a person may put into an incident: every text, list and time a command carries.

Temporal refuses a payload over 2 MB and fails the workflow task that tried to write it, on
every retry: one oversized command would freeze an incident for good. So each field that
enters a workflow has a cap here (the models in `domain/` apply them, so the API, the CLI and
the webhooks all refuse with the limit in the message), a whole command has a size (checked by
app/services before it is sent), and what a run carries into continue-as-new is kept small
(the workflows keep the latest of their long lists; the history keeps all of them).

The caps are generous for people and small for Temporal: a full review at every cap is still
refused by the command size, never by Temporal.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, TypeVar

from pydantic import AfterValidator, Field

# ---- texts, in characters -------------------------------------------------------------------

TITLE_CHARS = 200  # a title: the AfteractionTitle search attribute (Text) and a ticket summary
NAME_CHARS = 200  # a person, a team, a service, a region, an event's name
KEY_CHARS = 500  # a ticket key (owner/repo#N) or a delivery id (the reconciler's names both)
LINK_CHARS = 2_000  # a URL (evidence, an SLO)
TEXT_CHARS = 4_000  # a reason, a rationale, success criteria, a decision, evidence of a fix
NOTE_CHARS = 10_000  # a timeline note, a transition note, the incident summary, a narrative entry
LONG_TEXT_CHARS = 20_000  # the review's executive summary, technical appendix and answers

# ---- lists, in items ------------------------------------------------------------------------

NAMES_ITEMS = 50  # services, teams, regions, participants, subject-matter experts
REVIEW_LIST_ITEMS = 100  # the review's evidence links and decisions
REVIEW_TIMELINE_ENTRIES = 200  # the review's narrative timeline (prefilled from the incident's)
REVIEW_ACTION_ITEMS = 50  # action items one review decides
INCIDENT_ACTION_ITEMS = 100  # action items one incident tracks, the review's and those added

# ---- whole commands and files, in bytes -----------------------------------------------------

COMMAND_BYTES = 256 * 1024  # one command as sent to Temporal (its encoded payload)
REVIEW_FILE_BYTES = 1024 * 1024  # a review file (request bodies: AFTERACTION_API_MAX_BODY)
NESTING_DEPTH = 32  # how deep a review file may nest (a review needs 5)

# ---- what a run carries into continue-as-new --------------------------------------------------

# A run hands its state to a fresh one once its own history has grown by this much, so the
# state (which holds what the run's commands added) stays far below Temporal's payload limit.
RUN_GROWTH_BYTES = 1024 * 1024
# The latest timeline events carried over: at most this many, with at most this much text.
CARRIED_TIMELINE_EVENTS = 200
CARRIED_TIMELINE_CHARS = 100_000
CARRIED_ESCALATIONS = 100  # the latest escalation records carried over
CARRIED_EXTENSIONS = 20  # the latest deadline extensions of an action item carried over

# ---- times and durations ----------------------------------------------------------------------

# Deadlines are arithmetic on these: a time outside the range is a typo (or 0, the epoch) and
# would overflow a timer.
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2100, 1, 1, tzinfo=UTC)
LONGEST_DURATION = timedelta(days=3650)


def _in_range(value: datetime) -> datetime:
    zoned = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if not EARLIEST_TIME <= zoned < LATEST_TIME:
        raise ValueError(
            f"{value.isoformat()} is not between {EARLIEST_TIME:%Y-%m-%d} and "
            f"{LATEST_TIME:%Y-%m-%d}; give the real time, e.g. 2026-11-27T14:03:00Z"
        )
    return value


def searchable(value: str) -> str:
    # The dev server's visibility store matches keyword lists with a full-text query in which
    # a double quote cannot be escaped: a name holding one could be stored but never found.
    if '"' in value:
        raise ValueError(
            'a team or service name cannot contain a double quote ("), as lists could never '
            "find it; leave the quote out"
        )
    return value


Title = Annotated[str, Field(max_length=TITLE_CHARS)]
Name = Annotated[str, Field(max_length=NAME_CHARS)]
Key = Annotated[str, Field(max_length=KEY_CHARS)]
# A name that lists search for (services, teams): the AfteractionServices/Teams keyword lists.
SearchName = Annotated[str, Field(max_length=NAME_CHARS), AfterValidator(searchable)]
Link = Annotated[str, Field(max_length=LINK_CHARS)]
Text = Annotated[str, Field(max_length=TEXT_CHARS)]
Note = Annotated[str, Field(max_length=NOTE_CHARS)]
LongText = Annotated[str, Field(max_length=LONG_TEXT_CHARS)]
# A time a person gives (when impact began, when an item is due, ...).
Moment = Annotated[datetime, AfterValidator(_in_range)]


T = TypeVar("T")


def latest(
    items: list[T],
    *,
    count: int,
    earlier: int,
    chars: int | None = None,
    text: Callable[[T], str] = str,
) -> tuple[list[T], int]:
    """What a run carries of a long list: its latest `count` items (whose `text` adds up to at
    most `chars`, when given), in their order, and how many come before them: the `earlier`
    ones a previous run left out, and those left out now."""
    kept: list[T] = []
    total = 0
    for item in reversed(items):
        total += len(text(item)) if chars is not None else 0
        if len(kept) == count or (chars is not None and total > chars):
            break
        kept.append(item)
    kept.reverse()
    return kept, earlier + len(items) - len(kept)


def kib(size: int) -> str:
    """A size in bytes as people read it: '256 KiB', '1 MiB'."""
    if size >= 1024 * 1024 and size % (1024 * 1024) == 0:
        return f"{size // (1024 * 1024)} MiB"
    return f"{-(-size // 1024):,} KiB"
