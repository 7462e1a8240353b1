"""The failure-mode library through every door: the repository on SQLite and PostgreSQL, the
CLI as a person runs it, and the API with tokens of each role."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.http.api import create_app
from domain.failure_modes import DEFAULT_TAXONOMY, FailureMode, TaxonomyError, load_taxonomy
from domain.identity import Role
from domain.limits import TEXT_CHARS
from settings import Settings
from store import open_store
from store.failure_modes import FailureModeExists, FailureModes, StaleVersion, UnknownFailureMode
from tests.auth import bearer, token_secret
from tests.cli import Cli, cli_env

ENTRY = """\
name: Connection pool exhaustion
description: Every connection of the pool is taken; requests queue, then time out.
triggers: [user behaviour, capacity]
root_causes: [software]
signals:
  - pool wait time p99 above 100 ms
recipes:
  - name: cap and shed
    steps:
      - raise the pool size to the database's per-client limit
      - shed the lowest-priority traffic
    action_items:
      - title: Alert on pool saturation
        kind: short_term_mitigation
        success_criteria: pages at 80% pool use for 5 minutes
        slo_link: https://slo.example.com/checkout
"""


def unreachable(_: Settings) -> Any:
    raise AssertionError("the library never reaches Temporal")


def mode(**fields: Any) -> FailureMode:
    return FailureMode.model_validate(
        {"name": "Connection pool exhaustion", "triggers": ["capacity"], **fields}
    )


# ---- the repository, on each engine ---------------------------------------------------------


def test_the_repository_adds_lists_and_replaces_at_the_version_read(database_url: str) -> None:
    modes = FailureModes(open_store(database_url))
    added = modes.add(mode(), by="cli:alice@laptop")
    assert (added.mode.slug, added.version) == ("connection-pool-exhaustion", 1)
    modes.add(mode(name="Bad config push", triggers=["config push"]), by="cli:bob@laptop")
    assert [entry.mode.name for entry in modes.all()] == [
        "Bad config push",
        "Connection pool exhaustion",
    ]
    with pytest.raises(FailureModeExists, match="in the library already"):
        modes.add(mode(), by="cli:carol@laptop")

    edited = modes.replace(
        added.mode.slug, mode(description="pool drained"), expected_version=1, by="token:ci"
    )
    assert (edited.version, edited.updated_by, edited.created_by) == (
        2,
        "token:ci",
        "cli:alice@laptop",
    )
    with pytest.raises(StaleVersion, match=r"is at version 2 .*token:ci.*not 1"):
        modes.replace(added.mode.slug, mode(description="late"), expected_version=1, by="x")
    assert modes.get(added.mode.slug).mode.description == "pool drained"
    with pytest.raises(UnknownFailureMode):
        modes.get("no-such-mode")
    with pytest.raises(UnknownFailureMode):
        modes.replace("no-such-mode", mode(slug="no-such-mode"), expected_version=1, by="x")


# ---- the taxonomy ---------------------------------------------------------------------------


def test_a_taxonomy_file_is_read_and_its_problems_named(tmp_path: Path) -> None:
    assert load_taxonomy(None) == DEFAULT_TAXONOMY
    good = tmp_path / "taxonomy.toml"
    good.write_text('triggers = ["deploy"]\nroot_causes = ["software", "people"]\n')
    assert load_taxonomy(good).triggers == ["deploy"]
    bad = tmp_path / "bad.toml"
    bad.write_text('triggers = "deploy"\ncauses = ["x"]\n')
    with pytest.raises(TaxonomyError) as error:
        load_taxonomy(bad)
    message = str(error.value)
    assert f"{bad}: triggers: " in message
    assert f"{bad}: root_causes: missing" in message
    assert f"{bad}: causes: unknown field" in message
    with pytest.raises(TaxonomyError, match="no such taxonomy file"):
        load_taxonomy(tmp_path / "missing.toml")


# ---- the CLI --------------------------------------------------------------------------------


def library_cli(home: Path, **env: str) -> Cli:
    return Cli(home, cli_env(home, temporal_address="127.0.0.1:1") | env, ("library",))


async def test_the_cli_adds_lists_shows_and_edits_an_entry(tmp_path: Path) -> None:
    cli = library_cli(tmp_path)
    (tmp_path / "pool.yaml").write_text(ENTRY)
    done = await cli("add", "pool.yaml")
    assert done.returncode == 0, done.stderr
    assert "added failure mode connection-pool-exhaustion (version 1)" in done.stdout

    listed = await cli("list")
    assert "connection-pool-exhaustion" in listed.stdout
    assert "user behaviour, capacity" in listed.stdout
    shown = await cli("show", "connection-pool-exhaustion")
    assert shown.returncode == 0, shown.stderr
    for text in ("pool wait time p99", "Recipe: cap and shed", "2. shed the lowest", "SLO: https"):
        assert text in shown.stdout, shown.stdout
    assert "added by cli:" in shown.stdout

    (tmp_path / "edit.yaml").write_text(
        ENTRY.replace("root_causes: [software]", "root_causes: [network]")
    )
    edited = await cli("edit", "connection-pool-exhaustion", "edit.yaml", "--json")
    assert edited.returncode == 0, edited.stderr
    entry = json.loads(edited.stdout)
    assert (entry["version"], entry["mode"]["root_causes"]) == (2, ["network"])
    stale = await cli.refused("edit", "connection-pool-exhaustion", "edit.yaml", "--version", "1")
    assert "is at version 2" in stale
    taken = await cli.refused("add", "pool.yaml")
    assert "in the library already" in taken
    unknown = await cli.refused("show", "nope")
    assert "no failure mode 'nope'" in unknown

    taxonomy = json.loads((await cli("taxonomy", "--json")).stdout)
    assert taxonomy["triggers"] == DEFAULT_TAXONOMY.triggers
    assert "network" in taxonomy["root_causes"]


async def test_the_cli_lists_every_problem_of_an_entry(tmp_path: Path) -> None:
    cli = library_cli(tmp_path)
    wrong = ENTRY.replace("[user behaviour, capacity]", "[cosmic rays, capacity, gremlins]")
    (tmp_path / "wrong.yaml").write_text(wrong.replace("[software]", "[fate]"))
    message = await cli.refused("add", "wrong.yaml")
    assert "triggers.0: 'cosmic rays' is not in the taxonomy" in message
    assert "triggers.2: 'gremlins' is not in the taxonomy" in message
    assert "root_causes.0: 'fate' is not in the taxonomy" in message
    assert "expected one of binary push, config push, user behaviour" in message
    assert "expected one of software, development process" in message

    huge = ENTRY.replace("pool wait time p99 above 100 ms", "x" * (TEXT_CHARS + 1))
    (tmp_path / "huge.yaml").write_text(huge.replace("kind: short_term_mitigation", "kind: soon"))
    message = await cli.refused("add", "huge.yaml")
    assert f"signals.0: at most {TEXT_CHARS:,} characters, this has {TEXT_CHARS + 1:,}" in message
    assert "(line 6)" in message
    assert "recipes.0.action_items.0.kind:" in message and "(line 14)" in message

    (tmp_path / "alias.yaml").write_text("name: &n pool\ndescription: *n\n")
    assert "anchors and aliases" in await cli.refused("add", "alias.yaml")
    assert (await cli("list")).stdout.startswith("the library is empty")


async def test_a_custom_taxonomy_file_is_honoured(tmp_path: Path) -> None:
    taxonomy = tmp_path / "taxonomy.toml"
    taxonomy.write_text('triggers = ["solar flare"]\nroot_causes = ["physics"]\n')
    cli = library_cli(tmp_path, AFTERACTION_TAXONOMY_FILE=str(taxonomy))
    (tmp_path / "pool.yaml").write_text(ENTRY)
    message = await cli.refused("add", "pool.yaml")
    assert f"not in the taxonomy ({taxonomy}); expected one of solar flare" in message
    (tmp_path / "flare.yaml").write_text(
        "name: Bit flips\ntriggers: [solar flare]\nroot_causes: [physics]\n"
    )
    done = await cli("add", "flare.yaml")
    assert done.returncode == 0, done.stderr
    shown = await cli("taxonomy")
    assert "solar flare" in shown.stdout and str(taxonomy) in shown.stdout


# ---- the API --------------------------------------------------------------------------------


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = Settings(home=tmp_path)
    app = create_app(settings, connector=unreachable)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://afteraction") as client:
        yield client, settings


BODY: dict[str, Any] = {
    "name": "Connection pool exhaustion",
    "triggers": ["capacity"],
    "root_causes": ["software"],
    "recipes": [
        {
            "name": "cap",
            "steps": ["raise the limit"],
            "action_items": [
                {
                    "title": "Alert on saturation",
                    "kind": "long_term_systemic",
                    "success_criteria": "pages at 80%",
                }
            ],
        }
    ],
}


async def test_the_api_adds_shows_and_edits_with_a_version(
    http: tuple[httpx.AsyncClient, Settings],
) -> None:
    client, settings = http
    reviewer, viewer = await asyncio.to_thread(
        lambda: (
            token_secret(settings, role=Role.REVIEWER),
            token_secret(settings, role=Role.VIEWER),
        )
    )
    refused = await client.post("/api/library", json=BODY, headers=bearer(viewer))
    assert refused.status_code == 403

    added = await client.post("/api/library", json=BODY, headers=bearer(reviewer))
    assert added.status_code == 201, added.text
    assert added.json()["created_by"].startswith("token:reviewer-")
    assert (
        await client.post("/api/library", json=BODY, headers=bearer(reviewer))
    ).status_code == 409

    listed = await client.get("/api/library", headers=bearer(viewer))
    assert [e["mode"]["slug"] for e in listed.json()] == ["connection-pool-exhaustion"]
    shown = await client.get("/api/library/connection-pool-exhaustion", headers=bearer(viewer))
    assert shown.json()["mode"]["recipes"][0]["action_items"][0]["kind"] == "long_term_systemic"
    assert (await client.get("/api/library/nope", headers=bearer(viewer))).status_code == 404

    url = "/api/library/connection-pool-exhaustion"
    edit = {**BODY, "name": "Pool exhaustion", "version": 1}
    edited = await client.put(url, json=edit, headers=bearer(reviewer))
    assert edited.status_code == 200, edited.text
    assert (edited.json()["version"], edited.json()["mode"]["slug"]) == (
        2,
        "connection-pool-exhaustion",
    )
    stale = await client.put(url, json=edit, headers=bearer(reviewer))
    assert stale.status_code == 409 and "is at version 2" in stale.json()["detail"]

    wrong = {**BODY, "triggers": ["gremlins", "capacity", "fate"], "root_causes": ["luck"]}
    invalid = await client.post("/api/library", json=wrong, headers=bearer(reviewer))
    assert invalid.status_code == 422
    problems = invalid.json()["problems"]
    assert [p.split(":")[0] for p in problems] == ["triggers.0", "triggers.2", "root_causes.0"]
    assert "expected one of binary push" in problems[0]

    huge = {**BODY, "name": "Big", "description": "x" * (TEXT_CHARS + 1)}
    too_long = await client.post("/api/library", json=huge, headers=bearer(reviewer))
    assert too_long.status_code == 422
    assert f"at most {TEXT_CHARS:,} characters" in too_long.text

    taxonomy = await client.get("/api/library/taxonomy", headers=bearer(viewer))
    assert taxonomy.json()["root_causes"] == DEFAULT_TAXONOMY.root_causes
