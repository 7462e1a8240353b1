"""What the Notifier activity is told when a deadline is missed."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from domain.escalation import DeadlineKind
from domain.policy import Rung
from domain.severity import Severity


class EscalationNotice(BaseModel):
    incident_key: str
    title: str
    severity: Severity
    deadline: DeadlineKind
    due_at: datetime
    rung: Rung
    recipients: list[str]
    reason: str
    step: int

    def chat_text(self) -> str:
        mentions = " ".join(f"@{person.lstrip('@')}" for person in self.recipients)
        return (
            f":rotating_light: {self.incident_key} ({self.severity}) {self.title}: {self.reason}. "
            f"Escalated to {self.rung.value.replace('_', ' ')}: {mentions}"
        )
