"""The CLI's two consoles (stdout, stderr), its logging setup and how user errors reach the terminal.

Every command module imports these from here; `rich` is imported on first use only.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import sys
import warnings

import typer

from grutool.errors import TrainingInterrupted, UserError, clipped

try:  # recent typer carries its own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover
    from click import exceptions as click_errors


class _LazyConsole:
    """A rich Console made on first use, so `--help` never imports rich's console machinery.

    `print` wraps at word boundaries on a terminal (soft wrap left the terminal to break a long line at its
    last column, mid-word), and keeps one line per item into a pipe or file, where scripts and tests read it."""

    def __init__(self, **options):
        self._options = options
        self._console = None

    def __getattr__(self, name):
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
            self._console.on_broken_pipe = self._pipe_closed
        return getattr(self._console, name)

    def _pipe_closed(self) -> None:
        """rich's own answer to a closed pipe is SystemExit(1), grutool's code for a bug: `output_errors` says it."""
        self._console.quiet = True  # nothing more to write there
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))

    def print(self, *objects, **options) -> None:
        from rich.table import Table

        from grutool.cli.render.tables import Whole

        options.setdefault("soft_wrap", not self.is_terminal)
        # A table wider than the terminal keeps every cell whole (`Whole`); its lines are not cut at the edge.
        self._console.print(*(Whole(o) if isinstance(o, Table) else o for o in objects), crop=False, **options)


# emoji=False: rich would turn `:100:` in `file:100:4` (or any `:name:` in a path or value) into an emoji.
err = _LazyConsole(stderr=True, highlight=False, soft_wrap=True, emoji=False)
out = _LazyConsole(highlight=False, soft_wrap=True, emoji=False)


def error(message: str) -> None:
    """`error: message` on stderr, the label red, the message printed literally (no markup, no emoji)."""
    _labelled("error:", "red", message)


WARNING = "warning:"  # the label of every warning grutool prints: `warning()`'s and the logger's (`Wrapping`)
NOTICE = "notice"  # `log.warning(..., extra={NOTICE: True})`: shown even under -q, as a warning is, but not
# labelled one (the compiled kernel's one-time build line: nothing is wrong, it explains a pause)


def warning(message: str) -> None:
    """`warning: message` on stderr, as `error` does."""
    _labelled(WARNING, "yellow", message)


def _labelled(label: str, style: str, message: str) -> None:
    from rich.text import Text

    # A Text is never parsed as markup, so `[bold]` in a file name or `[nope]` in a value prints as typed.
    err.print(Text.assemble((label, style), " ", str(message)))


class Wrapping(logging.Formatter):
    """The grutool logger's records as `%(message)s`, a warning's labelled `warning: ` as `warning()` labels
    the CLI's own (the library logs a warning without the label), yellow where `warning()`'s is: `console`, a
    rich Console on the handler's stream, decides as rich decides for every line grutool prints (a terminal,
    neither NO_COLOR nor TERM=dumb). On a terminal, each line longer than the terminal is wrapped at word
    boundaries (the terminal itself broke a long warning mid-word: `'I-r` / `eturn_date'`). Into a pipe or a
    file a record stays one plain line, as scripts and tests read it."""

    def __init__(self, console):
        super().__init__("%(message)s")
        self.console = console

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        labelled = record.levelno >= logging.WARNING and not getattr(record, NOTICE, False)
        if labelled:
            text = f"{WARNING} {text}"
        try:
            terminal = self.console.is_terminal
        except (AttributeError, ValueError):  # a stream without isatty, or closed
            terminal = False
        if not terminal:
            return text
        import shutil
        import textwrap

        width = shutil.get_terminal_size((80, 24)).columns - 1
        text = "\n".join(textwrap.fill(line, width, break_long_words=False, break_on_hyphens=False)
                         if len(line) > width else line for line in text.split("\n"))
        # coloured after wrapping: the label's escape codes take no room on the line
        return _styled(self.console, WARNING, "yellow") + text[len(WARNING):] if labelled else text


def _styled(console, text: str, style: str) -> str:
    """`text` in `style` as `console` prints it: plain where rich shows no colour there (not a terminal,
    NO_COLOR, TERM=dumb)."""
    if console.color_system is None or console.no_color:
        return text
    from rich.console import COLOR_SYSTEMS
    from rich.style import Style

    return Style.parse(style).render(text, color_system=COLOR_SYSTEMS[console.color_system],
                                     legacy_windows=console.legacy_windows)


def setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("grutool")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(Wrapping(_LazyConsole(file=sys.stderr, highlight=False, emoji=False)))
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False

    shown = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if str(message) not in shown:  # a config read twice (infer: the run's task, then its model) says it once
            shown.add(str(message))
            warning(str(message))

    warnings.showwarning = show


def one_line(message: str, limit: int = 2000) -> str:
    """Whatever a message quotes, one readable line: control characters and line breaks escaped (`\\x1e`),
    at most `limit` characters (the end, with the fix, kept)."""
    message = re.sub(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", lambda m: repr(m.group())[1:-1], message)
    return clipped(message, limit, tail=min(500, limit // 3))


@contextlib.contextmanager
def user_errors():
    """Turn UserError into one line on stderr and exit code 2 (no traceback)."""
    try:
        yield
    except UserError as exc:
        message = one_line(str(exc))
        for option in exc.options:
            if "." in option:
                continue  # a config key (`data.targets`): no flag of that name; the user wrote the key as it reads
            # The library names its keyword argument; here the user typed an option.
            flag = f"--{option.replace('_', '-')}"
            if message.startswith(f"{option}:"):
                message = flag + message[len(option):]
            message = message.replace(f"`{option}`", flag)
        if not getattr(exc, "echo", False):  # an echo: distributed, rank 0's error, which rank 0 prints
            error(message)
        raise typer.Exit(exc.exit_code)
    except TrainingInterrupted as exc:
        # `--overwrite --resume` is refused: a run started with --overwrite continues with --resume instead
        plus = ("with --resume in place of --overwrite" if "--overwrite" in sys.argv else
                "(it has --resume)" if "--resume" in sys.argv else "plus --resume")  # not `--resume --resume`
        if exc.saved:
            said = f"interrupted: saved {exc.checkpoint}; continue with the same command {plus}"
        elif exc.previous:  # it said "plus --resume" here under --overwrite too, which the command then refused
            said = (f"interrupted while saving: {exc.checkpoint} is the previous complete checkpoint; continue "
                    f"from it with the same command {plus}")
        else:
            said = (f"interrupted before the first checkpoint was complete ({exc.checkpoint} not written); "
                    f"the same command starts the run over")
        if not exc.echo:  # an echo: distributed, not rank 0, which says it
            with contextlib.suppress(OSError):  # SIGHUP: the terminal is gone (EIO), the checkpoint is not
                if getattr(exc, "progress", ""):  # a training's: where it stopped, what best.pt holds
                    err.print(exc.progress, markup=False)
                err.print(said, markup=False)
        raise typer.Exit(128 + exc.signum)  # 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP, as a shell reports


def argument_text(text: str) -> str:
    """A text given on the command line as the user typed it. Under an ASCII locale (`LC_ALL=C` with `PYTHONUTF8=0`)
    Python keeps the bytes it cannot decode as lone surrogates (`'Tr\\udcc3\\udca8s'` for `Très`), which the model
    read as other tokens than `--file` and stdin give; bytes that are UTF-8 are read as UTF-8 here, as those are.
    For texts only: a path must stay as the file system names it."""
    if not any("\udc80" <= ch <= "\udcff" for ch in text):
        return text
    try:
        return text.encode(sys.getfilesystemencoding(), "surrogateescape").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text  # not UTF-8 either: left as Python read it


def unicode_output() -> bool:
    """Whether stdout writes every character (UTF-8); not under LANG=en_US.ISO-8859-1, LC_ALL=C with
    PYTHONUTF8=0, PYTHONIOENCODING=ascii or a Windows code page."""
    try:
        return _writes_unicode(sys.stdout)
    except (AttributeError, LookupError, TypeError):  # no stdout, or a stream without an encoding
        return True


def _writes_unicode(stream) -> bool:
    """Whether a text stream's encoding is a UTF one (writes every character)."""
    import codecs

    return codecs.lookup(stream.encoding).name.startswith("utf")


