"""How a benchmark reports: one JSON object on stdout, everything else on stderr."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any, NoReturn


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Logs, and the dev server's banner (a child process writing to fd 1), go to stderr, so
    stdout carries exactly one JSON object."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def emit_and_exit(result: dict[str, Any], *, status: int = 0) -> NoReturn:
    """Print `result` and end the process with `status` (non-zero: the run found a miss)."""
    print(json.dumps(result, indent=2))
    # Skip interpreter teardown, as the CLI does: the Temporal client's Rust threads can abort
    # a finishing process ("PyGILState_Release ... finalizing", temporalio/sdk-python#300).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
