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
from domain.review import ReviewProblem
from domain.review_tags import KnownTags, unknown_slugs
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

    def names(self) -> dict[str, str]:
        """Every entry's name by its slug: the slugs a review or a declaration may name."""
        return self._modes.names()

    def known(self) -> KnownTags:
        """What a review may name now: the taxonomy in force and the library's slugs."""
        return KnownTags(taxonomy=self.taxonomy, slugs=frozenset(self.names()))

    def require(self, field: str, slugs: list[str]) -> None:
        """InvalidFailureMode naming every slug (as `field.N`) the library does not hold."""
        _refuse_unknown(unknown_slugs(field, slugs, self.names()))

    def named(self, slugs: list[str], *, declared: list[str], field: str) -> list[FailureMode]:
        """The entries of the incident's `declared` slugs and of `slugs` (given as `field`),
        each once, in order; InvalidFailureMode when the library lacks some."""
        known = self.names()
        _refuse_unknown(
            unknown_slugs("failure_modes", declared, known) + unknown_slugs(field, slugs, known)
        )
        return [self._modes.get(slug).mode for slug in dict.fromkeys([*declared, *slugs])]


def _refuse_unknown(found: list[ReviewProblem]) -> None:
    if found:
        raise InvalidFailureMode([str(problem) for problem in found])
