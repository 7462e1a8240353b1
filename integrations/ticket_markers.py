"""How a tracker ticket names the action item it belongs to.

The name is the item's idempotency key, its ActionItemWorkflow id
(`incident/INC-261127-7KQ2/action/2`). A ticket carries it twice:

* in its body, as a marker: `<!-- afteraction:key=incident/INC-261127-7KQ2/action/2 -->`. GitHub
  renders HTML comments invisibly; a Jira description may carry the same text, or just
  `afteraction:key=incident/...` (Jira shows HTML comments as text), and `key_from_text` finds
  either form anywhere in the text;
* as a label: `afteraction-key:INC-261127-7KQ2-2`, i.e. `afteraction-key:` followed by the action
  item id (KEY-N). It has no spaces and no slashes, so it is a valid GitHub label and a valid
  Jira label (Jira labels cannot contain spaces). In JQL, quote it:
  `labels = "afteraction-key:INC-261127-7KQ2-2"`. GitHub limits label names to 50 characters,
  which keys of the generated form (INC-YYMMDD-XXXX) stay far below; `label_for` refuses a key
  whose label would be longer.

Labels survive a body rewritten by hand; the marker survives labels removed by hand. Either
one is enough to route a tracker's webhook to the item's workflow.

Comments afteraction writes (reminders, escalations) end with a comment marker
`<!-- afteraction:comment=<idempotency key> -->`, so a retry finds and skips them, and the webhook
that reports them is routed as `activity=False`: not someone working on the item, so it does not
reset the stall clock. Labels afteraction adds (`escalated:<rung>`, `due:YYYY-MM-DD`,
`afteraction...`) are routed the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from domain.action_item import action_workflow_id

MARKER_PREFIX = "afteraction:key="
COMMENT_MARKER_PREFIX = "afteraction:comment="
OWN_LABEL_PREFIXES = ("afteraction", "escalated:", "escalated-", "due:")
LABEL_PREFIX = "afteraction-key:"
GITHUB_LABEL_LIMIT = 50

_INCIDENT_KEY = r"[A-Z][A-Z0-9]*-[A-Z0-9-]{1,40}"  # domain.commands.INCIDENT_KEY
_WORKFLOW_ID = re.compile(rf"^incident/(?P<key>{_INCIDENT_KEY})/action/(?P<number>[1-9][0-9]*)$")
# A key inside text ends where no more key characters follow (so "…/action/2" in "…/action/23"
# is not mistaken for item 2).
_IN_TEXT = re.compile(
    rf"{re.escape(MARKER_PREFIX)}(?P<id>incident/{_INCIDENT_KEY}/action/[1-9][0-9]*)(?![0-9])"
)
_LABEL = re.compile(
    rf"^{re.escape(LABEL_PREFIX)}(?P<key>{_INCIDENT_KEY})-(?P<number>[1-9][0-9]*)$",
    re.IGNORECASE,
)


def _parts(key: str) -> tuple[str, int]:
    match = _WORKFLOW_ID.match(key)
    if match is None:
        raise ValueError(
            f"{key!r} is not an action item's idempotency key; expected "
            "incident/KEY/action/N, e.g. incident/INC-261127-7KQ2/action/2"
        )
    return match["key"], int(match["number"])


def marker(key: str) -> str:
    """The hidden marker to write into a ticket's body (ValueError for a malformed key)."""
    _parts(key)
    return f"<!-- {MARKER_PREFIX}{key} -->"


def key_from_text(body: str | None) -> str | None:
    """The idempotency key of the first marker in a ticket's body or description, if any."""
    if not body:
        return None
    match = _IN_TEXT.search(body)
    return match["id"] if match else None


def label_for(key: str) -> str:
    """The label naming the item: `afteraction-key:KEY-N` (ValueError for a malformed key, or
    one whose label would pass GitHub's 50-character limit)."""
    incident_key, number = _parts(key)
    label = f"{LABEL_PREFIX}{incident_key}-{number}"
    if len(label) > GITHUB_LABEL_LIMIT:
        raise ValueError(
            f"the label {label!r} is longer than GitHub's {GITHUB_LABEL_LIMIT} characters; "
            "the ticket can carry its key in the body marker only"
        )
    return label


def key_from_labels(labels: Iterable[str]) -> str | None:
    """The idempotency key named by the first `afteraction-key:` label, if any. GitHub treats
    label names case-insensitively, so the prefix is matched that way; the key is upper case."""
    for label in labels:
        match = _LABEL.match(label.strip())
        if match is not None:
            incident_key = match["key"].upper()
            number = int(match["number"])
            # "KEY-N": the number is the last dash-separated part; the key keeps its own dashes.
            return action_workflow_id(incident_key, number)
    return None


def comment_marker(idempotency_key: str) -> str:
    """The hidden marker that ends every comment afteraction writes (so a retry skips it)."""
    return f"<!-- {COMMENT_MARKER_PREFIX}{idempotency_key} -->"


def is_own_comment(text: str | None) -> bool:
    """Whether afteraction wrote this comment (it carries a comment marker)."""
    return bool(text) and COMMENT_MARKER_PREFIX in (text or "")


def is_own_label(name: str) -> bool:
    """Whether afteraction adds labels of this name (escalations, due dates, its own)."""
    return name.strip().lower().startswith(OWN_LABEL_PREFIXES)
