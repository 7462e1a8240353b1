"""Reading a YAML file a person wrote (a review, a failure-mode entry): bounded in size and in
nesting, without anchors and aliases (with them a file of a few kilobytes can expand to
gigabytes), its impossible dates left as text, and the line of every field, so that each
problem can be reported where it is.

Each kind of file names itself in the messages (`FileKind`) and has its own error class; this
module only raises that class, with every problem it found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from domain.limits import NESTING_DEPTH, kib

TOP_LEVEL = "(top level)"
Path = tuple[str | int, ...]


class FileProblems(Exception):
    """A file cannot be accepted; str() lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class FileKind:
    name: str  # "review file"
    whole: str  # what one file holds, for "a review needs a few" levels of nesting
    max_bytes: int
    error: type[FileProblems]


def dotted(path: Path) -> str:
    return ".".join(str(part) for part in path) or TOP_LEVEL


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of the field at `path`; a missing field has no line of its own, so the nearest
    enclosing one (the top level aside)."""
    for end in range(len(path), 0, -1):
        if path[:end] in lines:
            return lines[path[:end]]
    return None


def file_text(data: bytes, source: str, kind: FileKind) -> str:
    """The file's text; `kind.error` when it is too large or not UTF-8 text."""
    if len(data) > kind.max_bytes:
        raise kind.error(
            [
                f"{source}: {TOP_LEVEL}: larger than the {kib(kind.max_bytes)} a {kind.name} "
                "may hold; shorten its texts and link to documents for the rest"
            ]
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise kind.error(
            [
                f"{source}: {TOP_LEVEL}: not UTF-8 text (byte {error.start} cannot be read); "
                f"save the {kind.name} as UTF-8"
            ]
        ) from None


class _Refused(yaml.MarkedYAMLError):
    """Valid YAML that such a file may not use; `problem` says what to do instead."""


class _Loader(yaml.SafeLoader):
    """Safe YAML without anchors and aliases, nested at most NESTING_DEPTH levels."""

    def __init__(self, stream: str, kind: FileKind) -> None:
        super().__init__(stream)
        self._kind = kind
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Refused(
                problem=f"anchors and aliases (&name, *name) are not accepted in a "
                f"{self._kind.name}; write each value out",
                problem_mark=event.start_mark,
            )
        if self._depth >= NESTING_DEPTH:
            raise _Refused(
                problem=f"nested more than {NESTING_DEPTH} levels deep; {self._kind.whole} "
                "needs a few",
                problem_mark=event.start_mark,
            )
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        return node


def _timestamp_or_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    """A YAML date such as 2026-13-45 matches the timestamp form but is no date: keep it as
    text, so the field it is in reports it with its line."""
    try:
        return loader.construct_yaml_timestamp(node)
    except (ValueError, OverflowError):
        return loader.construct_scalar(node)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_or_text)


def _syntax_error(error: yaml.YAMLError, source: str, kind: FileKind) -> FileProblems:
    mark = getattr(error, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error)
    if isinstance(error, _Refused):
        return kind.error([f"{source}: {where}{problem}"])
    context = getattr(error, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return kind.error([f"{source}: {where}not valid YAML: {detail}"])


def load_document(text: str, source: str, kind: FileKind) -> tuple[Any, yaml.Node | None]:
    """The document and its node tree (which knows the lines); one parse for both."""
    loader = _Loader(text, kind)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as error:
        raise _syntax_error(error, source, kind) from None
    finally:
        loader.dispose()
    return data, node


def field_lines(root: yaml.Node) -> tuple[dict[Path, int], list[Path]]:
    """The line of each path in the document, and the keys given twice in one mapping."""
    lines: dict[Path, int] = {}
    duplicates: list[Path] = []
    visited: set[int] = set()

    def walk(node: yaml.Node, path: Path) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        # An alias repeats a node: walking it again could loop, or blow up exponentially.
        if id(node) in visited:
            return
        visited.add(id(node))
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
            for position, item in enumerate(node.value):
                walk(item, (*path, position))

    walk(root, ())
    return lines, duplicates
