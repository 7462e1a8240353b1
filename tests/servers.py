"""Where the real Temporal binaries live: installed into the venv by the `local` extra."""

from __future__ import annotations

import sys
from pathlib import Path

BIN = Path(sys.executable).parent


def binary(name: str) -> str:
    path = BIN / name
    if not path.is_file():
        raise RuntimeError(
            f"{path} is missing; run `make test` (it installs the `local` extra) instead of "
            "calling pytest from another environment"
        )
    return str(path)


def dev_server_path() -> str:
    return binary("temporal")


def test_server_path() -> str:
    return binary("temporal-test-server")
