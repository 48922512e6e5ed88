"""A child process started as a terminal starts it: with Ctrl-C (SIGINT) not ignored.

A shell runs a background job (``make test &``, ``nohup``) with SIGINT ignored, and
every child inherits that; Python then installs no KeyboardInterrupt handler, so a
test that presses Ctrl-C on a child would wait for a run that can never hear it. What
these tests check is what redpacket does on Ctrl-C at a terminal, so the child gets
the terminal's default back before it starts (``preexec_fn``).
"""

from __future__ import annotations

import signal


def as_at_a_terminal() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
