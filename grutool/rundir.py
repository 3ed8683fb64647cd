"""The run directory: everything `train` leaves for `eval`, `infer` and `--resume`.

    <run>/config.yaml     fully resolved config (rebuilds data pipeline and model)
    <run>/vocab.json      token vocabulary
    <run>/labels.json     label vocabulary (tags for the tagger and joint tasks)
    <run>/target_vocab.json  target token vocabulary (seq2seq, instead of labels.json)
    <run>/intents.json    intent vocabulary (joint task only)
    <run>/chars.json      character vocabulary (model.char_features only)
    <run>/conditions.json condition labels (lm with data.condition_column only)
    <run>/best.pt         best model weights by the monitored metric (+ metadata)
    <run>/last.pt         latest weights + optimizer/scheduler/RNG state for --resume
    <run>/metrics.jsonl   one JSON object per epoch
    <run>/summary.json    final figures
    <run>/tensorboard/    TensorBoard event files (train.tensorboard: true only)
    <run>/model*.onnx|pt  exports written to their default place (grutool export), with their .json
    <run>/.grutool-run    the marker: written first, it alone makes a folder a run directory; records the
                          folder train ran in, where config.yaml's relative data paths start
    <run>/.lock           held by the one training that owns the directory (removed when it ends)

A folder is a run directory only when it holds the marker (or, written by grutool before the marker
existed, config.yaml + vocab.json + a checkpoint). Replacing or restarting a run removes only the files
above, one by one: whatever else a user keeps in the folder stays, and a folder that is not a run
(a user's project holding its own config.yaml, say) is never written into.

One owner per run directory: a training holds an OS lock on `<run>/.lock` for its whole life
(`RunLock`); the kernel releases it on any exit, kill -9 included, so a stale file never blocks.
"""

from __future__ import annotations

import datetime
import errno
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from grutool import jsonsafe
from grutool.atomic import remove_temporaries, write_text_atomic
from grutool.config import Config
from grutool.config_file import beside_config, parse_config, read_yaml
from grutool.data.vocab import LabelVocab, Vocab
from grutool.errors import UserError
from grutool.families import get_task
from grutool.families.base import vocabulary

CONFIG, VOCAB, LABELS = "config.yaml", "vocab.json", "labels.json"
TARGET_VOCAB = "target_vocab.json"
INTENTS, CHARS, CONDITIONS = "intents.json", "chars.json", "conditions.json"
BEST, LAST, METRICS, SUMMARY = "best.pt", "last.pt", "metrics.jsonl", "summary.json"
LOCK, MARKER, TENSORBOARD = ".lock", ".grutool-run", "tensorboard"
# Every file name training writes into a run directory: the only files a restart or --overwrite removes.
WRITTEN = (CONFIG, VOCAB, LABELS, TARGET_VOCAB, INTENTS, CHARS, CONDITIONS, BEST, LAST, METRICS, SUMMARY, MARKER)
EXPORT_SUFFIXES = (".onnx", ".pt", ".json", ".data")  # model[.int8][.decoder].onnx / .pt and their metadata

log = logging.getLogger("grutool")

# portalocker (already installed with sacrebleu) is a thin layer over the OS lock of an open file:
# `fcntl.flock` on POSIX, as before, and `msvcrt.locking` on Windows, which had no lock at all. It locks
# a descriptor we open ourselves, so the file is never truncated by a process that is refused (the
# holder's line stays readable), the inode-race check below still applies, and the kernel drops the lock
# on any exit, kill -9 included. filelock was the alternative: it opens, keeps and never removes the file
# itself, leaving no place for the holder's line without reaching into its internals. Imported where a
# lock is taken or probed (~40 ms of importlib.metadata that `grutool --help` need not pay).


