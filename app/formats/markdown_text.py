"""Markdown from what people typed: made inert, kept on one line where a table or a list
needs it, and tables of such cells."""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

NONE = "—"


def safe(text: str) -> str:
    """Text a person typed, made inert: no raw HTML (a renderer would run a <script>), and no
    link of their own (a [link](javascript:...) would run too). Links are ours to make, from
    http(s) URLs only."""
    text = html.escape(text, quote=False)
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def inline(text: str) -> str:
    """One line: Markdown would end a table row, a list item or a heading at a newline."""
    return safe(" ".join(text.split()))


class Markdown(str):
    """Markdown a writer made itself (a link), which a table cell must not escape again."""


def cell(text: str | None) -> str:
    value = text if isinstance(text, Markdown) else inline(text or "")
    return value.replace("|", "\\|") if value else NONE


def table(headers: Sequence[str], rows: Iterable[Sequence[str | None]]) -> str:
    lines = [
        "| " + " | ".join(headers) + " |",
        "|" + "|".join("---" for _ in headers) + "|",
    ]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def when(moment: datetime) -> str:
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
