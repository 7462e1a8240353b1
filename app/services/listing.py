"""One page of a visibility list, with the count of all it matches and the next page's cursor.

The page and the count are asked together. Rows come in the server's order (SQL visibility:
running workflows first, the latest started first), so pages follow one another without gaps
or repeats; each list sorts the rows of a page for people.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecution
from temporalio.service import RPCError, RPCStatusCode

from domain.paging import RESTART, BadCursor, cursor_of, token_of


@dataclass(frozen=True)
class VisibilityPage:
    executions: Sequence[WorkflowExecution]
    total: int
    next: str | None


async def visibility_page(
    client: Client, query: str, *, limit: int, cursor: str | None
) -> VisibilityPage:
    """BadCursor for a cursor this query did not give; RPCError as the server raised it."""
    token = token_of(cursor, query)
    listing = client.list_workflows(query, page_size=limit, next_page_token=token)
    try:
        _, counted = await asyncio.gather(
            listing.fetch_next_page(page_size=limit), client.count_workflows(query)
        )
    except RPCError as error:
        if token is not None and error.status == RPCStatusCode.INVALID_ARGUMENT:
            raise BadCursor(
                f"the cursor does not fit this list ({error.message}); {RESTART}"
            ) from None
        raise
    executions = listing.current_page or []
    # A full page may come with a token that leads to nothing more: the count says.
    more = len(executions) == limit and listing.next_page_token is not None
    return VisibilityPage(
        executions=executions,
        total=counted.count,
        next=cursor_of(listing.next_page_token, query) if more else None,
    )
