"""The errors a user sees as one line: bad input (exit code 2) and a run that cannot go on (exit code 1)."""


class UsageError(ValueError):
    """Bad input from the user (a name, an option, a file): the message names the culprit."""


class RunError(RuntimeError):
    """A run that cannot go on (a non-finite loss, a full disk): the message says where and what is kept."""


class Stopped(Exception):
    """A run that stopped on request (a signal, its time limit) after writing the checkpoint it resumes
    from. `code` is the exit code that tells a scheduler so: 128 + the signal number, as a shell
    reports a process killed by it, or 75 (EX_TEMPFAIL, "try again") for the time limit."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def write_failed(path, error: Exception, kept: str) -> RunError:
    """The one-line error for a failed write of `path`; `kept` says what is intact. A full disk is named
    as such, also when the writer reports it only as a RuntimeError (torch's zip writer, OpenVINO)."""
    import errno
    import shutil
    from pathlib import Path

    folder = Path(path).parent
    usage = shutil.disk_usage(folder) if folder.is_dir() else None
    if getattr(error, "errno", None) == errno.ENOSPC or (usage and usage.free < max(2**20, usage.total / 1000)):
        return RunError(f"{path}: disk full while writing; {kept}")
    reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
    return RunError(f"{path}: cannot write it ({reason}); {kept}")
