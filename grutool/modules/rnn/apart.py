"""The compiled kernel's build in a process group of its own, so that stopping grutool stops its compiler too.

torch's `cpp_extension.load` runs ninja, and ninja the compiler, as children of the calling process. A terminal's
Ctrl-C reaches them all (they share its process group), but a signal sent to grutool alone (`timeout`, `kill`, a
CI runner's or a supervisor's SIGTERM or SIGINT) stopped grutool and left ninja and `cc1plus` compiling, and the
next process built beside them in the same folder. Here (POSIX) the compile runs in a child Python process that
leads a new process group: grutool waits for it, and when SIGINT (KeyboardInterrupt) or SIGTERM stops the wait
it stops the whole group, then goes on as the signal asks. On Linux the child is also told to stop when grutool
dies without a word (SIGKILL), and takes its group with it.

`run` is the parent's side; `CHILD` the child's program, which loads with the same function and arguments as the
parent (`compiled._load`), so the build file it writes is the one the parent's load finds up to date.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

# The child, before anything slow (torch's import): a SIGTERM goes on to its whole group, and so to ninja, which
# passes it to the compiler (ninja runs each command in a process group of its own: killing ninja outright would
# leave the compiler running); it is sent when the parent dies (Linux: PR_SET_PDEATHSIG, 1), and at once if the
# parent is already gone.
CHILD = """\
import os, signal, sys
def _stop(*_):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    os._exit(143)
signal.signal(signal.SIGTERM, _stop)
if sys.platform.startswith("linux"):
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
if os.getppid() != int(sys.argv[4]):
    _stop()
from pathlib import Path
from grutool.modules.rnn import compiled
try:
    compiled._load(Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]))
except Exception as e:  # whole, on stderr: the parent reads the compiler's first error line from it
    sys.stderr.write(str(e) or type(e).__name__)
    sys.exit(1)
"""


class _Terminated(BaseException):
    """SIGTERM arrived while the parent waited for the build (not an Exception: nothing may swallow it)."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises `_Terminated` inside the block (main thread only: elsewhere Python cannot set a handler)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Terminated()

    before = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def _stop_group(proc: subprocess.Popen) -> None:
    """The child's process group stopped: SIGTERM, which ninja passes on to the compiler; SIGKILL after 10 s."""
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, None)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass  # already gone
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run(directory: Path, name: str, source: Path, load: Callable[[Path, str, Path], object]) -> None:
    """Build the extension into `directory` in a child process group; raises RuntimeError with the child's error
    text when the build fails. Where process groups do not exist (not POSIX), `load` builds it here instead."""
    if os.name != "posix":
        load(directory, name, source)
        return
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[3])  # the folder holding `grutool`, wherever it is imported from
    env["PYTHONPATH"] = os.pathsep.join([root, env["PYTHONPATH"]]) if env.get("PYTHONPATH") else root
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), name, str(source), str(os.getpid())],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env, start_new_session=True)
    try:
        with _sigterm_raises():
            _, said = proc.communicate()
    except _Terminated:
        _stop_group(proc)
        signal.raise_signal(signal.SIGTERM)  # the handler from before now: by default, the process ends here
        raise RuntimeError("stopped by SIGTERM") from None  # a handler that returned: the build did not happen
    except BaseException:  # KeyboardInterrupt (SIGINT), SystemExit from a handler: the compiler goes too
        _stop_group(proc)
        raise
    if proc.returncode != 0:
        raise RuntimeError(said.strip() or f"the compiling process exited with {proc.returncode}")
