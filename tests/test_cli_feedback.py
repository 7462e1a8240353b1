"""What `afteraction` tells a person, in a subprocess as they run it, with a real worker on a
fresh task queue: refusals in the CLI's own words, a missing worker named within seconds,
commands that say what they did, lists that say when nothing matches, filters, and output
that survives a pipe."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.testing import WorkflowEnvironment

from app.formats.review_files import dump_yaml
from settings import Settings
from tests.cli import Cli, cli_env
from tests.helpers import eventually
from tests.reviews import full_review, item_spec
from worker import build_worker


def cli_for(dev_env: WorkflowEnvironment, home: Path, task_queue: str, **variables: str) -> Cli:
    address = dev_env.client.service_client.config.target_host
    env = {**cli_env(home, address), "AFTERACTION_TASK_QUEUE": task_queue, **variables}
    return Cli(home=home, env=env)


async def run_json(cli: Cli, *args: str) -> Any:
    done = await cli(*args, "--json")
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return json.loads(done.stdout)


async def ok(cli: Cli, *args: str) -> str:
    """What a command that must succeed prints, stdout then stderr."""
    done = await cli(*args)
    assert done.returncode == 0, (args, done.stdout, done.stderr)
    return done.stdout + done.stderr


@pytest.fixture
def facilitator() -> str:
    return f"fac-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def cli(dev_env: WorkflowEnvironment, tmp_path: Path, facilitator: str) -> AsyncIterator[Cli]:
    """The CLI and a worker on one fresh task queue and one state folder (the local tracker);
    the CLI's policy names a one-person facilitator pool."""
    task_queue = f"tq-{uuid.uuid4()}"
    policy = tmp_path / "policy.toml"
    policy.write_text(f'facilitators = ["{facilitator}"]\n', encoding="utf-8")
    settings = Settings(home=tmp_path, task_queue=task_queue)
    async with build_worker(dev_env.client, settings):
        yield cli_for(dev_env, tmp_path, task_queue, AFTERACTION_POLICY_FILE=str(policy))


async def declare(cli: Cli, *extra: str, title: str = "Checkout errors") -> str:
    created = await run_json(cli, "declare", "--title", title, "--severity", "SEV2", *extra)
    return str(created["key"])


# ---- 3. refusals in the CLI's words --------------------------------------------------------


async def test_a_refusal_names_the_cli_commands_not_the_updates(cli: Cli) -> None:
    key = await declare(cli)
    message = await cli.refused("review", "schedule", key, "--at", "2d")
    assert message == (
        "cannot run `review schedule` on an incident that is declared; allowed now: `ack`, "
        "`cancel`, `mitigate`, `resolve`, `role`, `note`, `severity`"
    )
    await run_json(cli, "resolve", key)
    again = await cli.refused("ack", key, "--commander", "bob")
    assert again.startswith("cannot run `ack` on an incident that is resolved; allowed now: ")
    assert "`review schedule`, `review submit`" in again
    assert "_" not in again, "no update name leaks through"


# ---- 4. a missing worker -------------------------------------------------------------------


