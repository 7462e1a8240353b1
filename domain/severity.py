"""Incident severity levels, SEV1 (worst) to SEV4."""

from enum import StrEnum


class Severity(StrEnum):
    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"

    @classmethod
    def parse(cls, text: str) -> "Severity":
        """Accept 'SEV2', 'sev2' or '2'; raise ValueError naming the allowed values."""
        normalized = text.strip().upper()
        if normalized.isdigit():
            normalized = f"SEV{normalized}"
        try:
            return cls(normalized)
        except ValueError:
            allowed = ", ".join(s.value for s in cls)
            raise ValueError(f"unknown severity {text!r}; expected one of {allowed}") from None
