from __future__ import annotations

import random

import pytest

from redpacket.errors import LabError
from redpacket.retry import RetryPolicy


@pytest.mark.parametrize(
    ("reason", "retried"),
    [
        ("40001", True),
        ("40P01", True),
        ("lost_race", True),
        ("08006", True),
        ("23505", False),
        ("23503", False),
        ("unknown_order", False),
        ("57014", False),
        (None, False),
    ],
)
def test_only_concurrency_failures_are_retried(reason: str | None, retried: bool) -> None:
    assert RetryPolicy(3).should_retry(reason, 1) is retried


def test_retries_stay_within_the_bound() -> None:
    policy = RetryPolicy(2)
    assert [policy.should_retry("40001", attempt) for attempt in (1, 2, 3, 4)] == [
        True,
        True,
        False,
        False,
    ]
    assert not RetryPolicy(0).should_retry("40001", 1)


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(10, base_delay_s=0.001, max_delay_s=0.01)
    rng = random.Random(7)
    delays = [policy.delay_s(attempt, rng) for attempt in range(1, 11) for _ in range(20)]
    assert all(0 <= d <= 0.01 for d in delays)
    assert len(set(delays)) > 100


def test_negative_retries_are_refused() -> None:
    with pytest.raises(LabError, match="--retries must be 0 or more"):
        RetryPolicy(-1)
