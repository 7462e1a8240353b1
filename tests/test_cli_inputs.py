"""`afteraction` refuses what once crashed it (an overflowing duration, a binary review file,
an id no item can have) with exit 2 and a one-line reason, in a subprocess as a person runs it.
Most are refused before Temporal is asked (its address here answers nothing: reaching it
would exit 1); the rest ask the session's dev server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain.limits import NOTE_CHARS, REVIEW_FILE_BYTES
from tests.cli import Cli, cli_env
from tests.helpers import declare
from tests.policies import slow_policy

HUGE = "9999999999d"


def cli_in(home: Path, address: str, **variables: str) -> Cli:
    return Cli(home=home, env={**cli_env(home, address), **variables})


@pytest.fixture
def offline(tmp_path: Path) -> Cli:
    return cli_in(tmp_path, "127.0.0.1:1")


ADD = ["--title", "t", "--team", "payments", "--kind", "short_term_mitigation", "--priority", "P2"]


@pytest.mark.parametrize(
    "args",
    [
        ["declare", "--title", "t", "--severity", "SEV2", "--started", HUGE],
        ["declare", "--title", "t", "--severity", "SEV2", "--detected", HUGE],
        ["note", "INC-1", "text", "--at", HUGE],
        ["mitigate", "INC-1", "--at", HUGE],
        ["resolve", "INC-1", "--at", HUGE],
        ["review", "schedule", "INC-1", "--at", HUGE],
        ["actions", "extend", "INC-1-1", "--due", HUGE, "--reason", "r"],
        ["actions", "extend", "INC-1-1", "--due", f"+{HUGE}", "--reason", "r"],
        ["actions", "add", "INC-1", *ADD, "--criteria", "c", "--due", HUGE],
    ],
    ids=lambda args: " ".join(args[:2]) + (" +DURATION" if f"+{HUGE}" in args else ""),
)
async def test_every_duration_past_ten_years_exits_2(offline: Cli, args: list[str]) -> None:
    message = await offline.refused(*args)
    assert message.endswith(
        f"'{HUGE}' is longer than 3650d, the longest duration afteraction takes; give a shorter one"
    )


async def test_inputs_past_their_caps_exit_2_naming_the_limit(offline: Cli, tmp_path: Path) -> None:
    assert await offline.refused("note", "INC-1", "x" * (NOTE_CHARS + 1)) == (
        "text: at most 10,000 characters, this has 10,001; shorten it, or link to a document "
        "for the rest"
    )
    epoch = await offline.refused(
        "declare", "--title", "t", "--severity", "SEV2", "--started", "1970-01-01T00:00:00Z"
    )
    assert epoch.startswith("started_at: 1970-01-01T00:00:00+00:00 is not between 2000-01-01")
    team = await offline.refused("actions", "list", "--team", 'a"b')
    assert team.startswith("--team 'a\"b': a team or service name cannot contain a double quote")
    ticket = await offline.refused("tickets", "show", "LOCAL-99999999999999999999")
    assert ticket.startswith("no ticket LOCAL-99999999999999999999 in the local tracker")

    binary = tmp_path / "review.png"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff")
    assert await offline.refused("review", "submit", "INC-1", str(binary)) == (
        f"{binary} cannot be submitted:\n{binary}: (top level): not UTF-8 text (byte 0 cannot be "
        "read); save the review file as UTF-8"
    )
    huge = tmp_path / "huge.yaml"
    huge.write_bytes(b"# padding\n" * (REVIEW_FILE_BYTES // 10 + 1))
    assert "larger than the 1 MiB a review file may hold" in await offline.refused(
        "review", "submit", "INC-1", str(huge)
    )


@pytest.fixture
async def online(
    dev_env: WorkflowEnvironment, tmp_path: Path, task_queue: str, worker: Worker
) -> AsyncIterator[Cli]:
    address = dev_env.client.service_client.config.target_host
    yield cli_in(tmp_path, address, AFTERACTION_TASK_QUEUE=task_queue)


async def test_ids_and_files_that_reach_temporal_exit_2(
    online: Cli, client: Client, task_queue: str, tmp_path: Path
) -> None:
    item = await online.refused("actions", "show", "INC-1-99999999999999999999")
    assert item == (
        "'INC-1-99999999999999999999' is not an action item id; expected KEY-N, e.g. "
        "INC-261127-7KQ2-2"
    )
    key = await online.refused("show", "X" * 5000)
    assert key.startswith("no incident 'XXXX") and "keys look like INC-261127-7KQ2" in key

    handle = await declare(client, task_queue, slow_policy())
    incident = handle.id.removeprefix("incident/")
    dates = tmp_path / "dates.yaml"
    dates.write_text("timeline:\n  - at: 2026-99-99\n    text: rolled back\n")
    message = await online.refused("review", "submit", incident, str(dates))
    assert f"{dates}: timeline.0.at: '2026-99-99' is not a time" in message
    assert "(line 2)" in message
    bomb = tmp_path / "aliases.yaml"
    bomb.write_text("a: &a [x, x, x, x]\nb: [*a, *a, *a, *a]\n")
    message = await online.refused("review", "submit", incident, str(bomb))
    assert message.endswith(
        f"{bomb}: line 1, column 4: anchors and aliases (&name, *name) are not accepted in a "
        "review file; write each value out"
    )
    await handle.terminate("test over")