class RunLock:
    """An exclusive, non-blocking OS lock on `<run>/.lock` for the life of a training.

    The file records who holds it (pid, start time, command) for the message a second process gets.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: Optional[int] = None

    def acquire(self) -> "RunLock":
        import portalocker

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                portalocker.lock(fd, portalocker.LOCK_EX | portalocker.LOCK_NB)
            except portalocker.LockException:  # AlreadyLocked is one
                holder = _holder(fd)
                os.close(fd)
                raise UserError(f"{self.path.parent}: run directory is in use by {holder}; wait for it to "
                                f"finish or stop it, or choose another `output_dir`", option="output_dir") from None
            # The holder before us may have unlinked the file between our open and our lock: then
            # we locked a file nobody else will ever see, so start again on the current one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(fd, 0)
        # Windows locks byte 0 only for others, so write it from the start: the holder's line is what
        # others read (POSIX) or cannot read while it is locked (Windows: "another process").
        os.lseek(fd, 0, os.SEEK_SET)
        # Under `train --nproc`, rank 0 holds the lock for the launcher the user started: name that one's pid,
        # the process to stop (stopping rank 0 alone leaves the launcher to end the others).
        launcher = os.environ.get("GRUTOOL_LAUNCHER_PID")  # grutool.cli.launch.LAUNCHER_PID
        who = f"pid {launcher} (train --nproc; its rank 0 is pid {os.getpid()})" if launcher else f"pid {os.getpid()}"
        os.write(fd, f"{who} since {since}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            try:
                self.path.unlink(missing_ok=True)  # while still locked: nobody can take the old file
            except PermissionError:  # Windows: an open file cannot be removed; it is reused, still locked
                pass
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _holder(fd: int) -> str:
    """The `pid N since TIME` line of the lock's holder (Windows keeps a locked byte unreadable)."""
    try:
        return os.read(fd, 200).decode("utf-8", "replace").strip() or "another process"
    except OSError:
        return "another process"


def is_locked(run_dir: Path) -> bool:
    """Whether a training holds `<run>/.lock` now (probed with a shared lock, so it never blocks the owner)."""
    import portalocker

    lock = Path(run_dir) / LOCK
    if not lock.is_file():
        return False
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return False
    try:
        portalocker.lock(fd, portalocker.LOCK_SH | portalocker.LOCK_NB)
    except portalocker.AlreadyLocked:
        return True
    except portalocker.LockException as e:  # portalocker < 3 says a held lock so on POSIX, wrapping EAGAIN
        cause = e.args[0] if e.args else None
        return isinstance(cause, OSError) and cause.errno in (errno.EAGAIN, errno.EACCES)
    except ImportError:  # Windows without pywin32 has no shared lock: unknown, not claimed as running
        return False
    finally:
        os.close(fd)
    return False


