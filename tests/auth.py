"""API tokens for tests: created in the store the API under test reads."""

from __future__ import annotations

import uuid

from domain.identity import Role
from settings import Settings
from store import configured_store, open_store
from store.api_tokens import ApiTokens

ADMIN = "test-admin"


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def token_secret(
    settings: Settings | None = None,
    *,
    database_url: str | None = None,
    role: Role = Role.ADMIN,
    name: str | None = None,
    team: str | None = None,
) -> str:
    """A new token's secret, in the store of `settings` (or at `database_url`)."""
    store = open_store(database_url) if database_url else configured_store(settings or Settings())
    _, secret = ApiTokens(store).create(
        name or f"{role.value}-{uuid.uuid4().hex[:8]}", role=role, team=team, created_by="tests"
    )
    return secret


def admin_headers(settings: Settings) -> dict[str, str]:
    return bearer(token_secret(settings, name=ADMIN))
