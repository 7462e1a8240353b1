"""The SQL behind domain.deployment.DeploymentConfig: a worker publishes, clients read."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from domain.deployment import DeploymentConfig
from domain.policy import Policy
from domain.routing import Routing
from store.database import Store
from store.schema import DeploymentConfigRow


class DeploymentConfigs:
    def __init__(self, store: Store) -> None:
        self._store = store

    def publish(self, config: DeploymentConfig) -> None:
        """Replace what the deployment of `config.task_queue` runs under."""
        values = {
            "task_queue": config.task_queue,
            "policy": config.policy.model_dump_json(),
            "routing": config.routing.model_dump_json(),
            "policy_source": config.policy_source,
            "routing_source": config.routing_source,
            "published_at": config.published_at,
            "published_by": config.published_by,
        }
        insert = (
            postgresql_insert(DeploymentConfigRow)
            if self._store.dialect == "postgresql"
            else sqlite_insert(DeploymentConfigRow)
        )
        statement = insert.values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["task_queue"],
            set_={name: statement.excluded[name] for name in values if name != "task_queue"},
        )
        with self._store.writing() as session:
            session.execute(statement)

    def published(self, task_queue: str) -> DeploymentConfig | None:
        with self._store.reading() as session:
            row = session.get(DeploymentConfigRow, task_queue)
            if row is None:
                return None
            return DeploymentConfig(
                task_queue=row.task_queue,
                policy=Policy.model_validate_json(row.policy),
                routing=Routing.model_validate_json(row.routing),
                policy_source=row.policy_source,
                routing_source=row.routing_source,
                published_at=row.published_at,
                published_by=row.published_by,
            )
