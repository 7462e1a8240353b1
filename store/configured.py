"""The store a process's settings name: AFTERACTION_DATABASE_URL, else the SQLite file in
AFTERACTION_HOME, with an earlier release's tickets.db imported on first open."""

from __future__ import annotations

from settings import Settings
from store.database import Store, StoreError
from store.opening import open_store


def configured_store(settings: Settings) -> Store:
    prepare_home(settings)
    return open_store(settings.effective_database_url, legacy_tickets=settings.legacy_tickets_file)


def prepare_home(settings: Settings) -> None:
    """The default SQLite file lives in AFTERACTION_HOME: create the folder if it is missing."""
    if settings.database_url is None:
        try:
            settings.home.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise StoreError(
                f"cannot use the state folder {settings.home} for the database "
                f"({error.strerror}); fix it or set AFTERACTION_HOME to a writable folder"
            ) from None
