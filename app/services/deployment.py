"""One policy for everyone: the deployment's worker publishes the policy and routing it loaded
(worker.publish_deployment), and every client (the CLI on Temporal, the API) runs commands
under those, whatever files its own settings name.

A client whose own files differ is told it is ignored; a client that finds nothing published
(no worker has started against its store: another AFTERACTION_HOME, say) uses its own files
and is told so, naming where it looked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from domain.deployment import DeploymentConfig, policy_source, routing_source
from domain.policy import Policy, PolicyFileError, load_policy
from domain.routing import Routing, RoutingError, load_routing
from settings import Settings
from store import Store
from store.deployment_config import DeploymentConfigs
from telemetry.logs import get_logger

log = get_logger("afteraction.deployment")


@dataclass(frozen=True)
class InForce:
    """The policy and routing a client's commands run under, and what to tell its user."""

    policy: Policy
    routing: Routing
    published: DeploymentConfig | None
    warning: str | None


def in_force(settings: Settings, store: Store) -> InForce:
    """The deployment's published policy and routing; the client's own files when none is
    published (PolicyFileError, RoutingError only then)."""
    published = DeploymentConfigs(store).published(settings.task_queue)
    if published is None:
        return InForce(
            policy=load_policy(settings.policy_file),
            routing=load_routing(settings.routing_file),
            published=None,
            warning=(
                f"no afteraction worker has published its policy for task queue "
                f"{settings.task_queue!r} in {store.url}; using "
                f"{policy_source(settings.policy_file)} policy. If the stack runs from another "
                "folder, run afteraction there, or set AFTERACTION_HOME (or "
                "AFTERACTION_DATABASE_URL) to its state"
            ),
        )
    ignored = [
        f"{name} {source}"
        for name, source, differs in (
            ("AFTERACTION_POLICY_FILE", policy_source(settings.policy_file), _own_policy_differs),
            (
                "AFTERACTION_ROUTING_FILE",
                routing_source(settings.routing_file),
                _own_routing_differs,
            ),
        )
        if differs(settings, published)
    ]
    warning = None
    if ignored:
        warning = (
            f"ignoring {' and '.join(ignored)}: the deployment runs its incidents under "
            f"{published.policy_source} policy and {published.routing_source} routing "
            f"(published by {published.published_by}); `afteraction config show` prints them"
        )
    return InForce(
        policy=published.policy, routing=published.routing, published=published, warning=warning
    )


def _own_policy_differs(settings: Settings, published: DeploymentConfig) -> bool:
    try:
        return load_policy(settings.policy_file) != published.policy
    except PolicyFileError:
        return True


def _own_routing_differs(settings: Settings, published: DeploymentConfig) -> bool:
    """By content: the same file read through another path is the same routing."""
    try:
        own = load_routing(settings.routing_file)
    except RoutingError:
        return True
    return own.model_dump(exclude={"source"}) != published.routing.model_dump(exclude={"source"})


class Deployed:
    """For a long-running client (the API): what is in force, read again from the store at
    most every `refresh` seconds, so a worker restarted with new files is followed; its
    warning (own files ignored, nothing published) is logged when it first holds. With
    `policy`/`routing` given, those are in force instead (an API embedded with its own)."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        *,
        policy: Policy | None = None,
        routing: Routing | None = None,
        refresh: float = 5.0,
    ) -> None:
        self._settings = settings
        self._store = store
        self._fixed = None
        if policy is not None:
            self._fixed = InForce(
                policy=policy,
                routing=routing or load_routing(settings.routing_file),
                published=None,
                warning=None,
            )
        self._refresh = refresh
        self._read_at = -refresh
        self._current: InForce | None = None

    def current(self) -> InForce:
        if self._fixed is not None:
            return self._fixed
        now = time.monotonic()
        if self._current is None or now - self._read_at >= self._refresh:
            previous = self._current
            self._current, self._read_at = in_force(self._settings, self._store), now
            warning = self._current.warning
            # Said once when it first holds, not at every refresh.
            if warning and (previous is None or previous.warning != warning):
                log.warning("deployment.policy", detail=warning)
        return self._current
