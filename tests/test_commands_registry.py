"""The CLI and API reach each workflow update by name: the names must stay in step."""

from temporalio import workflow

from app.services.incidents import COMMANDS
from workflows.incident import IncidentWorkflow


def test_every_command_names_an_update_of_the_incident_workflow() -> None:
    definition = workflow._Definition.must_from_class(IncidentWorkflow)
    assert set(COMMANDS) == set(definition.updates)
