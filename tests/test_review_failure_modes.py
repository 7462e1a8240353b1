"""A review's failure modes and contributing factors: checked against the taxonomy in force and
the library (pure, then through the CLI and the API), the template prefilled from the recipes of
the modes it names, and a declaration naming failure modes."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from app.cli.common import cli_actor
from app.formats.review_files import ReviewFileError, dump_yaml, parse_review, review_template
from app.services.library import InvalidFailureMode, Library
from domain.failure_modes import DEFAULT_TAXONOMY, FailureMode, Taxonomy
from domain.policy import default_policy
from domain.review import ContributingFactor
from domain.review_tags import KnownTags, tag_problems, tag_warnings
from domain.severity import Severity
from settings import Settings
from store import open_store
from tests.cli import Cli
from tests.reviews import full_review, item_spec
from tests.test_api_reviews import Api, resolved_incident, review_json, running_api
from tests.test_cli_feedback import cli_for, run_json
from tests.test_review_files import make_incident
from worker import build_worker

SOURCE = "review.yaml"
POOL = "connection-pool-exhaustion"
KNOWN = KnownTags(taxonomy=DEFAULT_TAXONOMY, slugs=frozenset({POOL}))

ENTRY: dict[str, Any] = {
    "name": "Connection pool exhaustion",
    "triggers": ["capacity"],
    "recipes": [
        {
            "name": "cap and shed",
            "steps": ["raise the pool to the database's per-client limit"],
            "action_items": [
                {
                    "title": "Alert on pool saturation",
                    "kind": "short_term_mitigation",
                    "success_criteria": "pages at 80% pool use for 5 minutes",
                    "slo_link": "https://slo.example.com/checkout",
                },
                {
                    "title": "Shed the lowest-priority traffic first",
                    "kind": "short_term_mitigation",
                    "success_criteria": "a load test at 2x peak keeps checkout under 300 ms",
                },
            ],
        },
        {
            "name": "size from the database",
            "action_items": [
                {
                    "title": "Derive pool sizes from the database's connection limit",
                    "kind": "long_term_systemic",
                    "success_criteria": "no service's pools add up past the limit, checked in CI",
                }
            ],
        },
    ],
}
SUGGESTED = [item for recipe in ENTRY["recipes"] for item in recipe["action_items"]]
SUGGESTED_FIELDS = ("title", "kind", "success_criteria", "slo_link")


def review_text(**fields: Any) -> str:
    review = full_review(item_spec("payments", "Cap the pool size"), **fields)
    return dump_yaml(review.model_dump(mode="json"))


def problems_of(text: str, known: KnownTags = KNOWN) -> list[str]:
    with pytest.raises(ReviewFileError) as caught:
        parse_review(
            text, source=SOURCE, policy=default_policy(), severity=Severity.SEV2, library=known
        )
    return caught.value.problems


def line_text(text: str, problem: str) -> str:
    line = int(re.search(r"\(line (\d+)\)$", problem).group(1))  # type: ignore[union-attr]
    return text.splitlines()[line - 1].strip()


def comments(text: str) -> str:
    """The template's comments as one line, as a person reads them past the wrapping."""
    return " ".join(line.strip()[2:] for line in text.splitlines() if line.strip().startswith("# "))


def suggested_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{field: item.get(field) for field in SUGGESTED_FIELDS} for item in items]


# ---- the taxonomy and library check, pure ----------------------------------------------------


