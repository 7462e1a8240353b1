"""The SQL behind the failure-mode library: add (a new slug only), replace (at the version the
writer read, so a concurrent edit is never lost silently), get and list."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from domain.failure_modes import FailureMode, LibraryEntry
from store.database import Store, StoreError
from store.schema import FailureModeRow


class FailureModeRefused(StoreError):
    """The library cannot do what was asked; the message says why and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class UnknownFailureMode(FailureModeRefused):
    """No entry has this slug."""


class FailureModeExists(FailureModeRefused):
    """An entry has this slug already."""


class StaleVersion(FailureModeRefused):
    """The entry changed since the writer read it."""


def _entry(row: FailureModeRow) -> LibraryEntry:
    return LibraryEntry(
        mode=FailureMode.model_validate_json(row.entry),
        version=row.version,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def _unknown(slug: str) -> UnknownFailureMode:
    return UnknownFailureMode(
        f"no failure mode {slug!r} in the library; `afteraction library list` shows the slugs"
    )


class FailureModes:
    def __init__(self, store: Store, *, clock: Callable[[], datetime] | None = None) -> None:
        self._store = store
        self._clock = clock or (lambda: datetime.now(UTC))

    def add(self, mode: FailureMode, *, by: str) -> LibraryEntry:
        """The new entry, at version 1; FailureModeExists when the slug is taken."""
        now = self._clock()
        row = FailureModeRow(
            slug=mode.slug,
            name=mode.name,
            entry=mode.model_dump_json(),
            version=1,
            created_at=now,
            created_by=by,
            updated_at=now,
            updated_by=by,
        )
        try:
            with self._store.writing() as session:
                session.add(row)
                session.flush()
                return _entry(row)
        except IntegrityError:
            raise FailureModeExists(
                f"a failure mode {mode.slug!r} is in the library already; edit it "
                f"(`afteraction library edit {mode.slug} FILE`) or give another slug"
            ) from None

    def replace(
        self, slug: str, mode: FailureMode, *, expected_version: int, by: str
    ) -> LibraryEntry:
        """The entry `slug` replaced by `mode`, one version up, if it is still at
        `expected_version` (StaleVersion otherwise). The slug never changes."""
        if mode.slug != slug:
            raise FailureModeRefused(
                f"the entry's slug {mode.slug!r} is not {slug!r}: a slug never changes; leave "
                "it out, or give the one you edit (add a new entry for a new slug)"
            )
        with self._store.writing() as session:
            changed = session.execute(
                update(FailureModeRow)
                .where(FailureModeRow.slug == slug, FailureModeRow.version == expected_version)
                .values(
                    name=mode.name,
                    entry=mode.model_dump_json(),
                    version=expected_version + 1,
                    updated_at=self._clock(),
                    updated_by=by,
                )
            )
            row = session.get(FailureModeRow, slug, populate_existing=True)
            if row is None:
                raise _unknown(slug)
            if changed.rowcount == 0:  # type: ignore[attr-defined]
                raise StaleVersion(
                    f"failure mode {slug!r} is at version {row.version} (edited by "
                    f"{row.updated_by} at {row.updated_at:%Y-%m-%d %H:%M} UTC), not "
                    f"{expected_version} as read; show it again and apply your change to "
                    "the newer version"
                )
            return _entry(row)

    def get(self, slug: str) -> LibraryEntry:
        with self._store.reading() as session:
            row = session.get(FailureModeRow, slug)
            if row is None:
                raise _unknown(slug)
            return _entry(row)

    def all(self) -> list[LibraryEntry]:
        """Every entry, by name (then slug)."""
        with self._store.reading() as session:
            rows = session.scalars(
                select(FailureModeRow).order_by(FailureModeRow.name, FailureModeRow.slug)
            )
            return [_entry(row) for row in rows]

    def names(self) -> dict[str, str]:
        """Every entry's name by its slug, without reading the entries."""
        with self._store.reading() as session:
            rows = session.execute(select(FailureModeRow.slug, FailureModeRow.name))
            return {slug: name for slug, name in rows}