async def test_a_missing_worker_is_named_with_its_task_queue_within_seconds(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    cli = cli_for(dev_env, tmp_path, task_queue)

    declared = await cli("declare", "--title", "Checkout errors", "--severity", "SEV2")
    assert declared.returncode == 0, declared.stderr
    key = declared.stdout.split()[1]
    assert f"no worker is polling task queue '{task_queue}'" in declared.stderr
    assert "`afteraction worker`" in declared.stderr

    started = time.monotonic()
    shown = await cli("show", key)
    elapsed = time.monotonic() - started
    assert shown.returncode == 1, shown.stderr
    assert shown.stderr.startswith(
        f"error: Temporal answers, but no worker is polling task queue '{task_queue}'; start one"
    ), shown.stderr
    assert "cannot reach Temporal" not in shown.stderr
    assert elapsed < 6, f"took {elapsed:.1f}s; a query waits 10s for a worker"

    # The same incident, once a worker runs: nothing was lost, and the worker is not missing.
    async with build_worker(dev_env.client, Settings(home=tmp_path, task_queue=task_queue)):
        assert (await run_json(cli, "show", key))["state"] == "declared"


async def test_a_worker_that_stopped_is_missing_once_work_waits_for_it(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    """The queue still remembers the stopped worker's last poll; the new incident's first task,
    scheduled after that poll and never taken, tells."""
    task_queue = f"tq-{uuid.uuid4()}"
    cli = cli_for(dev_env, tmp_path, task_queue)
    async with build_worker(dev_env.client, Settings(home=tmp_path, task_queue=task_queue)):
        served = await declare(cli)
        assert (await run_json(cli, "show", served))["state"] == "declared"

    waiting = await declare(cli)
    started = time.monotonic()
    shown = await cli("show", waiting)
    elapsed = time.monotonic() - started
    assert shown.returncode == 1, shown.stderr
    assert f"no worker is polling task queue '{task_queue}': work waiting since" in shown.stderr
    assert elapsed < 6, f"took {elapsed:.1f}s; a query waits 10s for a worker"


# ---- 5. and 6. commands that say what they did -------------------------------------------


async def test_review_schedule_says_when_and_who_the_rotation_chose(
    cli: Cli, facilitator: str
) -> None:
    key = await declare(cli)
    await run_json(cli, "resolve", key)
    printed = await ok(cli, "review", "schedule", key, "--at", "2d", "--participant", "ana:product")
    at = (await run_json(cli, "show", key))["review_schedule"]["at"]
    when = datetime.fromisoformat(at).astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    assert f"review on {when} UTC" in printed
    assert f"facilitated by {facilitator}, chosen by the rotation" in printed
    assert "participants: ana (product)" in printed

    other = await declare(cli)
    await run_json(cli, "resolve", other)
    named = await ok(cli, "review", "schedule", other, "--at", "1d", "--facilitator", "fran")
    assert "facilitated by fran\n" in named
    assert "rotation" not in named


async def submitted_with_an_item(cli: Cli, tmp_path: Path) -> str:
    """A resolved incident whose review names one item (with an SLO link); the item's id."""
    key = await declare(cli)
    await run_json(cli, "resolve", key)
    template = tmp_path / "review.yaml"
    await ok(cli, "review", "template", key, "--out", str(template))
    spec = item_spec("payments", "Cap the pool size", slo_link="https://slo.example/checkout")
    review = full_review(spec)
    blank = yaml.safe_load(template.read_text(encoding="utf-8"))
    template.write_text(dump_yaml({**blank, **review.model_dump(mode="json")}), encoding="utf-8")
    await run_json(cli, "review", "submit", key, str(template))
    return f"{key}-1"


async def test_action_item_commands_say_what_they_did(cli: Cli, tmp_path: Path) -> None:
    item_id = await submitted_with_an_item(cli, tmp_path)
    item = await eventually(
        lambda: run_json(cli, "actions", "show", item_id),
        lambda found: found["ticket"] is not None,
        interval=0.5,
    )
    shown = await ok(cli, "actions", "show", item_id)
    assert "https://slo.example/checkout" in shown
    assert "Extensions: none" in shown and "Escalations: none" in shown

    # retry-ticket on an item with its ticket asks nothing.
    retried = await ok(cli, "actions", "retry-ticket", item_id)
    assert retried.strip() == (
        f"nothing to retry: {item_id} has its ticket, {item['ticket']['key']} in local"
    )
    assert (await run_json(cli, "actions", "retry-ticket", item_id))["requested"] is False

    # +14d counts from the current due date, and the new one is printed.
    due = datetime.fromisoformat(item["due_at"])
    extended = await ok(cli, "actions", "extend", item_id, "--due", "+14d", "--reason", "vendor")
    later = due + timedelta(days=14)
    assert f"now due {later:%Y-%m-%d %H:%M} UTC (was {due:%Y-%m-%d %H:%M} UTC)" in extended
    after = await run_json(cli, "actions", "show", item_id)
    assert datetime.fromisoformat(after["due_at"]) == later
    # A bare duration counts from now: earlier than the current due date, refused with the way.
    refused = await cli.refused("actions", "extend", item_id, "--due", "1d", "--reason", "x")
    assert refused.startswith("the new due time must be later than the current one")
    assert "`--due +14d` counts from the current due date" in refused
    help_text = await ok(cli, "actions", "extend", "--help")
    assert "after the current due" in help_text and "from now" in help_text

    # Evidence and extensions show once there are some.
    await ok(cli, "tickets", "close", item["ticket"]["key"])
    await eventually(
        lambda: run_json(cli, "actions", "show", item_id),
        lambda found: found["state"] == "verifying",
        interval=0.5,
    )
    await run_json(cli, "actions", "verify", item_id, "--evidence", "https://grafana/d/pool")
    final = await ok(cli, "actions", "show", item_id)
    assert re.search(r"Evidence\s+https://grafana/d/pool \(verified by cli:", final), final
    assert "Extensions" in final and "vendor" in final and "Extensions: none" not in final


# ---- 5. and 7. lists: what matches, and saying so when nothing does -----------------------


async def test_list_filters_and_says_when_nothing_matches(cli: Cli) -> None:
    service, team = f"svc-{uuid.uuid4().hex[:8]}", f"team-{uuid.uuid4().hex[:8]}"
    ongoing = await declare(cli, "--service", service, "--team", team)
    resolved = await declare(cli, "--service", service)
    await run_json(cli, "resolve", resolved)

    async def keys(*filters: str) -> list[str]:
        return [row["key"] for row in (await run_json(cli, "list", *filters))["items"]]

    await eventually(
        lambda: keys("--service", service),
        lambda found: set(found) == {ongoing, resolved},
        interval=0.5,
    )
    await eventually(
        lambda: keys("--service", service, "--active"),
        lambda found: found == [ongoing],
        interval=0.5,
    )
    assert await keys("--team", team) == [ongoing]
    assert set(await keys("--service", service, "--since", "1h")) == {ongoing, resolved}
    assert await keys("--service", service, "--until", "1h") == []
    assert await keys("--service", service, "--state", "resolved") == [resolved]

    nothing = await ok(cli, "list", "--service", service, "--until", "1h")
    assert nothing.strip() == f"no incident matches --service {service} --until 1h"
    no_items = await ok(cli, "actions", "list", "--team", team)
    assert no_items.strip() == f"no action item matches --team {team}"
    no_tickets = await ok(cli, "tickets", "list")
    assert no_tickets.startswith("there is no ticket yet")


# ---- 8. output that survives a pipe -------------------------------------------------------


async def test_piped_output_is_not_cut_to_80_columns(cli: Cli) -> None:
    title = "Checkout errors in every region after deploy 4182 of the payments gateway, " * 2
    service = f"svc-{uuid.uuid4().hex[:8]}"
    key = await declare(cli, "--service", service, title=title.strip())
    narrow = Cli(home=cli.home, env={**cli.env, "COLUMNS": "80"})
    listing = await eventually(
        lambda: ok(narrow, "list", "--service", service),
        lambda printed: key in printed,
        interval=0.5,
    )
    [row] = [line for line in listing.splitlines() if key in line]
    assert title.strip() in row, listing
    shown = await ok(narrow, "show", key)
    assert any(title.strip() in line for line in shown.splitlines()), shown


# ---- 9. keys and files as people type and look for them ---------------------------------


async def test_a_review_template_says_where_it_wrote(cli: Cli) -> None:
    key = await declare(cli)
    await run_json(cli, "resolve", key)
    written = await cli("review", "template", key.lower())
    assert written.returncode == 0, written.stderr
    target = cli.home / f"review-{key}.yaml"
    assert target.is_file()
    assert written.stderr.startswith(
        f"wrote {target}; fill it in, then: afteraction review submit {key} {target}"
    )
    assert "risk of migration (not risk mitigation)" in target.read_text(encoding="utf-8")


async def test_lowercase_keys_are_the_same_incident(cli: Cli) -> None:
    key = await declare(cli)
    assert (await run_json(cli, "show", key.lower()))["key"] == key
    assert (await run_json(cli, "ack", key.lower(), "--commander", "bob"))["key"] == key
