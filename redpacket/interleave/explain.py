"""Why a scheduled run ended the way it did, composed only from the run's own events.

Every sentence rests on events of the run — which statement fixed a session's
snapshot, whom it waited for and what released it, what its check returned, what
the server said — and cites them by position (``#n``), so each can be held to the
timeline (the tests do, for every strategy, level and schedule). Steps are read
by their role (read, lock, check, claim, insert, bump); their names are only
quoted, never interpreted, so a user's strategy is explained as precisely as a
built-in one. What differs between engines (where a snapshot is fixed, who
refuses what) comes from the engine and from the events' read kinds.
"""

from __future__ import annotations

from redpacket.interleave.timeline import Run, Verdict
from redpacket.interleave.why.answers import loser
from redpacket.interleave.why.duplicates import duplicate
from redpacket.interleave.why.story import Explanation, Sentence, Story, attempts_words
from redpacket.retry import LOST_RACE, is_retryable
from redpacket.strategies import Outcome
from redpacket.vocabulary import refusal

__all__ = ["Explanation", "Sentence", "explain"]


def explain(run: Run) -> Explanation:
    if run.verdict is Verdict.STUCK:
        return Explanation((Sentence(f"The schedule could make no progress: {run.stuck}."),))
    story = Story(run)
    granted = [s.session for s in run.sessions if s.outcome is Outcome.GRANTED]
    sentences: list[Sentence] = []
    if run.verdict is Verdict.DUPLICATE:
        sentences += duplicate(story, granted)
    elif len(granted) == 1:
        for summary in run.sessions:
            if summary.session != granted[0]:
                sentences += loser(story, granted[0], summary.session)
    else:
        for summary in run.sessions:
            sentences += loser(story, 0, summary.session)
    for summary in run.sessions:
        if summary.outcome is Outcome.FAILED and summary.reason:
            hint = " Run with --retries to retry it." if (
                not run.retries and is_retryable(summary.reason)
            ) else ""  # fmt: skip
            what = (
                "lost the race"
                if summary.reason == LOST_RACE
                else f"was refused ({refusal(summary.reason)})"
            )
            sentences.append(
                Sentence(
                    f"T{summary.session}'s grant {what} after {attempts_words(summary.attempts)};"
                    f" nothing was written for it.{hint}"
                )
            )
    return Explanation(tuple(sentences), "; ".join(dict.fromkeys(story.causes)))
