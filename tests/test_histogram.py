from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from redpacket.stress.histogram import BUCKETS, Histogram


def test_percentiles_are_within_one_bucket() -> None:
    rng = random.Random(3)
    samples = sorted(rng.randint(50_000, 50_000_000) for _ in range(20_000))
    histogram = Histogram()
    for ns in samples:
        histogram.record(ns)
    for fraction in (0.5, 0.95, 0.99):
        exact = samples[int(fraction * len(samples)) - 1] / 1e6
        assert exact <= histogram.percentile_ms(fraction) <= exact * 1.021
    assert histogram.summary_ms()["max"] == round(samples[-1] / 1e6, 3)


def test_memory_does_not_grow_with_samples() -> None:
    histogram = Histogram()
    for ns in range(0, 10_000_000_000, 7_777_777):
        histogram.record(ns)
    assert len(histogram.counts) == BUCKETS


@given(st.lists(st.integers(0, 10**11), min_size=1), st.lists(st.integers(0, 10**11)))
def test_merge_is_the_sum(left: list[int], right: list[int]) -> None:
    a, b, both = Histogram(), Histogram(), Histogram()
    for ns in left:
        a.record(ns)
        both.record(ns)
    for ns in right:
        b.record(ns)
        both.record(ns)
    a.merge(b)
    assert (a.counts, a.total, a.max_ns) == (both.counts, both.total, both.max_ns)