def escape_unwritable() -> None:
    """On streams that cannot write every character, a character they lack is written as an escape (`\\u2014`)
    instead of stopping the command with a UnicodeEncodeError traceback (infer of a text with an em dash
    under a Latin-1 locale); bytes that arrived undecodable (a file name in argv) go out as they came."""
    import codecs

    def escape(exc):
        if not isinstance(exc, UnicodeEncodeError):
            raise exc
        piece = exc.object[exc.start:exc.end]
        if all("\udc80" <= c <= "\udcff" for c in piece):  # surrogateescape's: the original bytes
            return bytes(ord(c) - 0xDC00 for c in piece), exc.end
        return codecs.backslashreplace_errors(exc)

    codecs.register_error("grutool-escape", escape)
    for stream in (sys.stdout, sys.stderr):
        try:
            if not _writes_unicode(stream):
                stream.reconfigure(errors="grutool-escape")
        except (AttributeError, LookupError, TypeError, ValueError):  # closed, or not a text stream of a file
            pass


def hold_closed_stdout() -> None:
    """A command started with its stdout closed (`grutool runs >&-`): Python then sets sys.stdout to None and
    every line printed vanished, with exit 0. /dev/null opened read-only takes descriptor 1, so a write there
    fails with EBADF, as under `1</dev/null`, and `output_errors` says so; it also keeps a file grutool opens
    later (a checkpoint) from becoming descriptor 1, where a stray write to stdout would land in it."""
    if sys.stdout is not None:
        return
    try:
        fd = os.open(os.devnull, os.O_RDONLY)
        if fd != 1:
            os.dup2(fd, 1)
            os.close(fd)
        sys.stdout = open(1, "w", closefd=False)
    except OSError:  # no /dev/null: printing stays silent, as before
        pass


