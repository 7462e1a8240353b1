"""What a deployment runs its incidents under: the severity policy and the routing its worker
loaded, published where every client of the deployment reads them (the store), so a client's
own files never decide an incident's deadlines."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, Field

from domain.policy import Policy
from domain.routing import Routing

BUILT_IN = "the built-in default"
NO_ROUTING = "none (every team's items go to the local tracker)"


def policy_source(path: Path | None) -> str:
    return str(path) if path else BUILT_IN


def routing_source(path: Path | None) -> str:
    return str(path) if path else NO_ROUTING


class DeploymentConfig(BaseModel):
    task_queue: str = Field(description="the deployment's task queue: its workers and incidents")
    policy: Policy
    routing: Routing
    policy_source: str = Field(description="the policy file the worker read, or the built-in")
    routing_source: str = Field(description="the routing file the worker read, or none")
    published_at: datetime
    published_by: str = Field(description="the worker that published it (user@host, pid)")
