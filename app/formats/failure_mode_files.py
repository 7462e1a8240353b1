"""Failure-mode files: a library entry in YAML, read safely (no anchors or aliases, a bounded
size and depth) with every problem reported at once, each with its field path and line.

    name: connection pool exhaustion
    description: Every connection of a service's pool is taken; requests queue, then time out.
    triggers: [user behaviour, capacity]
    root_causes: [software]
    signals:
      - pool wait time p99 above 100 ms
    recipes:
      - name: cap and shed
        steps:
          - raise the pool size to the database's per-client limit
        action_items:
          - title: Alert on pool saturation
            kind: short_term_mitigation
            success_criteria: pages at 80% pool use for 5 minutes
            slo_link: https://slo.example.com/checkout
"""

from __future__ import annotations

from pydantic import ValidationError

from app.formats.problems import problem_message
from app.formats.yaml_files import (
    TOP_LEVEL,
    FileKind,
    FileProblems,
    Path,
    dotted,
    field_lines,
    file_text,
    line_of,
    load_document,
)
from domain.failure_modes import FailureMode
from domain.limits import REVIEW_FILE_BYTES


class FailureModeFileError(FileProblems):
    """A failure-mode file cannot be accepted; str() lists every problem, one per line."""


FAILURE_MODE_FILE = FileKind(
    name="failure-mode file",
    whole="an entry",
    max_bytes=REVIEW_FILE_BYTES,
    error=FailureModeFileError,
)


def _where(lines: dict[Path, int], path: Path) -> str:
    line = line_of(lines, path) or lines.get(())
    return f" (line {line})" if line is not None else ""


def parse_failure_mode(data: bytes, *, source: str, slug: str | None = None) -> FailureMode:
    """The entry in a YAML file; FailureModeFileError lists every problem. `slug`: the entry
    being edited, which a file without a slug keeps."""
    text = file_text(data, source, FAILURE_MODE_FILE)
    document, node = load_document(text, source, FAILURE_MODE_FILE)
    lines, duplicates = field_lines(node) if node is not None else ({}, [])
    found = [
        f"{source}: {dotted(path)}: given more than once; only the last would count"
        f"{_where(lines, path)}"
        for path in duplicates
    ]
    if not isinstance(document, dict):
        got = "nothing" if document is None else f"a {type(document).__name__}"
        raise FailureModeFileError(
            [f"{source}: {TOP_LEVEL}: expected a mapping of fields (name: value lines), got {got}"]
        )
    if slug is not None and "slug" not in document:
        document = {**document, "slug": slug}
    try:
        mode = FailureMode.model_validate(document)
    except ValidationError as error:
        for detail in error.errors():
            path = tuple(detail["loc"])
            found.append(
                f"{source}: {dotted(path)}: {problem_message(detail)}{_where(lines, path)}"
            )
        raise FailureModeFileError(found) from None
    if found:
        raise FailureModeFileError(found)
    return mode
