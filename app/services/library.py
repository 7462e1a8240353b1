"""The failure-mode library as the CLI and the API share it: entries checked against the
taxonomy in force (AFTERACTION_TAXONOMY_FILE, else the defaults) before the store keeps them.

Who adds or edits an entry is the caller's actor label, from its credential; never a field.
"""

from __future__ import annotations

from domain.failure_modes import (
    FailureMode,
    LibraryEntry,
    Taxonomy,
    load_taxonomy,
    problems,
)
from domain.identity import Actor
from settings import Settings
from store import Store
from store.failure_modes import FailureModes


class InvalidFailureMode(ValueError):
    """An entry the taxonomy refuses; `problems` lists every one, as 'path: message'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Library:
    def __init__(self, store: Store, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy
        self._modes = FailureModes(store)

    @classmethod
    def configured(cls, settings: Settings, store: Store) -> Library:
        """The library under the settings' taxonomy (TaxonomyError: the file is unusable)."""
        return cls(store, load_taxonomy(settings.taxonomy_file))

    def check(self, mode: FailureMode) -> None:
        found = problems(mode, self.taxonomy)
        if found:
            raise InvalidFailureMode(found)

    def add(self, mode: FailureMode, *, actor: Actor) -> LibraryEntry:
        self.check(mode)
        return self._modes.add(mode, by=actor.label)

    def edit(
        self, slug: str, mode: FailureMode, *, expected_version: int, actor: Actor
    ) -> LibraryEntry:
        self.check(mode)
        return self._modes.replace(slug, mode, expected_version=expected_version, by=actor.label)

    def get(self, slug: str) -> LibraryEntry:
        return self._modes.get(slug)

    def all(self) -> list[LibraryEntry]:
        return self._modes.all()