def test_unknown_trigger_root_cause_and_slug_each_name_path_line_and_what_is_allowed() -> None:
    text = review_text(
        executive_summary="",
        failure_modes=[POOL, "dns-outage"],
        contributing_factors=[
            ContributingFactor(description="pool too small", trigger="capacity"),
            ContributingFactor(
                description="no limit check", trigger="cosmic rays", root_cause="bad luck"
            ),
        ],
    )
    problems = problems_of(text)
    by_path = {problem.split(": ", 2)[1]: problem for problem in problems}
    # Every problem at once: the policy's (the summary) and the tags'.
    assert sorted(by_path) == [
        "contributing_factors.1.root_cause",
        "contributing_factors.1.trigger",
        "executive_summary",
        "failure_modes.1",
    ]
    trigger = by_path["contributing_factors.1.trigger"]
    assert "'cosmic rays' is not a trigger of the taxonomy (defaults)" in trigger
    assert "expected one of " + ", ".join(DEFAULT_TAXONOMY.triggers) in trigger
    assert line_text(text, trigger) == "trigger: cosmic rays"
    cause = by_path["contributing_factors.1.root_cause"]
    assert "expected one of " + ", ".join(DEFAULT_TAXONOMY.root_causes) in cause
    assert line_text(text, cause) == "root_cause: bad luck"
    slug = by_path["failure_modes.1"]
    assert "'dns-outage' is not a failure mode of the library" in slug
    assert "`afteraction library list` shows the entries" in slug
    assert "`afteraction library add FILE` adds one" in slug
    assert line_text(text, slug) == "- dns-outage"


def test_a_name_where_a_slug_belongs_is_told_the_slug_form() -> None:
    data = yaml.safe_load(review_text())
    data["failure_modes"] = ["Connection Pool"]
    (problem,) = problems_of(dump_yaml(data))
    assert problem.startswith(
        f"{SOURCE}: failure_modes.0: 'Connection Pool' is not a slug; write it in lowercase "
        "letters and digits, words joined by hyphens"
    )


def test_a_review_naming_only_what_the_taxonomy_and_library_know_is_accepted() -> None:
    factors = [ContributingFactor(description="d", trigger="capacity", root_cause="software")]
    review = full_review(failure_modes=[POOL], contributing_factors=factors)
    assert tag_problems(review, DEFAULT_TAXONOMY, {POOL}) == []
    assert tag_warnings(review) == []


def test_a_review_without_contributing_factors_is_accepted_with_a_warning() -> None:
    text = review_text()
    review = parse_review(
        text, source=SOURCE, policy=default_policy(), severity=Severity.SEV2, library=KNOWN
    )
    (warning,) = tag_warnings(review)
    assert "names no contributing factor" in warning
    assert "contributing_factors" in warning


def test_a_custom_taxonomy_is_the_one_checked() -> None:
    custom = Taxonomy(triggers=["solar flare"], root_causes=["physics"], source="ours.toml")
    text = review_text(
        contributing_factors=[
            ContributingFactor(description="d", trigger="solar flare", root_cause="software")
        ]
    )
    (problem,) = problems_of(text, KnownTags(taxonomy=custom, slugs=frozenset()))
    assert problem.startswith(f"{SOURCE}: contributing_factors.0.root_cause: 'software' is not")
    assert "(ours.toml); expected one of physics" in problem


def test_the_library_names_the_declared_modes_and_the_asked_ones_once_each(
    tmp_path: Path,
) -> None:
    library = Library(open_store(f"sqlite:///{tmp_path / 'store.db'}"), DEFAULT_TAXONOMY)
    library.add(FailureMode.model_validate(ENTRY), actor=cli_actor())
    named = library.named([POOL], declared=[POOL], field="--failure-mode")
    assert [mode.slug for mode in named] == [POOL]
    with pytest.raises(InvalidFailureMode) as caught:
        library.named(["dns-outage"], declared=["gone", POOL], field="--failure-mode")
    assert [problem.split(": ", 1)[0] for problem in caught.value.problems] == [
        "failure_modes.0",
        "--failure-mode.0",
    ]


# ---- the template, prefilled from the recipes ------------------------------------------------


