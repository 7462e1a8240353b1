"""Every /api route asks who is calling and whether they may: API tokens and OIDC (against a
real discovery document and JWKS on loopback), roles checked on every route (the list of routes
comes from the OpenAPI document), bodies bounded, and no change of state from a form."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.http.api import create_app
from app.http.auth import Requires
from app.services.credentials import CredentialsError, bootstrap_admin_token, check_exposure
from domain.identity import GRANTS, Permission, Role
from integrations.oidc import OidcRefused, OidcVerifier
from settings import Settings
from store import configured_store
from store.api_tokens import ApiTokens
from tests.auth import bearer
from tests.oidc_provider import AUDIENCE, Provider, serving_provider
from tests.stack import AFTERACTION, stack_env

# Values that fill a route's path parameters: none of them exists, which only matters to
# callers who get past the rules.
PATH_VALUES = {
    "key": "INC-000000-NONE",
    "id": "INC-000000-NONE-1",
    "command_id": "resolve:1",
    "slug": "no-such-mode",
}


def unreachable(_: Settings) -> Any:
    raise AssertionError("a refused request never reaches Temporal")


@pytest.fixture
def provider() -> Iterator[Provider]:
    with serving_provider() as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, provider: Provider) -> Settings:
    roles = tmp_path / "oidc-roles.toml"
    roles.write_text('[groups]\nsre = ["responder"]\n"eng-managers" = ["approver"]\n')
    return Settings(
        home=tmp_path,
        oidc_issuer=provider.issuer,
        oidc_audience=AUDIENCE,
        oidc_roles_file=roles,
        api_max_body=4096,
        webhook_max_body=8192,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings, connector=unreachable)


@pytest.fixture
def tokens(settings: Settings) -> ApiTokens:
    return ApiTokens(configured_store(settings))


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://afteraction") as client:
        yield client


def rule_of(route: APIRoute) -> Permission:
    rules = [d.dependency for d in route.dependencies if isinstance(d.dependency, Requires)]
    assert len(rules) == 1, f"{route.methods} {route.path} needs exactly one rule: {rules}"
    return rules[0].permission


def operations(app: FastAPI) -> list[tuple[str, str, Permission]]:
    """Every /api operation in the OpenAPI document, with the rule its route declares."""
    rules = {
        (method, route.path): rule_of(route)
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/")
        for method in route.methods or ()
    }
    found = []
    for path, methods in app.openapi()["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method in methods:
            found.append((method.upper(), path, rules[(method.upper(), path)]))
    return found


def test_every_api_route_has_one_rule_and_documents_401_and_403(app: FastAPI) -> None:
    listed = operations(app)
    assert len(listed) >= 20
    for method, path, _ in listed:
        responses = app.openapi()["paths"][path][method.lower()]["responses"]
        assert {"401", "403"} <= set(responses), (method, path)


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


async def test_every_route_refuses_anonymous_callers_and_every_role_below_its_rule(
    app: FastAPI, http: httpx.AsyncClient, tokens: ApiTokens
) -> None:
    secrets = {
        role: tokens.create(f"{role.value}-token", role=role, created_by="tests")[1]
        for role in Role
    }
    checked = 0
    for method, path, permission in operations(app):
        url = concrete(path)
        anonymous = await http.request(method, url, json={})
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        for role, secret in secrets.items():
            if permission in GRANTS[role]:
                continue
            refused = await http.request(method, url, json={}, headers=bearer(secret))
            assert refused.status_code == 403, (method, path, role, refused.text)
            assert f"it needs {permission.value}" in refused.json()["detail"]
            checked += 1
    assert checked > 30


async def test_roles_are_least_privilege_where_it_matters(
    app: FastAPI, http: httpx.AsyncClient, tokens: ApiTokens
) -> None:
    rules = {(method, path): permission for method, path, permission in operations(app)}
    assert rules[("POST", "/api/incidents/{key}/resolve")] is Permission.RESPOND
    assert rules[("POST", "/api/incidents/{key}/review")] is Permission.REVIEW
    assert rules[("POST", "/api/actions/{id}/accept")] is Permission.APPROVE
    assert rules[("GET", "/api/incidents")] is Permission.READ
    _, viewer = tokens.create("viewer", role=Role.VIEWER, created_by="tests")
    _, responder = tokens.create("responder", role=Role.RESPONDER, created_by="tests")
    resolve = await http.post(
        "/api/incidents/INC-000000-NONE/resolve", json={}, headers=bearer(viewer)
    )
    assert resolve.status_code == 403
    assert "viewer (viewer) may not do this" in resolve.json()["detail"]
    accept = await http.post(
        "/api/actions/INC-000000-NONE-1/accept",
        json={"rationale": "r"},
        headers=bearer(responder),
    )
    assert accept.status_code == 403
    assert "which approver, admin have" in accept.json()["detail"]


async def test_revoked_and_expired_tokens_are_refused(
    http: httpx.AsyncClient, tokens: ApiTokens
) -> None:
    _, secret = tokens.create("soon-gone", role=Role.ADMIN, created_by="tests")
    assert (await http.get("/api/tickets", headers=bearer(secret))).status_code == 200
    tokens.revoke("soon-gone")
    revoked = await http.get("/api/tickets", headers=bearer(secret))
    assert revoked.status_code == 401
    assert "unknown, revoked or expired" in revoked.json()["detail"]

    past = ApiTokens(tokens.store, clock=lambda: datetime.now(UTC) - timedelta(days=2))
    _, old = past.create(
        "expired", role=Role.ADMIN, created_by="tests", expires_at=datetime.now(UTC)
    )
    assert (await http.get("/api/tickets", headers=bearer(old))).status_code == 401
    for header in ("Basic dXNlcjpwYXNz", "Bearer", "bearer   "):
        answer = await http.get("/api/tickets", headers={"Authorization": header})
        assert answer.status_code == 401


async def test_oidc_tokens_are_verified_against_the_issuers_keys(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    async def status(token: str) -> tuple[int, str]:
        answer = await http.get("/api/tickets", headers=bearer(token))
        body = answer.json()
        return answer.status_code, body["detail"] if isinstance(body, dict) else ""

    assert (await status(provider.token()))[0] == 200, "valid, and sre maps to responder"
    now = int(datetime.now(UTC).timestamp())
    refusals = {
        "expired": (provider.token(exp=now - 3600, iat=now - 7200), "has expired"),
        "not yet valid": (provider.token(nbf=now + 3600), "not valid yet"),
        "wrong audience": (provider.token(aud="someone-else"), "not for this API"),
        "wrong issuer": (provider.token(iss="https://evil.example"), "was not issued by"),
        "alg none": (provider.unsigned(), "signed with 'none'"),
        "HS256 with the public key": (provider.hs256_with_public_key(), "signed with 'HS256'"),
        "unknown kid": (
            provider.token(key=type(provider.keys[0]).generate()),
            "a key http://127.0.0.1",
        ),
    }
    for case, (token, reason) in refusals.items():
        code, detail = await status(token)
        assert code == 401, (case, detail)
        assert reason in detail, (case, detail)


async def test_oidc_roles_come_from_the_groups_claim(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    nobody = await http.get("/api/tickets", headers=bearer(provider.token(groups=["marketing"])))
    assert nobody.status_code == 403
    assert "Alice Example (no role) may not do this" in nobody.json()["detail"]
    manager = provider.token(groups=["eng-managers"], name="Vera Manager")
    assert (await http.get("/api/tickets", headers=bearer(manager))).status_code == 200
    responder = await http.post(
        "/api/actions/INC-000000-NONE-1/accept",
        json={"rationale": "r"},
        headers=bearer(provider.token(groups=["sre"])),
    )
    assert responder.status_code == 403
    assert "Alice Example (responder)" in responder.json()["detail"]


def test_a_rotated_key_is_fetched_once_and_the_retired_one_refused(provider: Provider) -> None:
    verifier = OidcVerifier(
        provider.issuer,
        AUDIENCE,
        role_map={"sre": frozenset({Role.RESPONDER})},
        key_refresh_cooldown=0,
    )
    old_key = provider.keys[0]
    assert verifier.verify(provider.token()).roles == {Role.RESPONDER}
    fetches = provider.jwks_fetches
    new_key = provider.rotate()
    identity = verifier.verify(provider.token(key=new_key))
    assert identity.display_name == "Alice Example"
    assert provider.jwks_fetches == fetches + 1, "the new kid made it fetch the keys once"
    with pytest.raises(OidcRefused, match="does not publish"):
        verifier.verify(provider.token(key=old_key))


async def test_bodies_are_bounded_before_anything_reads_them(
    http: httpx.AsyncClient, tokens: ApiTokens
) -> None:
    _, secret = tokens.create("big", role=Role.ADMIN, created_by="tests")
    big = b'{"text": "' + b"x" * 5000 + b'"}'
    declared = await http.post(
        "/api/incidents/INC-000000-NONE/timeline",
        content=big,
        headers={**bearer(secret), "Content-Type": "application/json"},
    )
    assert declared.status_code == 413
    assert "larger than 4,096 bytes" in declared.json()["detail"]

    async def streamed() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    chunked = await http.post(
        "/api/incidents/INC-000000-NONE/timeline",
        content=streamed(),
        headers={**bearer(secret), "Content-Type": "application/json"},
    )
    assert chunked.status_code == 413
    anonymous_big = await http.post("/api/incidents", content=big)
    assert anonymous_big.status_code == 413, "refused before anyone reads it"
    webhook = await http.post("/webhooks/github", content=b"{" + b" " * 9000 + b"}")
    assert webhook.status_code == 413
    assert "larger than 8,192 bytes" in webhook.json()["detail"]


async def test_a_change_of_state_needs_a_json_or_yaml_body(
    http: httpx.AsyncClient, tokens: ApiTokens
) -> None:
    _, secret = tokens.create("csrf", role=Role.ADMIN, created_by="tests")
    for headers in ({}, {"Content-Type": "text/plain"}, {"Content-Type": "multipart/form-data"}):
        answer = await http.post(
            "/api/tickets/LOCAL-1/close", content=b"", headers={**bearer(secret), **headers}
        )
        assert answer.status_code == 415, (headers, answer.text)
        assert "application/json" in answer.json()["detail"]
    form = await http.post(
        "/api/tickets/LOCAL-1/close",
        data={"a": "b"},
        headers=bearer(secret),
    )
    assert form.status_code == 415


def test_the_api_refuses_to_listen_beyond_loopback_with_no_credentials(tmp_path: Path) -> None:
    env = stack_env(tmp_path, AFTERACTION_API_HOST="0.0.0.0")
    result = subprocess.run(
        [AFTERACTION, "api"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "no way to authenticate anyone" in result.stderr
    assert "afteraction tokens create" in result.stderr
    assert "Traceback" not in result.stderr


async def test_a_deployment_hands_the_api_its_admin_token_through_a_secret_file(
    tmp_path: Path, http: httpx.AsyncClient, tokens: ApiTokens, settings: Settings
) -> None:
    secret_file = tmp_path / "afteraction_admin_token"
    secret_file.write_text("first-secret-of-forty-characters-at-least\n")
    deployed = settings.model_copy(update={"admin_token_file": secret_file})
    bootstrap_admin_token(deployed, tokens)
    first = bearer("first-secret-of-forty-characters-at-least")
    assert (await http.get("/api/tickets", headers=first)).status_code == 200

    secret_file.write_text("rotated-secret-of-forty-characters-at-least")
    bootstrap_admin_token(deployed, tokens)
    assert (await http.get("/api/tickets", headers=first)).status_code == 401
    rotated = bearer("rotated-secret-of-forty-characters-at-least")
    assert (await http.get("/api/tickets", headers=rotated)).status_code == 200

    secret_file.write_text("short")
    with pytest.raises(CredentialsError, match="fewer than 32 characters"):
        bootstrap_admin_token(deployed, tokens)
    with pytest.raises(CredentialsError, match="cannot read"):
        bootstrap_admin_token(
            settings.model_copy(update={"admin_token_file": tmp_path / "missing"}), tokens
        )


def test_exposure_needs_a_credential_beyond_loopback(settings: Settings, tokens: ApiTokens) -> None:
    open_wide = settings.model_copy(
        update={"api_host": "0.0.0.0", "oidc_issuer": None, "oidc_audience": None}
    )
    with pytest.raises(CredentialsError, match="no way to authenticate anyone"):
        check_exposure(open_wide, tokens)
    for host in ("127.0.0.1", "::1", "localhost"):
        check_exposure(open_wide.model_copy(update={"api_host": host}), tokens)
    check_exposure(settings.model_copy(update={"api_host": "0.0.0.0"}), tokens)  # OIDC is set
    tokens.create("ops", role=Role.ADMIN, created_by="tests")
    check_exposure(open_wide, tokens)
