from __future__ import annotations

import pytest

from redpacket.errors import LabError
from redpacket.interleave.schedule import BEGIN, END, SCHEDULE_NAMES, Entry, parse_schedule


def test_named_schedules_exist() -> None:
    assert set(SCHEDULE_NAMES) >= {
        "serial", "t2-first-read", "t1-first-read", "t2-begins-first", "t2-waits"
    }  # fmt: skip


def test_named_schedules_fit_a_one_step_strategy() -> None:
    # t2-waits lets T1 run two steps; a strategy of one step runs that one
    short, long = parse_schedule("t2-waits", steps=1), parse_schedule("t2-waits", steps=4)
    assert short.entries == (Entry(1, 1), Entry(2, END), Entry(1, END))
    assert long.entries == (Entry(1, 2), Entry(2, END), Entry(1, END))


def test_explicit_schedules_are_not_fitted() -> None:
    with pytest.raises(LabError, match="names a step the strategy does not have"):
        parse_schedule("T1:2,T2:end,T1:end", steps=1)


def test_t2_first_read_is_the_seed_bug_order() -> None:
    schedule = parse_schedule("t2-first-read", steps=4)
    assert schedule.entries == (Entry(1, 1), Entry(2, 1), Entry(1, END), Entry(2, END))
    assert schedule.sessions == 2


def test_explicit_schedule_with_begin_and_commit() -> None:
    schedule = parse_schedule("T2:begin, T1:2, T1:commit, t2", steps=3)
    assert schedule.entries == (Entry(2, BEGIN), Entry(1, 2), Entry(1, 4), Entry(2, END))
    assert [str(e) for e in schedule.entries] == ["T2:begin", "T1:2", "T1:4", "T2:end"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("T1:5,T2:end", "names a step the strategy does not have"),
        ("T1:1,T3:end", "schedule never runs T2"),
        ("T1:x", "give a step number, begin, commit or end"),
        ("X1:1", "unknown schedule"),
        ("T1:1;T2:1", "bad schedule entry"),
        ("T0:1", "numbered from T1"),
        ("", "empty schedule"),
        ("random", "unknown schedule 'random'"),
    ],
)
def test_bad_schedules_are_refused(text: str, message: str) -> None:
    with pytest.raises(LabError, match=message):
        parse_schedule(text, steps=4)
