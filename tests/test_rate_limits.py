"""The shared write budget and the rate-limit gate, on a fake clock (and real threads)."""

from __future__ import annotations

import threading
import time

import pytest

from integrations.rate_limits import RateLimitGate, WriteBudget
from integrations.tracker import TrackerError


class ManualClock:
    """A clock that only moves when slept on (so waiting is instant and exact)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_the_budget_allows_its_calls_then_refuses_with_the_time_until_a_slot_frees() -> None:
    clock = ManualClock()
    budget = WriteBudget(3, window=60, max_wait=5, clock=clock, sleep=clock.sleep)
    for _ in range(3):
        budget.reserve()
        clock.now += 1
    with pytest.raises(TrackerError) as error:
        budget.reserve()
    assert error.value.retryable
    assert error.value.retry_after is not None
    assert error.value.retry_after.total_seconds() == pytest.approx(57)
    assert "3 content-creating calls per 60s" in str(error.value)
    assert budget.in_use() == 3  # the refusal took no slot


def test_a_short_wait_is_spent_in_the_call_instead_of_refusing() -> None:
    clock = ManualClock()
    budget = WriteBudget(2, window=60, max_wait=5, clock=clock, sleep=clock.sleep)
    budget.reserve()
    clock.now += 57
    budget.reserve()
    budget.reserve()  # the first slot frees at +60: a 3 s wait
    assert clock.slept == [pytest.approx(3)]
    assert budget.in_use() == 2


def test_the_window_slides() -> None:
    clock = ManualClock()
    budget = WriteBudget(2, window=60, max_wait=0, clock=clock, sleep=clock.sleep)
    budget.reserve()
    budget.reserve()
    clock.now += 60
    budget.reserve()
    budget.reserve()
    with pytest.raises(TrackerError):
        budget.reserve()


def test_threads_share_one_budget() -> None:
    budget = WriteBudget(20, window=60, max_wait=0)
    granted: list[int] = []
    refused: list[int] = []
    lock = threading.Lock()

    def call(n: int) -> None:
        try:
            budget.reserve()
        except TrackerError:
            with lock:
                refused.append(n)
        else:
            with lock:
                granted.append(n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(granted) == 20 and len(refused) == 30


def test_a_budget_needs_a_slot() -> None:
    with pytest.raises(ValueError):
        WriteBudget(0)


def test_the_gate_refuses_until_the_reset_then_opens() -> None:
    clock = ManualClock()
    gate = RateLimitGate(max_wait=5, clock=clock, sleep=clock.sleep)
    gate.pass_through()  # open
    gate.close_until(clock.now + 120)
    gate.close_until(clock.now + 30)  # an earlier reset does not reopen it sooner
    with pytest.raises(TrackerError) as error:
        gate.pass_through()
    assert error.value.retryable and error.value.retry_after is not None
    assert error.value.retry_after.total_seconds() == pytest.approx(120)
    clock.now += 117
    gate.pass_through()  # 3 s left: waited in the call
    assert clock.slept == [pytest.approx(3)]
    gate.pass_through()
    assert clock.slept == [pytest.approx(3)]


def test_the_gate_uses_wall_clock_epochs_by_default() -> None:
    gate = RateLimitGate()
    gate.close_until(time.time() + 3600)
    with pytest.raises(TrackerError) as error:
        gate.pass_through()
    assert error.value.retry_after is not None
    assert error.value.retry_after.total_seconds() > 3500


def test_a_pause_counts_from_now_and_max_wait_zero_never_sleeps() -> None:
    clock = ManualClock()
    gate = RateLimitGate(max_wait=0.0, clock=clock, sleep=clock.sleep)
    gate.pause(7)
    clock.now += 6.5
    with pytest.raises(TrackerError) as error:
        gate.pass_through()
    assert error.value.retry_after is not None
    assert error.value.retry_after.total_seconds() == pytest.approx(0.5)
    assert clock.slept == []
    clock.now += 0.5
    gate.pass_through()
