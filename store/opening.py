"""Opening the store: once per database URL in a process, migrated, with an earlier release's
tickets imported."""

from __future__ import annotations

import threading
from pathlib import Path

import structlog
from sqlalchemy.exc import SQLAlchemyError

from store.database import Store, StoreError, create_store_engine, failure_message, redacted_url
from store.legacy import import_legacy_tickets
from store.migrate import upgrade

log = structlog.get_logger("afteraction.store")

_OPEN: dict[str, Store] = {}
_OPEN_GUARD = threading.Lock()


def open_store(url: str, *, legacy_tickets: Path | None = None) -> Store:
    """The process's store for `url`, its schema brought up to date on first use, and the
    tickets of an earlier release's `legacy_tickets` file (tickets.db) imported once.

    Raises StoreError when the database is unreachable or unusable, and DatabaseNewerThanCode
    when a newer release of afteraction migrated it."""
    with _OPEN_GUARD:
        found = _OPEN.get(url)
        if found is not None:
            return found
        store = Store(create_store_engine(url))
        try:
            upgrade(store)
            if legacy_tickets is not None and legacy_tickets.is_file():
                imported = import_legacy_tickets(store, legacy_tickets)
                if not imported.skipped:
                    log.info(
                        "store.legacy_tickets_imported",
                        source=imported.source,
                        tickets=imported.tickets,
                        comments=imported.comments,
                        database=store.url,
                    )
        except SQLAlchemyError as error:
            store.dispose()
            raise StoreError(failure_message(redacted_url(url), error)) from None
        except BaseException:
            store.dispose()
            raise
        _OPEN[url] = store
        return store
