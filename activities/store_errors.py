"""A store failure as the activity error Temporal retries (or not, when retrying cannot help)."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from store import StoreError


def store_unavailable(error: StoreError, whose: str) -> ApplicationError:
    return ApplicationError(
        f"{whose} database failed: {error}",
        type="StoreUnavailable",
        non_retryable=not error.retryable,
    )
