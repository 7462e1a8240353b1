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

from typing import Any

import yaml
from pydantic import ValidationError

from app.formats.problems import problem_message
from domain.failure_modes import FailureMode
from domain.limits import NESTING_DEPTH, REVIEW_FILE_BYTES, kib

TOP_LEVEL = "(top level)"
FILE_BYTES = REVIEW_FILE_BYTES
Path = tuple[str | int, ...]


class FailureModeFileError(Exception):
    """A failure-mode file cannot be accepted; str() lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that a failure-mode file may not use; `problem` says what to do instead."""


class _Loader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases, nested at most NESTING_DEPTH levels."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                problem="anchors and aliases (&name, *name) are not accepted in a failure-mode "
                "file; write each value out",
                problem_mark=event.start_mark,
            )
        if self._depth >= NESTING_DEPTH:
            raise _Refused(
                problem=f"nested more than {NESTING_DEPTH} levels deep; an entry needs a few",
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _text(data: bytes, source: str) -> str:
    if len(data) > FILE_BYTES:
        raise FailureModeFileError(
            [
                f"{source}: {TOP_LEVEL}: larger than the {kib(FILE_BYTES)} a failure-mode "
                "file may hold; shorten its texts and link to documents for the rest"
            ]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise FailureModeFileError(
            [f"{source}: {TOP_LEVEL}: not UTF-8 text (byte {error.start} cannot be read)"]
        ) from None


def _load(text: str, source: str) -> tuple[Any, yaml.Node | None]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error)
        if not isinstance(error, _Refused):
            problem = f"not valid YAML: {problem}"
        raise FailureModeFileError([f"{source}: {where}{problem}"]) from None
    finally:
        loader.dispose()
    return data, node


def _lines(root: yaml.Node) -> tuple[dict[Path, int], list[Path]]:
    """The line of each path in the document, and the keys given twice in one mapping."""
    lines: dict[Path, int] = {}
    duplicates: list[Path] = []

    def walk(node: yaml.Node, path: Path) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    duplicates.append((*path, key))
                seen.add(key)
                lines[(*path, key)] = key_node.start_mark.line + 1
                walk(value_node, (*path, key))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                walk(item, (*path, index))

    walk(root, ())
    return lines, duplicates


def _where(lines: dict[Path, int], path: Path) -> str:
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return f" (line {lines[path[:end]]})"
    return ""


def _dotted(path: Path) -> str:
    return ".".join(str(part) for part in path) or TOP_LEVEL


def parse_failure_mode(data: bytes, *, source: str, slug: str | None = None) -> FailureMode:
    """The entry in a YAML file; FailureModeFileError lists every problem. `slug`: the entry
    being edited, which a file without a slug keeps."""
    document, node = _load(_text(data, source), source)
    lines, duplicates = _lines(node) if node is not None else ({}, [])
    found = [
        f"{source}: {_dotted(path)}: given more than once; only the last would count"
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
                f"{source}: {_dotted(path)}: {problem_message(detail)}{_where(lines, path)}"
            )
        raise FailureModeFileError(found) from None
    if found:
        raise FailureModeFileError(found)
    return mode
