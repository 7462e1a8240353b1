"""A real PostgreSQL server for the test session, started from the installed server binaries
(Debian's `postgresql` package puts them under /usr/lib/postgresql/<version>/bin).

PostgreSQL refuses to run as root, so under root (CI) the server runs as the `postgres` user
the package creates. Without the binaries the PostgreSQL tests are skipped, unless
AFTERACTION_TEST_POSTGRES_REQUIRED is set (.ci/run sets it): then they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.stack import free_port

REQUIRED = "AFTERACTION_TEST_POSTGRES_REQUIRED"
# Only in URLs the tests build: the server trusts loopback, so no password is checked, and
# tests look for it in logs and messages to prove it never leaks.
PASSWORD = "pg-test-password-7f3a"


class PostgresUnavailable(Exception):
    pass


def bin_dir() -> Path:
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda path: int(Path(path).parent.parent.name),
    )
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    if on_path:
        return Path(on_path).resolve().parent
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (pg_ctl); install the `postgresql` package"
    )


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass
class PostgresServer:
    port: int
    data: Path

    def url(self, database: str = "postgres", *, driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://postgres:{PASSWORD}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty database; its SQLAlchemy URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(driver="postgresql"), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _run(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise PostgresUnavailable(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    binaries = bin_dir()
    root = Path(tempfile.mkdtemp(prefix="afteraction-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresUnavailable("running as root, and there is no `postgres` user") from None
        for path in (root, data):
            os.chown(path, user.pw_uid, user.pw_gid)
    port = free_port()
    try:
        initdb = [str(binaries / "initdb"), "-D", str(data), "-U", "postgres"]
        _run(_as_server_user([*initdb, "--auth=trust", "-E", "UTF8", "--no-sync"]))
        options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c fsync=off"
        options += " -c max_connections=200"
        pg_ctl = [str(binaries / "pg_ctl"), "-D", str(data), "-o", options]
        _run(_as_server_user([*pg_ctl, "-l", str(data / "server.log"), "-w", "-t", "60", "start"]))
        yield PostgresServer(port=port, data=data)
    finally:
        subprocess.run(
            _as_server_user([str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


def unavailable(reason: str) -> None:
    """Skip, or fail where CI requires PostgreSQL."""
    if os.environ.get(REQUIRED):
        pytest.fail(f"PostgreSQL is required ({REQUIRED} is set) but cannot start: {reason}")
    pytest.skip(f"PostgreSQL tests skipped: {reason}")