def test_the_template_prefills_the_recipes_items_for_the_team_to_complete() -> None:
    mode = FailureMode.model_validate(ENTRY)
    text = review_template(make_incident(), taxonomy=DEFAULT_TAXONOMY, modes=[mode])
    data = yaml.safe_load(text)
    assert data["failure_modes"] == [POOL]
    assert suggested_of(data["action_items"]) == suggested_of(SUGGESTED)
    assert [(i["owning_team"], i["priority"], i["due_at"]) for i in data["action_items"]] == [
        (None, None, None)
    ] * len(SUGGESTED)
    assert text.count(f"# From {POOL}, recipe cap and shed:") == 2
    assert text.count(f"# From {POOL}, recipe size from the database:") == 1
    guide = comments(text)
    assert "give each an owning_team and a priority, and a due_at unless" in guide
    assert "Triggers: " + ", ".join(DEFAULT_TAXONOMY.triggers) + "." in guide
    assert "Root causes: " + ", ".join(DEFAULT_TAXONOMY.root_causes) + "." in guide

    # As written, each item lacks its team and priority; given them, the review is accepted.
    unfilled = yaml.safe_load(review_text())
    unfilled.update(failure_modes=data["failure_modes"], action_items=data["action_items"])
    problems = problems_of(dump_yaml(unfilled))
    assert sorted(p.split(": ", 2)[1] for p in problems) == sorted(
        f"action_items.{n}.{field}" for n in range(3) for field in ("owning_team", "priority")
    )
    for item in unfilled["action_items"]:
        item.update(owning_team="payments", priority="P2")
    review = parse_review(
        dump_yaml(unfilled),
        source=SOURCE,
        policy=default_policy(),
        severity=Severity.SEV2,
        library=KNOWN,
    )
    assert [spec.title for spec in review.action_items] == [item["title"] for item in SUGGESTED]


def test_without_failure_modes_the_template_lists_none_and_keeps_its_example() -> None:
    data = yaml.safe_load(review_template(make_incident(), taxonomy=DEFAULT_TAXONOMY))
    assert (data["failure_modes"], data["contributing_factors"], data["action_items"]) == (
        [],
        [],
        [],
    )


# ---- through the CLI, on the dev server, under a taxonomy file ---------------------------------

TAXONOMY = (
    'triggers = ["capacity", "config push"]\nroot_causes = ["software", "capacity planning"]\n'
)


@pytest.fixture
async def cli(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Cli]:
    """The CLI under a taxonomy file of its own, and a worker on a fresh task queue sharing its
    state folder (the library, the local tracker)."""
    taxonomy = tmp_path / "taxonomy.toml"
    taxonomy.write_text(TAXONOMY, encoding="utf-8")
    task_queue = f"tq-{uuid.uuid4()}"
    async with build_worker(dev_env.client, Settings(home=tmp_path, task_queue=task_queue)):
        yield cli_for(dev_env, tmp_path, task_queue, AFTERACTION_TAXONOMY_FILE=str(taxonomy))