PIPE_CLOSED = 141  # the shell's code for a process a closed pipe stopped (128 + SIGPIPE), as `seq 9 | head -1`'s


@contextlib.contextmanager
def output_errors():
    """The output could not be written: its reader left (`grutool infer ... | head -3`: exit 141, nothing said,
    as a shell tool stopped by SIGPIPE; click said nothing either but exited 1, grutool's code for a bug), its
    disk is full (`> out.txt`: one line, exit 2; it was a traceback), or stdout is closed or open for reading
    only (`>&-`, `1</dev/null`: one line, exit 2, as `ls >&-` says `write error`; it was silent, exit 0).
    Whatever is still buffered is written (flushed) here, inside, so that its failure is said too."""
    try:
        yield
        if sys.stdout is not None:
            sys.stdout.flush()
    except OSError as exc:
        closed = exc.errno == errno.EBADF and _stdout_unwritable()
        if not closed and exc.errno not in (errno.EPIPE, errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
            raise
        _discard_stdout()  # what is still buffered would fail again as the interpreter exits
        if exc.errno == errno.EPIPE:
            raise typer.Exit(PIPE_CLOSED) from None
        if closed:
            error("cannot write the output (stdout is closed, or open for reading only): give the command an "
                  "output to write to, e.g. > out.txt or > /dev/null")
            raise typer.Exit(2) from None
        error(f"{exc.filename}: no space left on the device" if exc.filename else
              "no space left on the device for the output; what was written of it is incomplete")
        raise typer.Exit(2) from None


def _stdout_unwritable() -> bool:
    """Whether descriptor 1 is closed or not open for writing: an EBADF from writing the output, not another
    file's."""
    try:
        import fcntl

        return fcntl.fcntl(1, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY
    except ImportError:  # Windows: an EBADF while writing the output is taken to be stdout's
        return True
    except OSError:  # descriptor 1 closed
        return True


def _discard_stdout() -> None:
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):  # no stdout, or one without a descriptor (a test's)
        pass


@contextlib.contextmanager
def usage_errors(command_path):
    """Turn click's usage errors (bad option values, unknown options, missing arguments) into one line on
    stderr and exit code 2, as `user_errors` does; click would print `Usage:`, `Try ...` and `Error: ...`.

    `command_path()`: the command whose --help the line points to when click does not say which."""
    try:
        yield
    except click_errors.NoArgsIsHelpError:
        raise  # a bare `grutool`: the help text
    except click_errors.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else command_path()
        error(f"{one_line(usage_message(exc), 300)}; see {one_line(path)} --help")
        raise typer.Exit(2) from None


def usage_message(exc) -> str:
    """A click UsageError as `what: wrong`, e.g. `--device: 'gpu' is not one of auto, cpu, cuda`."""
    param = getattr(exc, "param", None)
    if param is not None:
        longest = max(param.opts, key=len) if getattr(param, "opts", None) else None
        name = longest if longest and longest.startswith("-") else (
            getattr(param, "display_name_raw", None) or getattr(param, "human_readable_name", None) or param.name)
    if isinstance(exc, click_errors.MissingParameter) and param is not None:
        return f"{name}: required {'option' if name.startswith('-') else 'argument'} is missing"
    if isinstance(exc, click_errors.NoSuchOption):
        # `infer RUN -0.5,1.2` (or -.5, -inf, -nan): a negative number read as options; -inf is read as `-i`, so
        # the argument itself is looked for too
        name = exc.option_name or ""
        number = re.compile(r"-(\.?\d|inf|nan)", re.IGNORECASE)  # an argument; its option name can be `-.` alone
        if re.match(r"-(\.|\d)", name) or any(number.match(a) and a.startswith(name) for a in sys.argv[1:] if name):
            infer = exc.ctx is not None and exc.ctx.info_name == "infer"
            return (f"{exc.option_name}: no such option; an argument starting with '-' (a negative number) is read "
                    f"as an option: put -- before the arguments"
                    f"{' (e.g. grutool infer RUN -- ' + chr(39) + '-0.5,1.2' + chr(39) + ')' if infer else ''}")
        close = f" (did you mean {' or '.join(sorted(exc.possibilities))}?)" if exc.possibilities else ""
        return f"{exc.option_name}: no such option{close}"
    if isinstance(exc, click_errors.BadOptionUsage):
        text = "needs a value" if "requires an argument" in exc.message else _sentence(exc.message)
        return f"{exc.option_name}: {text}"
    if isinstance(exc, click_errors.BadParameter) and param is not None:
        text = _sentence(re.sub(r"^Value error, ", "", exc.message))
        # A choice list unquoted, as the rest of grutool writes one: `is not one of auto, cpu, cuda`.
        head, sep, choices = text.partition(" is not one of ")
        text = head + sep + re.sub(r"'([^']*)'", r"\1", choices)
        errors = getattr(exc.__cause__, "errors", None)  # typer validates with pydantic: the value typed
        got = errors()[0].get("input") if callable(errors) and errors() else None
        if got == "":
            text += " (got an empty value)"
        elif got is not None and f"'{got}'" not in text:  # a choice error quotes the value already
            shown = got if isinstance(got, str) and got.strip() == got and got else repr(got)
            text += f" (got {clipped(shown, 60)})"
        return f"{name}: {text}"
    # `No such command 'trian'. Did you mean 'train'?` -> `no such command 'trian' (did you mean 'train'?)`
    return re.sub(r"; (did you mean .*\?)$", r" (\1)", _sentence(exc.format_message()))


def _sentence(text: str) -> str:
    """Click's `Input should be ... .` as a clause: lower-case start, no full stop, `. ` as `; `."""
    text = re.sub(r"\. (\w)", lambda m: "; " + m.group(1).lower(), text.strip().rstrip("."))
    return text[:1].lower() + text[1:]
