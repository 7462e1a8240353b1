"""Staying inside a tracker's rate limits, for every thread of the worker at once.

* `WriteBudget`: at most N content-creating calls in any sliding minute. GitHub's secondary
  limit is about 80 per minute per token; one budget per token is shared by every activity in
  the worker, so a burst of tickets is spread out instead of being refused by GitHub.
* `RateLimitGate`: after the tracker said "rate limited until T" (Retry-After, or a reset time
  with no requests remaining), no call is made before T; the caller gets a retryable
  `TrackerError` whose `retry_after` is the time left, which the ticket activities hand to
  Temporal as the next retry's delay.

Both wait in the calling thread when the wait is short (`max_wait`): an activity attempt has a
20 s start-to-close timeout, so a longer wait is handed back to Temporal instead.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from integrations.tracker import TrackerError

Clock = Callable[[], float]
Sleep = Callable[[float], None]

# GitHub: "no more than 80 content-generating requests per minute" (secondary rate limits).
GITHUB_WRITES_PER_MINUTE = 80
# Longest wait spent inside an activity attempt; longer ones become a Temporal retry delay.
MAX_WAIT_IN_ATTEMPT = 5.0


class WriteBudget:
    """A sliding-window budget: `reserve()` takes a slot, waiting or refusing when none is free."""

    def __init__(
        self,
        per_minute: int = GITHUB_WRITES_PER_MINUTE,
        *,
        window: float = 60.0,
        max_wait: float = MAX_WAIT_IN_ATTEMPT,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        what: str = "tracker",
    ) -> None:
        if per_minute < 1:
            raise ValueError("a write budget needs at least one call per window")
        self.per_minute = per_minute
        self.window = window
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._what = what
        self._taken: deque[float] = deque()
        self._lock = threading.Lock()

    def reserve(self) -> None:
        """Take a slot now, or after a short wait; a long wait raises a retryable TrackerError."""
        while True:
            wait = self._try_take()
            if wait == 0.0:
                return
            if wait > self.max_wait:
                raise TrackerError(
                    f"{self._what} write budget spent ({self.per_minute} content-creating calls "
                    f"per {self.window:.0f}s); the next slot frees in {wait:.0f}s, will retry then",
                    retryable=True,
                    retry_after=timedelta(seconds=wait),
                )
            self._sleep(wait)

    def in_use(self) -> int:
        """Slots taken in the current window."""
        with self._lock:
            self._forget_old(self._clock())
            return len(self._taken)

    def _try_take(self) -> float:
        """0.0 when a slot was taken, else the seconds until the oldest one frees."""
        with self._lock:
            now = self._clock()
            self._forget_old(now)
            if len(self._taken) < self.per_minute:
                self._taken.append(now)
                return 0.0
            return max(self._taken[0] + self.window - now, 0.001)

    def _forget_old(self, now: float) -> None:
        while self._taken and self._taken[0] <= now - self.window:
            self._taken.popleft()


class RateLimitGate:
    """Closed until a tracker's rate limit resets; shared by every thread using one token."""

    def __init__(
        self,
        *,
        max_wait: float = MAX_WAIT_IN_ATTEMPT,
        clock: Clock = time.time,
        sleep: Sleep = time.sleep,
        what: str = "tracker",
    ) -> None:
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._what = what
        self._closed_until = 0.0
        self._lock = threading.Lock()

    @property
    def closed_until(self) -> float:
        """The time on the gate's clock before which no call is made (0 when open)."""
        with self._lock:
            return self._closed_until

    def close_until(self, moment: float) -> None:
        """Stay closed until then, on the gate's clock (a later time wins; an earlier one
        changes nothing)."""
        with self._lock:
            self._closed_until = max(self._closed_until, moment)

    def pause(self, seconds: float) -> None:
        """Stay closed for `seconds` from now (a tracker's Retry-After)."""
        self.close_until(self._clock() + seconds)

    def pass_through(self) -> None:
        """Return when calls are allowed, waiting a short while; else a retryable TrackerError."""
        wait = self.closed_until - self._clock()
        if wait <= 0:
            return
        if wait > self.max_wait:
            raise TrackerError(
                f"{self._what} rate limit in force for {wait:.0f}s more; no call is made before "
                "it resets, will retry then",
                retryable=True,
                retry_after=timedelta(seconds=wait),
            )
        self._sleep(wait)