async def test_declare_template_submit_and_show_with_failure_modes_through_the_cli(
    cli: Cli, dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    entry = tmp_path / "entry.yaml"
    entry.write_text(dump_yaml(ENTRY), encoding="utf-8")
    assert (await run_json(cli, "library", "add", str(entry)))["mode"]["slug"] == POOL

    declare = ["declare", "--title", "Checkout errors", "--severity", "SEV2"]
    refused = await cli.refused(*declare, "--failure-mode", POOL, "--failure-mode", "dns-outage")
    assert refused == (
        "--failure-mode.1: 'dns-outage' is not a failure mode of the library; `afteraction "
        "library list` shows the entries, `afteraction library add FILE` adds one"
    )
    key = str((await run_json(cli, *declare, "--failure-mode", POOL))["key"])
    assert (await run_json(cli, "show", key))["failure_modes"] == [POOL]
    await run_json(cli, "resolve", key)

    unknown = await cli.refused("review", "template", key, "--failure-mode", "dns-outage")
    assert unknown.startswith("--failure-mode.0: 'dns-outage' is not a failure mode")
    assert "`afteraction library list`" in unknown
    done = await cli("review", "template", key, "--failure-mode", POOL)
    assert done.returncode == 0, done.stderr
    template = yaml.safe_load((tmp_path / f"review-{key}.yaml").read_text(encoding="utf-8"))
    assert template["failure_modes"] == [POOL]
    assert suggested_of(template["action_items"]) == suggested_of(SUGGESTED)

    due = (datetime.now(UTC) + timedelta(days=10)).replace(microsecond=0)
    for item in template["action_items"]:
        item.update(owning_team="payments", priority="P2", due_at=due)
    review = yaml.safe_load(review_text())
    review.update(failure_modes=template["failure_modes"], action_items=template["action_items"])
    factor = {"description": "pools sized past the limit", "trigger": "binary push"}
    review["contributing_factors"] = [factor]
    filled = tmp_path / "filled.yaml"
    filled.write_text(dump_yaml(review), encoding="utf-8")
    problem = await cli.refused("review", "submit", key, str(filled))
    taxonomy = tmp_path / "taxonomy.toml"
    assert f"{filled}: contributing_factors.0.trigger: 'binary push' is not a trigger of the " in (
        problem
    )
    assert f"({taxonomy}); expected one of capacity, config push" in problem
    assert line_text(filled.read_text(encoding="utf-8"), problem) == "trigger: binary push"

    # Without any contributing factor, the review is accepted, and the CLI warns.
    review["contributing_factors"] = []
    filled.write_text(dump_yaml(review), encoding="utf-8")
    accepted = await cli("review", "submit", key, str(filled), "--json")
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["state"] == "tracking"
    assert "warning: the review names no contributing factor" in accepted.stderr
    items = (await run_json(cli, "show", key))["action_items"]
    assert [(i["title"], i["owning_team"], i["due_at"]) for i in items] == [
        (item["title"], "payments", due.isoformat().replace("+00:00", "Z")) for item in SUGGESTED
    ]
    shown = await cli("review", "show", key)
    assert shown.returncode == 0, shown.stderr
    assert f"- Connection pool exhaustion (`{POOL}`)" in shown.stdout
    assert "No contributing factors named." in shown.stdout


# ---- through the API -------------------------------------------------------------------------


@pytest.fixture
async def api(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[Api]:
    async with running_api(dev_env, tmp_path) as running:
        await running.ok("POST", "/api/library", 201, json=ENTRY)
        yield running


async def test_the_api_checks_declared_modes_prefills_the_template_and_checks_the_review(
    api: Api,
) -> None:
    body = {"title": "Checkout errors", "severity": "SEV2", "failure_modes": ["dns-outage"]}
    refused = await api.http.post("/api/incidents", json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["problems"] == [
        "failure_modes.0: 'dns-outage' is not a failure mode of the library; `afteraction "
        "library list` shows the entries, `afteraction library add FILE` adds one"
    ]
    created = await api.ok("POST", "/api/incidents", 201, json={**body, "failure_modes": [POOL]})
    assert created["state"] == "declared"
    key = await resolved_incident(api)

    path = f"/api/incidents/{key}/review/template"
    unknown = await api.http.get(path, params={"failure_mode": "dns-outage"})
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["problems"][0].startswith("failure_mode.0: 'dns-outage' is not")
    template = await api.http.get(path, params={"failure_mode": [POOL, POOL]})
    assert template.status_code == 200, template.text
    data = yaml.safe_load(template.text)
    assert (data["failure_modes"], suggested_of(data["action_items"])) == (
        [POOL],
        suggested_of(SUGGESTED),
    )

    factors = [ContributingFactor(description="d", trigger="capacity", root_cause="luck")]
    wrong = review_json(
        item_spec("payments", "Cap the pool size"),
        failure_modes=["dns-outage"],
        contributing_factors=factors,
    )
    answer = await api.http.post(f"/api/incidents/{key}/review", json=wrong)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["problems"]
    assert [problem.split(": ", 1)[0] for problem in problems] == [
        "failure_modes.0",
        "contributing_factors.0.root_cause",
    ]
    assert "expected one of " + ", ".join(DEFAULT_TAXONOMY.root_causes) in problems[1]

    factors[0].root_cause = "software"
    right = review_json(
        item_spec("payments", "Cap the pool size"),
        failure_modes=[POOL],
        contributing_factors=factors,
    )
    assert (await api.ok("POST", f"/api/incidents/{key}/review", json=right))["state"] == (
        "tracking"
    )
    markdown = await api.http.get(
        f"/api/incidents/{key}/review", headers={"Accept": "text/markdown"}
    )
    assert f"- Connection pool exhaustion (`{POOL}`)" in markdown.text
    assert "| d | capacity | software |" in markdown.text
    record = json.loads((await api.http.get(f"/api/incidents/{key}/review")).text)
    assert record["review"]["failure_modes"] == [POOL]
