"""The shape of an incident key, which names its workflow (`incident/<KEY>`) and its items'."""

from __future__ import annotations

import re

# INC-261127-7KQ2; short enough to say on a bridge call, and to stay far below Temporal's
# limit on a workflow id.
INCIDENT_KEY = re.compile(r"^[A-Z][A-Z0-9]*-[A-Z0-9-]{1,40}$")
KEY_EXAMPLE = "INC-261127-7KQ2"


def is_incident_key(text: str) -> bool:
    return INCIDENT_KEY.match(text) is not None


def normal_key(text: str) -> str:
    """An incident key or an action item id as a person may type it (`inc-261127-7kq2`), in the
    form that names its workflow: upper case, without surrounding spaces."""
    return text.strip().upper()
