"""`afteraction` in a subprocess, as a person runs it: its own state folder, no stray .env."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from integrations.local import LocalTracker
from settings import Settings

AFTERACTION = str(Path(sys.executable).parent / "afteraction")


def cli_env(home: Path, temporal_address: str) -> dict[str, str]:
    """The environment of a run: none of the caller's AFTERACTION_* settings."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AFTERACTION_")}
    env["AFTERACTION_HOME"] = str(home)
    env["COLUMNS"] = "160"  # Rich wraps tables to the terminal's width
    env["AFTERACTION_TEMPORAL_ADDRESS"] = temporal_address
    return env


@dataclass
class Cli:
    home: Path
    env: dict[str, str]
    prefix: tuple[str, ...] = ()  # e.g. ("tickets",): the sub-command every call runs

    async def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(
            subprocess.run,
            [AFTERACTION, *self.prefix, *args],
            env=self.env,
            cwd=self.home,  # no stray .env from the repository
            capture_output=True,
            text=True,
            timeout=60,
        )

    async def refused(self, *args: str) -> str:
        """The error of a command that must exit 2 (invalid input), without its prefix."""
        done = await self(*args)
        assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        # A warning may come first (say, that no worker has published the deployment's policy).
        before, found, error = done.stderr.partition("error: ")
        assert found, done.stderr
        assert all(line.startswith("warning: ") for line in before.splitlines()), done.stderr
        return error.strip()

    @property
    def tracker(self) -> LocalTracker:
        return LocalTracker.configured(Settings(home=self.home))
