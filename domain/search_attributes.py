"""Custom search attributes: lists, the dashboard and the digest are visibility queries on them.

`start-dev --search-attribute` and the test servers register exactly this set. The dev
server's SQL visibility allows at most three Datetime attributes: DueAt is the next
deadline (an incident's review, an action item's due date), the rest of the clock is in
the workflow state. Action items share these attributes (WorkflowType tells them apart).
"""

from temporalio.common import SearchAttributeKey

SEVERITY = SearchAttributeKey.for_keyword("AfteractionSeverity")
STATE = SearchAttributeKey.for_keyword("AfteractionState")
SERVICES = SearchAttributeKey.for_keyword_list("AfteractionServices")
TEAMS = SearchAttributeKey.for_keyword_list("AfteractionTeams")
TITLE = SearchAttributeKey.for_text("AfteractionTitle")
DECLARED_AT = SearchAttributeKey.for_datetime("AfteractionDeclaredAt")
DUE_AT = SearchAttributeKey.for_datetime("AfteractionDueAt")
INCIDENT_KEY = SearchAttributeKey.for_keyword("AfteractionIncidentKey")
FACILITATOR = SearchAttributeKey.for_keyword("AfteractionFacilitator")
RESOLVED_AT = SearchAttributeKey.for_datetime("AfteractionResolvedAt")
ESCALATION_COUNT = SearchAttributeKey.for_int("AfteractionEscalationCount")
# Action items only: where the ticket lives (a routing target) and its key there. The ticket
# reconciler groups open items by target, and a webhook that names only a ticket finds its item.
TRACKER = SearchAttributeKey.for_keyword("AfteractionTracker")
TICKET_KEY = SearchAttributeKey.for_keyword("AfteractionTicketKey")

ALL = (
    SEVERITY,
    STATE,
    SERVICES,
    TEAMS,
    TITLE,
    DECLARED_AT,
    DUE_AT,
    INCIDENT_KEY,
    FACILITATOR,
    RESOLVED_AT,
    ESCALATION_COUNT,
    TRACKER,
    TICKET_KEY,
)

OPEN_ACTION_ITEMS = "WorkflowType = 'ActionItemWorkflow' AND ExecutionStatus = 'Running'"


def quoted(value: str) -> str:
    """`value` as a string literal of a visibility query (backslashes and quotes escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


_CLI_TYPE_NAMES = {
    "KEYWORD": "Keyword",
    "KEYWORD_LIST": "KeywordList",
    "TEXT": "Text",
    "DATETIME": "Datetime",
    "INT": "Int",
    "FLOAT": "Double",
    "BOOL": "Bool",
}


def dev_server_flags() -> list[str]:
    """`temporal server start-dev` arguments that register every attribute above."""
    flags: list[str] = []
    for key in ALL:
        flags += [
            "--search-attribute",
            f"{key.name}={_CLI_TYPE_NAMES[key.indexed_value_type.name]}",
        ]
    return flags