def check_location(path: Path) -> None:
    """Refuse a run directory that is a file, lies under one, or cannot be written, before any work is done. A
    symbolic link to a folder not made yet is checked at its target, where the run will be made."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        target = Path(os.path.realpath(path))
        if target.is_symlink():
            raise UserError(f"{path}: a symbolic link that never reaches a folder (a loop of links); fix the link "
                            f"or choose another `output_dir`", option="output_dir")
        path = target
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: is a file, not a run directory; choose another `output_dir`", option="output_dir")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):  # a read-only folder or mount
        raise UserError(f"{path}: the folder is not writable; choose another `output_dir` or fix its permissions",
                        option="output_dir")
    for above in path.parents:
        if above.exists():
            if not above.is_dir():
                raise UserError(f"{path}: {above} is a file, so no directory can be made under it; "
                                f"choose another `output_dir`", option="output_dir")
            if not os.access(above, os.W_OK | os.X_OK):
                raise UserError(f"{path}: cannot create it, {above} is not writable; choose another `output_dir`",
                                option="output_dir")
            break


def has_checkpoint(path: Path) -> bool:
    return (Path(path) / LAST).is_file() or (Path(path) / BEST).is_file()


def is_run(path: Path) -> bool:
    """A folder grutool made for a run: its marker, or (runs of earlier versions) config + vocab + weights."""
    path = Path(path)
    if (path / MARKER).is_file():
        return True
    return (path / CONFIG).is_file() and (path / VOCAB).is_file() and has_checkpoint(path)


def is_run_config(path: Path) -> bool:
    """Whether a config file is a run's own config.yaml (`train RUN/config.yaml --resume`): what grutool wrote,
    read as `open_run` reads it (`load_config(..., saved=True)`)."""
    path = Path(path)
    return path.name == CONFIG and is_run(path.parent)


def cut_epoch(summary: dict) -> Optional[tuple[int, int]]:
    """(batches trained, batches in it) of a run's last epoch when train.max_steps cut it short (summary.json's
    `last_epoch_steps` and `steps_per_epoch`), else None: the one reading of those fields (`train`'s done line,
    the resume check, `grutool runs`)."""
    trained, batches = summary.get("last_epoch_steps"), summary.get("steps_per_epoch")
    if isinstance(trained, int) and isinstance(batches, int) and trained < batches:
        return trained, batches
    return None


def is_partial(path: Path) -> bool:
    """A run killed before its first complete checkpoint: marked as grutool's, no last.pt to continue from
    (a kill during the first last.pt write can leave best.pt alone: that too starts over)."""
    path = Path(path)
    return path.is_dir() and (path / MARKER).is_file() and not (path / LAST).is_file()


def contents(path: Path) -> list[Path]:
    """What a run directory holds, less its lock and the temporary files of interrupted writes."""
    if not path.is_dir():
        return []
    return [p for p in path.iterdir() if p.name != LOCK and not (p.name.startswith(".") and p.name.endswith(".tmp"))]


def written_files(path: Path) -> list[Path]:
    """The files in run directory `path` that grutool wrote (WRITTEN, default exports, TensorBoard events);
    the marker last, so a removal cut short leaves a folder still recognised as a run."""
    path = Path(path)
    found = [path / name for name in WRITTEN if name != MARKER and (path / name).is_file()]
    found += [p for p in sorted(path.glob("model*")) if p.is_file() and p.suffix in EXPORT_SUFFIXES]
    found += [p for p in sorted(path.glob(".model*.tmp*")) if p.is_file()]  # an interrupted export's leftovers
    if (path / TENSORBOARD).is_dir():
        found += [p for p in sorted((path / TENSORBOARD).glob("events.out.tfevents.*")) if p.is_file()]
    if (path / MARKER).is_file():
        found.append(path / MARKER)
    return found


def check_new(path: Path, overwrite: bool) -> bool:
    """Whether a new run may use `path` (True: it holds a run to replace); UserError if it may not."""
    check_location(path)
    if not contents(path):
        return False
    if not is_run(path):
        # A user's folder (a project holding its own config.yaml, notes, .git): never written into.
        raise UserError(f"{path}: exists, is not empty and is not a grutool run directory (no {MARKER}); "
                        f"grutool writes a run only into a new or empty folder or a run of its own, so it "
                        f"leaves this one alone: choose another `output_dir` (e.g. runs/NAME)", option="output_dir")
    if not (overwrite or is_partial(path)):
        if is_locked(path):  # a training writes it now: `overwrite` would be refused too; the lock names it
            RunLock(path).acquire().release()
        raise UserError(f"{path}: run directory exists and is not empty; pass `overwrite` to replace it, "
                        f"`resume` to continue it, or `output_dir` to choose another",
                        option=("overwrite", "resume", "output_dir"))
    return True


def prepare_new(path: Path, overwrite: bool) -> None:
    """A run directory holding only its marker (its lock and any files of the user's kept); refuse to touch
    an existing run unless asked.

    A run killed before its first checkpoint holds nothing to continue or lose: it starts over by itself.
    Only the files grutool wrote are removed, one by one (`written_files`).
    """
    if check_new(path, overwrite):
        if is_partial(path) and not overwrite:
            log.warning("%s: an earlier run stopped before its first checkpoint; starting over", path)
        for p in written_files(path):
            p.unlink(missing_ok=True)
        if (path / TENSORBOARD).is_dir() and not any((path / TENSORBOARD).iterdir()):
            (path / TENSORBOARD).rmdir()
    path.mkdir(parents=True, exist_ok=True)
    remove_temporaries(path)
    from grutool.version import __version__

    since = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    record = {"grutool": __version__, "created": since}
    try:  # where the run's relative data paths start (read_from_run); a working directory removed has none
        record["folder"] = os.getcwd()
    except OSError:
        pass
    write_text_atomic(jsonsafe.dumps(record) + "\n", path / MARKER)


def started_in(path: Path) -> Optional[Path]:
    """The folder `train` ran in when it made run `path` (its marker's `folder`, absolute); None for a run made
    before grutool recorded it, or whose marker cannot be read."""
    try:
        record = json.loads((Path(path) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    folder = record.get("folder") if isinstance(record, dict) else None
    return Path(folder) if isinstance(folder, str) and os.path.isabs(folder) else None


def read_from_run(cfg: Config, path: Path) -> Config:
    """`cfg` with run `path`'s relative data paths read from the folder `train` ran in (config.yaml keeps them as
    the user gave them, relative to that folder), each one found there; from that folder itself, or for a run
    that recorded none or whose folder is gone (a copy on another machine), as written: from the working
    directory. The one place a run's data paths are resolved: eval, infer, export and --resume read through it."""
    folder = started_in(path)
    if folder is None or not folder.is_dir():
        return cfg
    return beside_config(cfg, folder, first=True)


@dataclass
class SavedRun:
    path: Path
    config: Config  # config.yaml, its relative data paths read from the folder train ran in (`read_from_run`)
    vocab: Vocab
    labels: Optional[LabelVocab | Vocab] = None  # seq2seq: the target Vocab; lm: none (it predicts `vocab`)
    extra: dict[str, Vocab | LabelVocab] = field(default_factory=dict)
    """The family's own vocabularies by the names its `Task.vocabularies` gives (chars, intents, ...)."""

    def vocabulary(self, name: str):
        """`vocab`, `labels` or one of `extra` by its `Task.vocabularies` name; None when absent."""
        return vocabulary(self, name)


def save_vocabularies(path: Path, prepared, cfg: Config) -> None:
    """vocab.json and the vocabularies the task names (grutool.families.base.Task.vocabularies)."""
    prepared.vocab.save(path / VOCAB)
    for name, (filename, _) in get_task(cfg.task).vocabularies(cfg).items():
        prepared.vocabulary(name).save(path / filename)


def open_run(path: str | Path) -> SavedRun:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: is a file, not a run directory; give the directory `grutool train` wrote")
    if not path.is_dir():
        raise UserError(f"{path}: run directory not found; train one with `grutool train CONFIG`")
    for name in (CONFIG, VOCAB):
        if not (path / name).is_file():
            raise UserError(f"{path}: not a complete run directory (missing {name})")
    raw, lines = read_yaml(path / CONFIG, "run config")
    cfg = parse_config(raw, str(path / CONFIG), lines=lines, saved=True)
    files = {"vocab": (VOCAB, Vocab), **get_task(cfg.task).vocabularies(cfg)}
    for filename, _ in files.values():
        if not (path / filename).is_file():
            raise UserError(f"{path}: not a complete run directory (missing {filename})")
    try:
        vocabs = {name: kind.load(path / filename) for name, (filename, kind) in files.items()}
    except ValueError as exc:
        raise UserError(f"{exc}; restore the file as training wrote it, or train again") from None
    vocab, labels = vocabs.pop("vocab"), vocabs.pop("labels", None)
    return SavedRun(path, read_from_run(cfg, path), vocab, labels, extra=vocabs)


def sizes(run, cfg: Config) -> dict[str, int]:
    """Each vocabulary file of a run (SavedRun or Prepared) and its length: what sizes the model's layers."""
    names = {"vocab": VOCAB, **{name: filename for name, (filename, _) in get_task(cfg.task).vocabularies(cfg).items()}}
    return {filename: len(run.vocabulary(name)) for name, filename in names.items()
            if run.vocabulary(name) is not None}


def run_task(path: str | Path):
    """The task of a saved run (what renders its results)."""
    return get_task(open_run(path).config.task)
