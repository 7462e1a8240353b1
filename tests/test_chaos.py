"""The chaos run (bench/chaos.py) in its small configuration: whole lifecycles while workers
are killed and the dev server restarts, with tracker events replayed; any miss fails the test.

It runs as a subprocess, as a person would run it, and brings its own dev server, workers and
API on loopback ports (nothing of the test session's server is shared).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
INCIDENTS, ITEMS, WORKER_KILLS, SERVER_RESTARTS = 10, 3, 5, 2


@pytest.mark.timeout(300)
def test_lifecycles_survive_killed_workers_restarted_server_and_replayed_events() -> None:
    command = [
        sys.executable,
        "-m",
        "bench.chaos",
        f"--incidents={INCIDENTS}",
        f"--items={ITEMS}",
        f"--worker-kills={WORKER_KILLS}",
        f"--server-restarts={SERVER_RESTARTS}",
        "--timeout=180",
        "--step-timeout=90",
    ]
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert run.stdout, f"no JSON on stdout (exit {run.returncode}):\n{run.stderr[-4000:]}"
    result = json.loads(run.stdout)
    assert result["misses"] == [], json.dumps(result, indent=1)[:6000]
    assert run.returncode == 0 and result["ok"]

    # The faults happened, and the replays with them: a run without them would prove nothing.
    chaos = result["chaos"]
    assert (chaos["worker_kills"], chaos["server_restarts"]) == (WORKER_KILLS, SERVER_RESTARTS)
    events = result["tracker_events"]
    assert events["signals_replayed"] > 0 and events["stale_applied"] == []

    checks = result["checks"]
    items = INCIDENTS * ITEMS
    assert checks["tickets"]["items_with_one_ticket"] == items
    assert checks["incidents"]["by_state"] == {"closed": INCIDENTS}
    assert checks["items"]["by_state"] == {"done": items}
    # Each late incident escalated once for its acknowledgement, each of its items once
    # for its due date; nothing else escalated.
    late = result["config"]["late_incidents"]
    assert late > 0
    escalations = checks["escalations"]
    assert escalations["recorded"] == escalations["expected"] == late * (1 + ITEMS)
    assert escalations["notifications_scheduled"] == late * (1 + ITEMS)
    assert escalations["ticket_comments"] == late * ITEMS
    assert checks["workflow_tasks"]["workflows"] == INCIDENTS + items
    assert checks["workflow_tasks"]["left_failing"] == []
