"""`afteraction library`: the failure-mode library, straight in the store (like `tokens`).

Part of the `afteraction` app (app.cli.main registers it), so it shares its exit codes: 2 for
an invalid entry (every problem listed), an unknown slug, a taken slug or a stale edit.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from app.cli.common import JsonOption, _emit, _settings, cli_actor, fail
from app.formats.failure_mode_files import FailureModeFileError, parse_failure_mode
from app.services.library import InvalidFailureMode, Library
from domain.failure_modes import FailureMode, LibraryEntry, TaxonomyError
from store import StoreError, configured_store

T = TypeVar("T")
# How the CLI's commands (declare, review template) name a failure mode, in their problems.
MODE_OPTION = "--failure-mode"

library: typer.Typer = typer.Typer(
    name="library",
    help="The failure-mode library: list, show, add and edit entries; the taxonomy in force.",
    no_args_is_help=True,
)

FileArgument = Annotated[
    Path, typer.Argument(help="A YAML file of the entry (the README shows its fields).")
]


def _library() -> Library:
    settings = _settings()
    try:
        return Library.configured(settings, configured_store(settings))
    except TaxonomyError as error:
        fail(str(error), 2)
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)


def using_library(action: Callable[[Library], T]) -> T:
    """`action` on the library, its refusals (unknown slugs among them) exiting 2."""
    service = _library()
    try:
        return action(service)
    except InvalidFailureMode as error:
        fail("\n".join(error.problems), 2)
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)


def _read(path: Path, *, slug: str | None = None) -> FailureMode:
    try:
        data = path.read_bytes()
    except OSError as error:
        fail(f"{path}: cannot read the file ({error.strerror})", 2)
    try:
        return parse_failure_mode(data, source=str(path), slug=slug)
    except FailureModeFileError as error:
        fail("the entry is invalid:\n" + str(error), 2)


def _joined(values: list[str]) -> str:
    return ", ".join(values) or "—"


def _table(entries: list[LibraryEntry]) -> Table:
    table = Table(title="Failure modes")
    for column in ("Slug", "Name", "Triggers", "Root causes", "Recipes"):
        table.add_column(column)
    for entry in entries:
        mode = entry.mode
        table.add_row(
            mode.slug,
            mode.name,
            _joined(mode.triggers),
            _joined(mode.root_causes),
            str(len(mode.recipes)),
        )
    return table


def _shown(entry: LibraryEntry) -> RenderableType:
    mode = entry.mode
    lines = Text()
    lines.append(f"{mode.name}", style="bold")
    lines.append(f"  ({mode.slug}, version {entry.version})\n")
    lines.append(
        f"added by {entry.created_by} at {entry.created_at:%Y-%m-%d %H:%M} UTC; "
        f"last edited by {entry.updated_by} at {entry.updated_at:%Y-%m-%d %H:%M} UTC\n\n"
    )
    if mode.description:
        lines.append(mode.description + "\n\n")
    lines.append("Triggers: ", style="bold")
    lines.append(_joined(mode.triggers) + "\n")
    lines.append("Root causes: ", style="bold")
    lines.append(_joined(mode.root_causes) + "\n")
    lines.append("Signals that warned early:", style="bold")
    lines.append("".join(f"\n  - {signal}" for signal in mode.signals) or " —")
    lines.append("\n")
    for recipe in mode.recipes:
        lines.append(f"\nRecipe: {recipe.name}\n", style="bold")
        for number, step in enumerate(recipe.steps, 1):
            lines.append(f"  {number}. {step}\n")
        for item in recipe.action_items:
            lines.append(f"  action item: {item.title} ({item.kind.value})\n")
            lines.append(f"    success criteria: {item.success_criteria}\n")
            if item.slo_link:
                lines.append(f"    SLO: {item.slo_link}\n")
    if not mode.recipes:
        lines.append("\nNo remediation recipes yet.\n")
    return Group(lines)


def _refused(error: InvalidFailureMode, source: str) -> None:
    fail("the entry is invalid:\n" + "\n".join(f"{source}: {p}" for p in error.problems), 2)


@library.command("list")
def list_modes(as_json: JsonOption = False) -> None:
    """List the failure modes, by name."""
    try:
        entries = _library().all()
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    empty = "the library is empty: `afteraction library add FILE` adds a failure mode"
    _emit(entries, as_json, _table(entries) if entries else empty)


@library.command()
def show(slug: str, as_json: JsonOption = False) -> None:
    """Show a failure mode: its signals, recipes and suggested action items."""
    try:
        entry = _library().get(slug)
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    _emit(entry, as_json, _shown(entry))


@library.command()
def add(path: FileArgument, as_json: JsonOption = False) -> None:
    """Add a failure mode from a YAML file (its slug comes from its name unless given)."""
    service = _library()
    mode = _read(path)
    try:
        entry = service.add(mode, actor=cli_actor())
    except InvalidFailureMode as error:
        _refused(error, str(path))
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    _emit(entry, as_json, f"added failure mode {entry.mode.slug} (version {entry.version})")


@library.command()
def edit(
    slug: str,
    path: FileArgument,
    version: Annotated[
        int | None,
        typer.Option(
            "--version",
            help="The version your file was made from: refused if the entry changed since "
            "(default: the entry's current version).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Replace a failure mode with the YAML file's version of it (the slug stays)."""
    service = _library()
    mode = _read(path, slug=slug)
    try:
        expected = version if version is not None else service.get(slug).version
        entry = service.edit(slug, mode, expected_version=expected, actor=cli_actor())
    except InvalidFailureMode as error:
        _refused(error, str(path))
    except StoreError as error:
        fail(str(error), 1 if error.retryable else 2)
    _emit(entry, as_json, f"edited failure mode {entry.mode.slug} (now version {entry.version})")


@library.command()
def taxonomy(as_json: JsonOption = False) -> None:
    """Print the taxonomy in force: the triggers and root-cause categories entries may use."""
    taxonomy = _library().taxonomy
    human = Text()
    human.append(f"Taxonomy ({taxonomy.source})\n", style="bold")
    human.append("Triggers: ", style="bold")
    human.append(", ".join(taxonomy.triggers) + "\n")
    human.append("Root causes: ", style="bold")
    human.append(", ".join(taxonomy.root_causes))
    _emit(taxonomy, as_json, human)
