"""The relational store beside Temporal: local tracker tickets, API tokens, the insights
read model and the failure-mode library.

SQLite under AFTERACTION_HOME by default, PostgreSQL (psycopg 3) in deployments; the schema is
migrated by Alembic when a process opens the store. Workflows never import this package.
"""

from store.configured import configured_store
from store.database import Store, StoreError, redacted_url
from store.migrate import DatabaseNewerThanCode, SchemaStatus, schema_status, upgrade
from store.opening import open_store

__all__ = [
    "DatabaseNewerThanCode",
    "SchemaStatus",
    "Store",
    "StoreError",
    "configured_store",
    "open_store",
    "redacted_url",
    "schema_status",
    "upgrade",
]
