"""Verifying OIDC access and ID tokens from the team's identity provider, with PyJWT.

Discovery (`<issuer>/.well-known/openid-configuration`) names the JWKS; PyJWKClient fetches and
caches it, and fetches it again when a token names a key it has not seen (key rotation), at
most once per cooldown. Only asymmetric algorithms are accepted, so neither `alg: none` nor an
HS256 token "signed" with the public key passes. Roles come from one claim (`groups` by
default) through a mapping file:

    [groups]
    "sre" = ["responder"]
    "eng-managers" = ["approver"]
"""

from __future__ import annotations

import json
import threading
import time
import tomllib
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWKClient

from domain.identity import Role

# Asymmetric algorithms only: a shared-secret (HS*) or unsigned token is never an OIDC token.
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY_SECONDS = 60
DISCOVERY_TTL_SECONDS = 3600.0


class OidcRefused(Exception):
    """The token is not valid; the message says why in a sentence a caller can act on."""


class OidcUnavailable(Exception):
    """The identity provider's discovery document or keys cannot be fetched."""


class RoleMapError(Exception):
    """The roles mapping file is unusable; the message names the file and the problem."""


@dataclass(frozen=True)
class OidcIdentity:
    subject: str
    display_name: str
    issuer: str
    roles: frozenset[Role]


def load_role_map(path: Path | None) -> dict[str, frozenset[Role]]:
    """group -> roles, from the TOML file's [groups] table (no file: nobody gets a role)."""
    if path is None:
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise RoleMapError(f"cannot read the OIDC roles file {path}: {error}") from None
    groups = data.get("groups")
    if not isinstance(groups, dict):
        raise RoleMapError(
            f'{path} needs a [groups] table mapping each group to roles, e.g. "sre" = ["responder"]'
        )
    known = ", ".join(role.value for role in Role)
    mapping: dict[str, frozenset[Role]] = {}
    for group, roles in groups.items():
        if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
            raise RoleMapError(f"{path}: groups.{group} must be a list of roles ({known})")
        try:
            mapping[group] = frozenset(Role(role) for role in roles)
        except ValueError:
            raise RoleMapError(
                f"{path}: groups.{group} names a role that does not exist; roles are {known}"
            ) from None
    return mapping


class OidcVerifier:
    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        roles_claim: str = "groups",
        role_map: dict[str, frozenset[Role]] | None = None,
        timeout: float = 5.0,
        key_refresh_cooldown: float = 30.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.roles_claim = roles_claim
        self.role_map = role_map or {}
        self._timeout = timeout
        self._cooldown = key_refresh_cooldown
        self._lock = threading.Lock()
        self._keys: PyJWKClient | None = None
        self._algorithms: list[str] = []
        self._discovered_at = 0.0

    def verify(self, token: str) -> OidcIdentity:
        """Blocking (it may fetch the discovery document and keys): call it in a thread."""
        keys, algorithms = self._discovered()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise OidcRefused("the bearer token is neither an API token nor a JWT") from None
        if header.get("alg") not in algorithms:
            raise OidcRefused(
                f"the token is signed with {header.get('alg')!r}; {self.issuer} signs with "
                f"{', '.join(algorithms)}"
            )
        try:
            key = keys.get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as error:
            raise OidcUnavailable(f"cannot fetch the keys of {self.issuer}: {error}") from None
        except jwt.PyJWKClientError:
            raise OidcRefused(
                f"the token is signed by a key {self.issuer} does not publish (kid "
                f"{header.get('kid')!r})"
            ) from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise OidcRefused("the token has expired; sign in again") from None
        except jwt.ImmatureSignatureError:
            raise OidcRefused("the token is not valid yet (nbf or iat is in the future)") from None
        except jwt.InvalidAudienceError:
            raise OidcRefused(
                f"the token is not for this API (audience {self.audience!r})"
            ) from None
        except jwt.InvalidIssuerError:
            raise OidcRefused(f"the token was not issued by {self.issuer}") from None
        except jwt.MissingRequiredClaimError as error:
            raise OidcRefused(f"the token has no {error.claim!r} claim") from None
        except jwt.InvalidTokenError as error:
            raise OidcRefused(f"the token is not valid: {error}") from None
        return OidcIdentity(
            subject=str(claims["sub"]),
            display_name=str(
                claims.get("name")
                or claims.get("preferred_username")
                or claims.get("email")
                or claims["sub"]
            )[:255],
            issuer=self.issuer,
            roles=self._roles(claims),
        )

    def _roles(self, claims: dict[str, Any]) -> frozenset[Role]:
        groups = claims.get(self.roles_claim) or []
        if isinstance(groups, str):
            groups = groups.split()
        roles: frozenset[Role] = frozenset()
        for group in groups if isinstance(groups, list) else []:
            roles |= self.role_map.get(str(group), frozenset())
        return roles

    def _discovered(self) -> tuple[PyJWKClient, list[str]]:
        with self._lock:
            fresh = time.monotonic() - self._discovered_at < DISCOVERY_TTL_SECONDS
            if self._keys is not None and fresh:
                return self._keys, self._algorithms
            document = self._fetch_discovery()
            if str(document.get("issuer", "")).rstrip("/") != self.issuer:
                raise OidcUnavailable(
                    f"the discovery document of {self.issuer} names issuer "
                    f"{document.get('issuer')!r}; AFTERACTION_OIDC_ISSUER must match it exactly"
                )
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise OidcUnavailable(f"the discovery document of {self.issuer} has no jwks_uri")
            offered = document.get("id_token_signing_alg_values_supported") or ["RS256"]
            self._algorithms = sorted(ASYMMETRIC & set(offered)) or ["RS256"]
            if self._keys is None or self._keys.uri != jwks_uri:
                self._keys = PyJWKClient(
                    jwks_uri,
                    cache_jwk_set=True,
                    lifespan=300,
                    timeout=self._timeout,
                    cooldown_duration=self._cooldown,
                )
            self._discovered_at = time.monotonic()
            return self._keys, self._algorithms

    def _fetch_discovery(self) -> dict[str, Any]:
        url = f"{self.issuer}/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=self._timeout) as response:
                document = json.loads(response.read())
        except (OSError, ValueError) as error:
            raise OidcUnavailable(f"cannot fetch {url}: {error}") from None
        if not isinstance(document, dict):
            raise OidcUnavailable(f"{url} is not a discovery document")
        return document
