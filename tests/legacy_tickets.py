"""The local tracker's tickets.db as releases before the store wrote it, for import tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

# The local tracker's file as releases before the store wrote it (integrations/local.py then).
LEGACY_SCHEMA = """
CREATE TABLE tickets (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    labels TEXT NOT NULL,
    assignee TEXT,
    due_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX tickets_updated_at ON tickets (updated_at);
CREATE TABLE comments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ticket_key TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    text TEXT NOT NULL,
    at TEXT NOT NULL,
    UNIQUE (ticket_key, idempotency_key)
);
"""


def legacy_file(path: Path) -> Path:
    """An earlier release's tickets.db: two tickets of action items (one closed, commented
    twice) and one opened by hand, LOCAL-2 deleted so numbers have a gap."""
    db = sqlite3.connect(path)
    db.executescript(LEGACY_SCHEMA)
    stamp = "2026-11-20T10:00:00.000000+00:00"
    rows = [
        (1, "incident/INC-1/action/1", "Add alert", "closed", '["afteraction", "sev2"]', "ann"),
        (2, "incident/INC-1/action/2", "Deleted", "open", "[]", None),
        (3, "incident/INC-1/action/3", "Rate limit", "open", '["afteraction"]', None),
        (4, None, "Rotate the certificate", "open", '["ops"]', "bob"),
    ]
    for number, key, title, status, labels, assignee in rows:
        db.execute(
            "INSERT INTO tickets VALUES (?, ?, ?, 'body', ?, ?, ?, ?, ?, ?)",
            (number, key, title, status, labels, assignee, stamp, stamp, stamp),
        )
    db.execute("DELETE FROM tickets WHERE number = 2")
    db.execute(
        "INSERT INTO comments (ticket_key, idempotency_key, text, at) VALUES"
        " ('LOCAL-1', 'reminder/1', 'due soon', ?), ('LOCAL-1', 'verify/1', 'verified', ?)",
        (stamp, stamp),
    )
    db.commit()
    db.close()
    return path
