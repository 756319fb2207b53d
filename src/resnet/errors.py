"""The one error type for bad input: the command line prints it as one line and exits with 2."""


class UsageError(ValueError):
    """Bad input from the user (a name, an option, a file): the message names the culprit."""
