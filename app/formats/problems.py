"""Pydantic's validation errors in the words a person reads, for the API, the CLI and the
review file alike: one place, so a limit reads the same wherever it is met."""

from __future__ import annotations

from typing import Any

from pydantic_core import ErrorDetails

from domain.failure_modes import SLUG_FORM, SLUG_PATTERN


def problem_message(error: ErrorDetails | dict[str, Any]) -> str:
    """What is wrong with one field, and for a limit, what the limit is and what to do."""
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_too_long":
        value = error.get("input")
        this = f", this has {len(value):,}" if isinstance(value, str) else ""
        return (
            f"at most {context['max_length']:,} characters{this}; shorten it, or link to a "
            "document for the rest"
        )
    if kind == "string_pattern_mismatch" and context.get("pattern") == SLUG_PATTERN:
        return f"{error.get('input')!r} is not a slug; write it in {SLUG_FORM}"
    if kind == "too_long" and "actual_length" in context:
        return (
            f"at most {context['max_length']:,} entries, this has {context['actual_length']:,}; "
            "keep the ones that matter"
        )
    return str(error["msg"]).removeprefix("Value error, ")
