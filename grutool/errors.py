"""The one exception type for mistakes a user can fix.

Library code raises `UserError` for bad configs, data, paths and arguments; the CLI
prints its message on one line (no traceback) and exits with code 2. Anything
else that escapes is a bug and exits with code 1.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in the user's input: what is wrong, where, and how to fix it.

    `option`: the keyword argument (or config field, such as `output_dir`) of a library function the
    message starts with (``beam: must be at least 1``) or quotes (`` `data` ``), so the CLI can name its
    own option instead (``--beam``, ``--data``); a tuple when the message names several
    (`` pass `overwrite` ... or `output_dir` ``). `options` is always the tuple. A dotted config key
    (``data.targets``) has no option of its own: the CLI prints it as it is.
    """

    exit_code = 2

    def __init__(self, message: str, option: str | tuple[str, ...] | None = None):
        super().__init__(message)
        self.option = option
        self.options: tuple[str, ...] = (option,) if isinstance(option, str) else tuple(option or ())


def clipped(text: str, limit: int = 200, tail: int = 0) -> str:
    """`text` as an error message may quote it: at most `limit` characters, the cut marked with an ellipsis
    (a value read from a file or typed on the command line can be megabytes long); `tail`: characters kept
    from the end (a whole message keeps its fix)."""
    text = str(text)
    if len(text) <= limit:
        return text
    return text[: limit - tail - 1] + "…" + (text[len(text) - tail:] if tail else "")


def listed(counts, limit: int | None = None) -> str:
    """A Counter for a message: 'a' (3), 'b' (1), most common first; ' ...' when `limit` cut it short."""
    shown = ", ".join(f"{k!r} ({v})" for k, v in counts.most_common(limit))
    return shown + (" ..." if limit is not None and len(counts) > limit else "")


def counted(n: int, noun: str) -> str:
    """`1 channel`, `2,077 sentences`: a count with thousands separators and its noun, singular for one (a
    message's `1 channels` or `1 channel(s)` read as a mistake)."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


def counted_plural(n: int, plural: str) -> str:
    """`counted` for a noun given in the plural (a family's `outputs`: classes, tags, targets): `1 class`."""
    return f"{n:,} " + (plural if n != 1 else plural[:-2] if plural.endswith("sses") else plural.removesuffix("s"))


def either(choices) -> str:
    """Alternatives for a message: `a`, `a or b`, `a, b or c`."""
    choices = [str(c) for c in choices]
    return ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else "".join(choices)


def install(extra: str) -> str:
    """How to install an optional extra, as the README says it (grutool is installed from its source folder)."""
    return f"python -m pip install -c constraints.txt -e '.[{extra}]' in grutool's source folder"


class TrainingInterrupted(Exception):
    """Training was stopped by Ctrl-C (or, in one process, SIGTERM or SIGHUP: `signum`) after a resumable
    checkpoint was written."""

    def __init__(self, checkpoint: str, echo: bool = False, saved: bool = True, previous: bool = True,
                 signum: int = 2, progress: str = ""):
        super().__init__(checkpoint)
        self.checkpoint, self.signum = checkpoint, int(signum)  # the exit code is 128 + signum: 130 for Ctrl-C
        # A training's: where it stopped and what best.pt holds (`stopped in epoch 24 of 300; best.pt: ...`)
        self.progress = progress
        self.echo = echo  # distributed, not rank 0: rank 0 says it, this rank exits 130 silently
        # A second Ctrl-C during the save stops it: `checkpoint` is then the previous one, if there is one.
        self.saved, self.previous = saved, previous


class TrainingDiverged(UserError):
    """The loss, the gradients or the weights stopped being finite (see train.nonfinite)."""


class PeerFailure(UserError):
    """Distributed training: another process of the job died or hung, so this one stops too.

    One line without a traceback: the cause is in the other process's output, and the run directory keeps its
    last complete checkpoint. Its own exit code (sysexits' EX_TEMPFAIL, "try again": --resume) tells the
    `--nproc` launcher this rank lost its peers rather than failed itself, so a job in which every failed rank
    lost its peers is one whose other ranks hung (grutool.cli.launch)."""

    exit_code = 75


class WorkerFailed(UserError):
    """`tune --jobs`: a trial's process ended without a result (killed, out of memory, a bug), so the search
    stops: the other trials are stopped as Ctrl-C would (their last.pt saved, `--resume` continues them).

    One line and exit code 1, like an unexpected failure, without this process's traceback: the cause is in the
    trial's process, whose last line of output the message quotes."""

    exit_code = 1
