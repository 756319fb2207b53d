"""The errors a user sees as one line: bad input (exit code 2) and a run that cannot go on (exit code 1)."""


class UsageError(ValueError):
    """Bad input from the user (a name, an option, a file): the message names the culprit."""


class RunError(RuntimeError):
    """A run that cannot go on (a non-finite loss, a full disk): the message says where and what is kept."""
