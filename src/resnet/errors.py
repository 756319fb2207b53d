"""The errors a user sees as one line: bad input (exit code 2) and a run that cannot go on (exit code 1)."""

import difflib
from collections.abc import Iterable


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


def nearest(word: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The `choices` closest to a misspelt `word` (difflib's ratio, case aside), best first, at most `n`;
    a dotted choice (optimizer.lr) also matches by its last part (lr)."""
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    leaf = word.lower().rsplit(".", 1)[-1]
    by_leaf = [c for c in choices if "." in c and c.rsplit(".", 1)[1].lower() == leaf]
    ratios = {c: difflib.SequenceMatcher(None, word.lower(), c).ratio() for c in lowered}
    best = max(ratios.values(), default=0.0)
    # near means at least 0.6 alike (difflib's rule), and as alike as the best match give or take 0.05
    close = sorted((c for c, r in ratios.items() if r >= max(0.6, best - 0.05)), key=ratios.get, reverse=True)
    return list(dict.fromkeys(by_leaf + [lowered[c] for c in close]))[:n]


def did_you_mean(word: str, choices: Iterable[str], where: str, listing: str) -> str:
    """ "did you mean X or Y? (WHERE)" for the `choices` nearest `word`; `listing` when none is near."""
    near = nearest(word, choices)
    return f"did you mean {' or '.join(near)}? ({where})" if near else listing
