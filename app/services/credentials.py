"""The credentials a deployment starts with, and the refusal to serve an API nobody can trust.

- `make run` with nothing configured creates an admin token once and keeps it in the state
  folder (mode 0600), so the local default stays one command.
- A deployment hands the API its admin token through a secret file
  (AFTERACTION_ADMIN_TOKEN_FILE); the API makes it the token named bootstrap-admin.
- An API on an address other than loopback refuses to start while no token or OIDC could let
  anyone in, which would leave only the open door of a forgotten default.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from domain.identity import Role
from settings import ENV_PREFIX, Settings
from store.api_tokens import ApiTokens

LOCAL_ADMIN = "local-admin"
BOOTSTRAP_ADMIN = "bootstrap-admin"


class CredentialsError(Exception):
    """The API must not start as configured; the message says what to set."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ensure_local_admin_token(settings: Settings, tokens: ApiTokens) -> Path:
    """The state folder's admin token file, created (with a new token) unless it holds a
    token that still works."""
    path = settings.local_admin_token_file
    if path.is_file():
        secret = path.read_text(encoding="utf-8").strip()
        if secret and tokens.verify(secret) is not None:
            return path
    _, secret = tokens.renew(LOCAL_ADMIN, role=Role.ADMIN, created_by="make run")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Written with 0600 from the start: the secret is never readable by others, not even
    # for the moment between creating the file and changing its mode.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(secret + "\n")
    path.chmod(0o600)
    return path


def bootstrap_admin_token(settings: Settings, tokens: ApiTokens) -> None:
    if settings.admin_token_file is None:
        return
    try:
        secret = settings.admin_token_file.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialsError(
            f"cannot read {ENV_PREFIX}ADMIN_TOKEN_FILE ({settings.admin_token_file}): {error}; "
            "mount the secret there, or unset the variable"
        ) from None
    if len(secret) < 32:
        raise CredentialsError(
            f"{ENV_PREFIX}ADMIN_TOKEN_FILE ({settings.admin_token_file}) holds fewer than 32 "
            "characters; put a long random secret in it (e.g. `openssl rand -base64 32`)"
        )
    tokens.replace(BOOTSTRAP_ADMIN, role=Role.ADMIN, secret=secret, created_by="deployment")


def check_exposure(settings: Settings, tokens: ApiTokens) -> None:
    if is_loopback(settings.api_host) or settings.oidc_enabled or tokens.any_active():
        return
    raise CredentialsError(
        f"the API would listen on {settings.api_host} with no way to authenticate anyone: "
        f"create a token (`afteraction tokens create NAME --role admin`), set "
        f"{ENV_PREFIX}ADMIN_TOKEN_FILE, or configure {ENV_PREFIX}OIDC_ISSUER and "
        f"{ENV_PREFIX}OIDC_AUDIENCE; or listen on 127.0.0.1"
    )
