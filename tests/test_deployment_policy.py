"""One policy for everyone: the worker publishes the policy and routing it loaded, and a CLI
whose own files differ runs its commands under the deployment's, saying it ignores its own; a
CLI that finds nothing published (another state folder) says so instead of silently using the
built-in default. `afteraction config show` prints what is in force."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

from pydantic import TypeAdapter
from temporalio.testing import WorkflowEnvironment

from domain.policy import default_policy
from domain.severity import Severity
from settings import Settings
from store import configured_store
from tests.cli import Cli, cli_env
from worker import build_worker, publish_deployment

FAST_POLICY = Path(__file__).parent / "fast_policy.toml"
DURATION = TypeAdapter(timedelta)


def cli_in(dev_env: WorkflowEnvironment, home: Path, task_queue: str, **variables: str) -> Cli:
    address = dev_env.client.service_client.config.target_host
    env = {**cli_env(home, address), "AFTERACTION_TASK_QUEUE": task_queue, **variables}
    return Cli(home=home, env=env)


async def test_the_cli_runs_under_the_policy_the_worker_published(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    settings = Settings(home=tmp_path, task_queue=task_queue, policy_file=FAST_POLICY)
    published = publish_deployment(settings, configured_store(settings))
    assert published.policy_source == str(FAST_POLICY)
    # The CLI beside it names no policy file: the built-in default would acknowledge in 1h.
    cli = cli_in(dev_env, tmp_path, task_queue)
    async with build_worker(dev_env.client, settings):
        declared = await cli(
            "declare", "--title", "Checkout errors", "--severity", "SEV2", "--json"
        )
        assert declared.returncode == 0, declared.stderr
        assert "ignoring AFTERACTION_POLICY_FILE the built-in default" in declared.stderr
        assert str(FAST_POLICY) in declared.stderr
        key = json.loads(declared.stdout)["key"]
        shown = await cli("show", key, "--json")
        rules = json.loads(shown.stdout)["policy"]["severities"][Severity.SEV2.value]
        assert DURATION.validate_python(rules["acknowledge_within"]) == timedelta(seconds=3)
        # Reading commands do not repeat the warning.
        assert "ignoring" not in shown.stderr

    report = await cli("config", "show", "--json")
    assert report.returncode == 0, report.stderr
    deployment = json.loads(report.stdout)["deployment"]
    assert deployment["task_queue"] == task_queue
    assert deployment["policy_source"] == str(FAST_POLICY)
    human = await cli("config", "show")
    assert str(FAST_POLICY) in human.stdout and "3s" in human.stdout

    # The same file named by the CLI is no conflict: nothing is ignored.
    agreeing = cli_in(dev_env, tmp_path, task_queue, AFTERACTION_POLICY_FILE=str(FAST_POLICY))
    assert json.loads((await agreeing("config", "show", "--json")).stdout)["note"] is None


async def test_a_cli_that_finds_nothing_published_says_where_it_looked(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    task_queue = f"tq-{uuid.uuid4()}"
    stack_home, elsewhere = tmp_path / "stack", tmp_path / "elsewhere"
    settings = Settings(home=stack_home, task_queue=task_queue, policy_file=FAST_POLICY)
    publish_deployment(settings, configured_store(settings))
    elsewhere.mkdir()
    cli = cli_in(dev_env, elsewhere, task_queue)
    async with build_worker(dev_env.client, settings):
        declared = await cli("declare", "--title", "t", "--severity", "SEV2", "--json")
        assert declared.returncode == 0, declared.stderr
        assert "no afteraction worker has published its policy" in declared.stderr
        assert str(elsewhere) in declared.stderr and "AFTERACTION_HOME" in declared.stderr
        # It used the built-in default, as it said.
        shown = await cli("show", json.loads(declared.stdout)["key"], "--json")
        rules = json.loads(shown.stdout)["policy"]["severities"][Severity.SEV2.value]
        built_in = default_policy().for_severity(Severity.SEV2).acknowledge_within
        assert DURATION.validate_python(rules["acknowledge_within"]) == built_in
