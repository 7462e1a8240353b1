"""API tokens for people and bots: created with a random secret shown once, looked up by the
SHA-256 of the secret, listed without it, revoked by name."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from datetime import UTC, datetime

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from domain.identity import Role
from store.database import Store, StoreError
from store.schema import ApiTokenRow

# Recognisable in a leaked-secret scan, and never mistaken for a JWT (which has two dots).
SECRET_PREFIX = "aft_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class TokenRefused(StoreError):
    """A token cannot be created or revoked as asked; the message says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


class ApiToken(BaseModel):
    """A token as `tokens list` shows it: never its secret."""

    name: str
    role: Role
    team: str | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None

    def active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _row(
    name: str,
    secret: str,
    role: Role,
    team: str | None,
    created_at: datetime,
    created_by: str,
    expires_at: datetime | None,
) -> ApiTokenRow:
    return ApiTokenRow(
        name=name,
        secret_sha256=digest(secret),
        role=role.value,
        team=team,
        created_at=created_at,
        created_by=created_by,
        expires_at=expires_at,
        revoked_at=None,
    )


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        name=row.name,
        role=Role(row.role),
        team=row.team,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class ApiTokens:
    def __init__(self, store: Store, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self._clock = clock or (lambda: datetime.now(UTC))

    def create(
        self,
        name: str,
        *,
        role: Role,
        created_by: str,
        team: str | None = None,
        expires_at: datetime | None = None,
        secret: str | None = None,
    ) -> tuple[ApiToken, str]:
        """The new token and its secret, which is not kept: show it once. `secret` is for a
        deployment that hands the API its admin token from a secret store."""
        if not NAME.match(name):
            raise TokenRefused(
                f"{name!r} is not a token name: use 1-100 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        now = self._clock()
        if expires_at is not None and expires_at <= now:
            raise TokenRefused(
                f"the token would expire at {expires_at:%Y-%m-%d %H:%M} UTC, "
                "which has passed; give a later expiry"
            )
        secret = secret or SECRET_PREFIX + secrets.token_urlsafe(32)
        row = _row(name, secret, role, team, now, created_by, expires_at)
        try:
            with self.store.writing() as session:
                session.add(row)
                session.flush()
                return _token(row), secret
        except IntegrityError:
            raise TokenRefused(
                f"a token named {name!r} exists already; choose another name, or revoke it "
                f"first with `afteraction tokens revoke {name}`"
            ) from None

    def renew(self, name: str, *, role: Role, created_by: str) -> tuple[ApiToken, str]:
        """A new secret for the token `name` (created if missing); the old secret stops working."""
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)
        return self.replace(name, role=role, secret=secret, created_by=created_by), secret

    def verify(self, secret: str) -> ApiToken | None:
        """The active token with this secret, or None (unknown, revoked or expired alike)."""
        with self.store.reading() as session:
            row = session.scalars(
                select(ApiTokenRow).where(ApiTokenRow.secret_sha256 == digest(secret))
            ).one_or_none()
            token = _token(row) if row is not None else None
        if token is None or not token.active(self._clock()):
            return None
        return token

    def all(self) -> list[ApiToken]:
        with self.store.reading() as session:
            rows = session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.created_at))
            return [_token(row) for row in rows]

    def any_active(self) -> bool:
        now = self._clock()
        return any(token.active(now) for token in self.all())

    def replace(self, name: str, *, role: Role, secret: str, created_by: str) -> ApiToken:
        """Make `name` the token with this secret, dropping an earlier one of that name: how a
        deployment's admin token follows its secret when the secret is rotated."""
        with self.store.writing() as session:
            row = session.get(ApiTokenRow, name)
            if row is not None and row.secret_sha256 == digest(secret) and row.revoked_at is None:
                return _token(row)
            if row is not None:
                session.delete(row)
                session.flush()
            fresh = _row(name, secret, role, None, self._clock(), created_by, None)
            session.add(fresh)
            session.flush()
            return _token(fresh)

    def revoke(self, name: str) -> ApiToken:
        with self.store.writing() as session:
            row = session.get(ApiTokenRow, name)
            if row is None:
                raise TokenRefused(
                    f"no token named {name!r}; `afteraction tokens list` shows the names"
                )
            if row.revoked_at is None:
                row.revoked_at = self._clock()
            return _token(row)
