"""Alembic's entry point for the store's migrations (store/migrate.py drives it from code).

The caller passes its connection, already inside a locked transaction, as
`config.attributes["connection"]`; migrations run in that transaction.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from store.schema import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise SystemExit(
        "run the store's migrations with `afteraction db upgrade` (or start any afteraction "
        "process), not the alembic command"
    )
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite alters a table by copying it; batch mode writes migrations that work on both.
    render_as_batch=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
