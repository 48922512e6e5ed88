"""Errors that carry a message meant for the person at the terminal.

The CLI turns a ``LabError`` into one line on stderr and exit status 2; anything
else is a bug in the lab and may show a traceback.
"""


class LabError(Exception):
    """A problem the user can fix: bad input, an unreachable server, a missing extra."""

    exit_status = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
