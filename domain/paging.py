"""A page of a list: its rows, how many match in all, and the cursor of the next page.

Lists never drop rows silently: a list cut at its limit says how many there are and how to get
the rest (`next`, the cursor to pass back; null on the last page).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Generic, TypeVar

from pydantic import BaseModel, Field

T = TypeVar("T")

DEFAULT_PAGE = 100  # rows a list shows unless asked for more
PAGE_LIMIT_MAX = 1000  # rows one page may hold
CURSOR_CHARS = 4_000  # a cursor as given back (Temporal's page tokens are a few hundred bytes)


class Page(BaseModel, Generic[T]):
    items: list[T]
    total: int | None = Field(
        default=None, description="how many rows the filters match in all, when known"
    )
    next: str | None = Field(
        default=None, description="the cursor of the next page (pass it as `cursor`); null: none"
    )

    def showing(self) -> str:
        """E.g. 'showing 100 of 10,000' (or 'showing 100' when the total is not known)."""
        shown = f"showing {len(self.items):,}"
        return shown if self.total is None else f"{shown} of {self.total:,}"


class BadCursor(ValueError):
    """A cursor this list did not give, or one from a list with other filters."""


def _fingerprint(query: str) -> str:
    return hashlib.sha256(query.encode()).hexdigest()[:16]


def cursor_of(token: bytes | None, query: str) -> str | None:
    """The cursor people pass back: the server's page token, and a fingerprint of the list's
    query, so a cursor given to another list (other filters) is refused here, by name."""
    if not token:
        return None
    text = json.dumps({"q": _fingerprint(query), "t": base64.b64encode(token).decode("ascii")})
    return base64.urlsafe_b64encode(text.encode()).decode("ascii").rstrip("=")


def token_of(cursor: str | None, query: str) -> bytes | None:
    """The page token in a cursor of this query's list; BadCursor for any other."""
    if not cursor:
        return None
    if len(cursor) > CURSOR_CHARS:
        raise BadCursor(f"the cursor is over {CURSOR_CHARS:,} characters; {RESTART}")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        fingerprint, token = data["q"], base64.b64decode(data["t"], validate=True)
    except (binascii.Error, UnicodeError, ValueError, KeyError, TypeError):
        raise BadCursor(f"{cursor[:40]!r} is not a cursor this list gave; {RESTART}") from None
    if fingerprint != _fingerprint(query):
        raise BadCursor(f"the cursor belongs to a list with other filters; {RESTART}")
    return bytes(token)


RESTART = "pass the `next` of the page before, or start again without a cursor"
