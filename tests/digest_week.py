"""The digest tests' week and their worker's settings (an SMTP server, the policy's [digest]).

The seeded week: fact rows written through the read model's own write path (FactsRepository),
around the slot Monday 2026-11-30 09:00 Europe/Berlin (08:00 UTC). The week is
[Mon 23 Nov 08:00Z, Mon 30 Nov 08:00Z); the week ahead runs to Mon 7 Dec 08:00Z; the four
weeks before the week start on Mon 26 Oct 08:00Z (the day after DST ended)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from domain.action_item import ActionItemState
from domain.digest_runs import Channel, Delivery
from domain.facts import ActionItemFacts, IncidentFacts
from domain.functions import ReviewFunction
from domain.incident import IncidentState
from domain.policy import ActionKind, Rung
from domain.severity import Severity
from settings import Settings
from store import Store
from store.digests import DigestDeliveries
from store.facts import FactsRepository
from tests.smtp_server import SmtpServer

ZONE = "Europe/Berlin"
SLOT = datetime(2026, 11, 30, 9, 0, tzinfo=ZoneInfo(ZONE))
WEEK = "2026-W49"


def at(month: int, day: int, hour: int = 0) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def incident(key: str, severity: Severity, state: IncidentState, **fields: Any) -> IncidentFacts:
    return IncidentFacts(
        key=key,
        revision=1,
        title=fields.pop("title", f"{key} title"),
        severity=severity,
        state=state,
        started_at=None,
        detected_at=None,
        **fields,
    )


def item(id: str, team: str, state: ActionItemState, **fields: Any) -> ActionItemFacts:
    due = fields.pop("due_at")
    return ActionItemFacts(
        id=id,
        incident_key=id.rsplit("-", 1)[0],
        number=int(id.rsplit("-", 1)[1]),
        revision=1,
        title=fields.pop("title", f"{id} title"),
        owning_team=team,
        kind=ActionKind.SHORT_TERM,
        severity=Severity.SEV2,
        state=state,
        target="local",
        created_at=fields.pop("created_at", at(10, 20)),
        first_due_at=due,
        due_at=due,
        **fields,
    )


INCIDENTS = [
    # SEV1 declared in the week; review held in the week without security (waived); a repeat.
    incident(
        "INC-A",
        Severity.SEV1,
        IncidentState.TRACKING,
        declared_at=at(11, 24, 10),
        resolved_at=at(11, 24, 12),
        review_due_at=at(11, 26, 18),
        review_submitted_at=at(11, 26, 12),
        missing_functions=[ReviewFunction.SECURITY],
        missing_functions_waived=True,
        repeat_of=["INC-OLD1", "INC-OLD2"],
    ),
    # SEV2 declared in the week, review due in the week ahead.
    incident(
        "INC-B",
        Severity.SEV2,
        IncidentState.RESOLVED,
        declared_at=at(11, 25, 9),
        resolved_at=at(11, 25, 10),
        review_due_at=at(12, 2, 10),
    ),
    # SEV2 declared before the week, still open, review overdue; its repeat is not this week's.
    incident(
        "INC-C",
        Severity.SEV2,
        IncidentState.RESOLVED,
        declared_at=at(11, 10),
        resolved_at=at(11, 11),
        review_due_at=at(11, 18),
        repeat_of=["INC-OLD3"],
    ),
    # SEV3 declared and cancelled in the week: declared, not open.
    incident(
        "INC-D",
        Severity.SEV3,
        IncidentState.CANCELLED,
        declared_at=at(11, 26, 8),
        cancelled_at=at(11, 26, 9),
    ),
    # SEV2 of the four weeks before: time to review 3 days; closed during the week.
    incident(
        "INC-F",
        Severity.SEV2,
        IncidentState.CLOSED,
        declared_at=at(11, 2),
        resolved_at=at(11, 3),
        review_due_at=at(11, 10),
        review_submitted_at=at(11, 6),
        closed_at=at(11, 29),
    ),
    # Closed long ago: in no section.
    incident(
        "INC-E",
        Severity.SEV4,
        IncidentState.CLOSED,
        declared_at=at(10, 1),
        closed_at=at(11, 20),
    ),
]

ITEMS = [
    item("INC-A-1", "payments", ActionItemState.OPEN, due_at=at(12, 3), owner="pat"),
    item(
        "INC-C-1",
        "payments",
        ActionItemState.OPEN,
        due_at=at(11, 20),
        owner="pat",
        rung=Rung.TEAM_LEAD,
    ),
    item("INC-C-2", "platform", ActionItemState.OPEN, due_at=at(11, 28), rung=Rung.OWNER),
    item(
        "INC-F-1",
        "platform",
        ActionItemState.ACCEPTED,
        due_at=at(12, 20),
        accepted_at=at(11, 27),
        approver="vp-eng",
    ),
    item("INC-F-2", "payments", ActionItemState.DONE, due_at=at(11, 26), completed_at=at(11, 25)),
    # The four weeks before: one late, two on time.
    item("INC-F-3", "payments", ActionItemState.DONE, due_at=at(10, 30), completed_at=at(11, 1)),
    item("INC-F-4", "payments", ActionItemState.DONE, due_at=at(11, 10), completed_at=at(11, 5)),
    item("INC-F-5", "payments", ActionItemState.DONE, due_at=at(11, 15), completed_at=at(11, 12)),
]


def seed(store: Store) -> None:
    facts = FactsRepository(store)
    recorded = at(12, 1) + timedelta(hours=1)
    for row in INCIDENTS:
        facts.record_incident(row, at=recorded)
    for entry in ITEMS:
        facts.record_action_item(entry, at=recorded)


RECIPIENTS = ["sre-leads@example.com", "vp-eng@example.com"]
SENDER = "afteraction@digest.example.com"


def digest_policy_file(folder: Path, *, weekday: str = "monday", time: str = "09:00") -> Path:
    path = folder / "policy.toml"
    path.write_text(
        f'[digest]\nweekday = "{weekday}"\ntime = "{time}"\ntimezone = "{ZONE}"\n'
        f"recipients = {RECIPIENTS!r}\n".replace("'", '"'),
        encoding="utf-8",
    )
    return path


def smtp_settings(home: Path, server: SmtpServer) -> Settings:
    return Settings(
        _env_file=None,
        home=home,
        policy_file=digest_policy_file(home.parent),
        smtp_url=server.url,
        smtp_from=SENDER,
        smtp_ca_file=server.ca_file,
    )


def delivery_record(store: Store, task_queue: str, delivery: str) -> tuple[str, str, int]:
    """The email delivery's (status, Message-ID, attempts) of the seeded week's slot."""
    record = DigestDeliveries(store).get(
        Delivery(
            task_queue=task_queue,
            slot=SLOT,
            timezone=ZONE,
            delivery=delivery,
            channel=Channel.EMAIL,
        )
    )
    assert record is not None
    return record.status, record.message_id, record.attempts
