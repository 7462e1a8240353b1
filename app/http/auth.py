"""Who is calling, and may they: every /api request, and GET /metrics (what Prometheus
scrapes), carries `Authorization: Bearer …`.

A bearer credential is either an API token (aft_…, looked up in the store) or, where OIDC is
configured, a JWT from the team's identity provider. The middleware answers 401 before a body
is read; each route then names the permission it needs (`requires`), and a caller without it
gets 403 saying which roles have it. The actor that reaches a workflow is built here, from the
credential, never from the request body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.middleware.base import BaseHTTPMiddleware

from app.http.review_requests import YAML_TYPES, is_json, media_type
from domain.identity import Actor, ActorKind, Permission, Role, permissions_of, roles_granting
from integrations.oidc import OidcRefused, OidcUnavailable, OidcVerifier
from store import StoreError
from store.api_tokens import ApiTokens

PROTECTED_PREFIX = "/api/"
# Outside /api by Prometheus' convention, behind the same credentials: the figures name teams
# and counts that anonymous callers have no business reading.
PROTECTED_PATHS = frozenset({"/metrics"})
CHANGES_STATE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="afteraction"'}


@dataclass(frozen=True)
class Principal:
    actor: Actor
    roles: frozenset[Role]
    team: str | None = None

    def can(self, permission: Permission) -> bool:
        return permission in permissions_of(self.roles)


class Unauthenticated(Exception):
    pass


class Authenticator:
    def __init__(self, tokens: ApiTokens, oidc: OidcVerifier | None) -> None:
        self.tokens = tokens
        self.oidc = oidc

    async def principal(self, authorization: str | None) -> Principal:
        scheme, _, credential = (authorization or "").partition(" ")
        credential = credential.strip()
        if scheme.lower() != "bearer" or not credential:
            raise Unauthenticated(
                "no credentials: send `Authorization: Bearer <token>` with an API token "
                "(`afteraction tokens create`) or an OIDC token"
            )
        # A JWT is three dot-separated parts; an API token (and a deployment's secret) has none.
        if self.oidc is None or credential.count(".") != 2:
            token = await asyncio.to_thread(self.tokens.verify, credential)
            if token is None:
                raise Unauthenticated(
                    "the API token is unknown, revoked or expired; ask an admin for a new one"
                )
            return Principal(
                actor=Actor(
                    kind=ActorKind.TOKEN,
                    subject=token.name,
                    display_name=token.name,
                    via=f"token {token.name}",
                ),
                roles=frozenset({token.role}),
                team=token.team,
            )
        identity = await asyncio.to_thread(self.oidc.verify, credential)
        return Principal(
            actor=Actor(
                kind=ActorKind.OIDC,
                subject=identity.subject,
                display_name=identity.display_name,
                via=identity.issuer,
            ),
            roles=identity.roles,
        )


def protected(path: str) -> bool:
    """Whether a request to `path` must carry a valid credential."""
    return path.startswith(PROTECTED_PREFIX) or path in PROTECTED_PATHS


class AuthenticationMiddleware(BaseHTTPMiddleware):
    """401 for any /api (or /metrics) request without a valid credential, before its body is
    read."""

    def __init__(self, app: object, authenticator: Authenticator) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.authenticator = authenticator

    async def dispatch(
        self, request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if not protected(request.url.path):
            return await call_next(request)
        try:
            request.state.principal = await self.authenticator.principal(
                request.headers.get("authorization")
            )
        except (Unauthenticated, OidcRefused) as error:
            return JSONResponse({"detail": str(error)}, status_code=401, headers=CHALLENGE)
        except (OidcUnavailable, StoreError) as error:
            return JSONResponse(
                {"detail": f"cannot check credentials now: {error}"}, status_code=503
            )
        if request.method in CHANGES_STATE:
            media = media_type(request.headers.get("content-type"))
            if media is None or not (is_json(media) or media in YAML_TYPES):
                # A form or a text/plain body is what another site's page can send without
                # asking: a change of state must say it is JSON (or a YAML review file).
                return JSONResponse(
                    {
                        "detail": f"a change needs a JSON body (Content-Type: application/json; "
                        f"a review may be a file sent as application/yaml), not {media or 'none'}"
                    },
                    status_code=415,
                )
        return await call_next(request)


class Requires:
    """A route's rule: the permission a caller needs. Every /api route has exactly one (a test
    walks the routes), so a new route cannot be added without deciding who may call it."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    async def __call__(self, request: Request) -> Principal:
        principal: Principal = request.state.principal
        if not principal.can(self.permission):
            holders = ", ".join(role.value for role in roles_granting(self.permission))
            yours = ", ".join(sorted(role.value for role in principal.roles)) or "no role"
            raise HTTPException(
                403,
                f"{principal.actor.display_name} ({yours}) may not do this: it needs "
                f"{self.permission.value}, which {holders} have",
            )
        return principal


def requires(permission: Permission) -> Requires:
    return Requires(permission)


def current_principal(request: Request) -> Principal:
    """The authenticated caller (the middleware put it there); for handlers that record who
    acted. Whether they may act is the route's `requires` rule."""
    principal: Principal = request.state.principal
    return principal
