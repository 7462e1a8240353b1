"""Custom search attributes: lists, the dashboard and the digest are visibility queries on them.

`start-dev --search-attribute` and the test servers register exactly this set. The dev
server's SQLite visibility allows at most three Datetime attributes, hence no mitigated time.
"""

from temporalio.common import SearchAttributeKey

SEVERITY = SearchAttributeKey.for_keyword("AfteractionSeverity")
STATE = SearchAttributeKey.for_keyword("AfteractionState")
SERVICES = SearchAttributeKey.for_keyword_list("AfteractionServices")
TEAMS = SearchAttributeKey.for_keyword_list("AfteractionTeams")
TITLE = SearchAttributeKey.for_text("AfteractionTitle")
DECLARED_AT = SearchAttributeKey.for_datetime("AfteractionDeclaredAt")
ACKNOWLEDGED_AT = SearchAttributeKey.for_datetime("AfteractionAcknowledgedAt")
RESOLVED_AT = SearchAttributeKey.for_datetime("AfteractionResolvedAt")
ESCALATION_COUNT = SearchAttributeKey.for_int("AfteractionEscalationCount")

ALL = (
    SEVERITY,
    STATE,
    SERVICES,
    TEAMS,
    TITLE,
    DECLARED_AT,
    ACKNOWLEDGED_AT,
    RESOLVED_AT,
    ESCALATION_COUNT,
)

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
