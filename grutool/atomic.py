"""Atomic file writes without torch: a temporary file in the target's directory, fsync, then rename.

A crash mid-write leaves the previous file intact: rename is atomic on POSIX and Windows when source
and target are on one filesystem. `grutool.checkpoint` writes tensors through `write_atomic`; text,
JSON, vocabularies and bench reports use `write_text_atomic` / `write_json_atomic`.

A full disk is a user's problem, not a bug: it becomes a `UserError` naming the device and the space
needed. A killed process can leave a temporary file (`.NAME.*.tmp`); the next owner of the directory
removes it with `remove_temporaries`.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, NoReturn, Optional, Sequence

from grutool import jsonsafe
from grutool.errors import UserError

NO_SPACE = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write: Callable[[BinaryIO], None], size: Optional[int] = None) -> None:
    """Call `write(f)` on a temporary binary file beside `path`, fsync it, then rename it over `path`.

    `size`: the bytes `write` will write, if known, for the message when the disk is full.
    """
    path = Path(path)
    tmp = write_temporary(path, write, size)
    try:
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        _reraise(exc, path, size)


def write_temporary(path: Path, write: Callable[[BinaryIO], None], size: Optional[int] = None) -> Path:
    """`write_atomic` up to the rename: the fsynced temporary file beside `path`, for a caller that checks
    it (or writes others) before renaming it over `path` itself. Removed again if anything fails."""
    path = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        return Path(tmp)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        _reraise(exc, path, size)


def _reraise(exc: BaseException, path: Path, size: Optional[int]) -> NoReturn:
    """A full disk or a folder refusing the write as one UserError naming `path`; anything else as it was."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        raise no_space(path, size) from None
    if isinstance(exc, OSError) and exc.errno in NOT_WRITABLE:
        raise not_writable(path, exc) from None
    raise exc


# A folder that passed check_output_path can still refuse the write (ACLs, a read-only mount, a file made
# read-only since): one line naming it, not an OSError traceback.
NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


def not_writable(path: Path, exc: OSError) -> UserError:
    return UserError(f"{path}: cannot write it ({exc.strerror.lower() if exc.strerror else exc}); "
                     f"choose a writable folder or fix its permissions")


def no_space(path: Path, size: Optional[int]) -> UserError:
    """The one-line error for a full disk (or quota) while writing `path`."""
    path = Path(path)
    mount = mount_point(path.parent)
    needed = f"needed ~{max(size / 1e6, 0.1):.1f} MB" if size is not None else "needed: more"
    try:
        free = f", {os.statvfs(mount).f_bavail * os.statvfs(mount).f_frsize / 1e6:.1f} MB free"
    except (OSError, AttributeError):
        free = ""
    return UserError(f"{path}: no space left on {device_of(mount)} ({needed}{free}); the previous "
                     f"{path.name}, if any, is kept: free some space or write elsewhere")


def mount_point(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return path


def device_of(mount: Path) -> str:
    """`/dev/sda1 (mounted at /data)` from /proc/self/mounts where it can be read; else the mount point."""
    try:
        for line in Path("/proc/self/mounts").read_text().splitlines():
            source, target = line.split()[:2]
            if target == str(mount):
                return f"{source} (mounted at {mount})"
    except OSError:
        pass
    return str(mount)


def write_text_atomic(text: str, path: Path) -> None:
    """`path` holds exactly `text` (UTF-8) or, after a crash, whatever it held before."""
    data = text.encode("utf-8")
    write_atomic(path, lambda f: f.write(data), size=len(data))


def write_json_atomic(obj, path: Path, **dumps_kwargs) -> None:
    """`obj` as strict JSON (grutool.jsonsafe: NaN and infinities as null) written with `write_text_atomic`."""
    write_text_atomic(jsonsafe.dumps(obj, **dumps_kwargs), path)


def remove_temporaries(directory: Path) -> list[Path]:
    """Delete the `.NAME.*.tmp` files `write_atomic` leaves when killed mid-write; returns them.

    Only the directory's owner may call this (a training holding the run's lock): another writer's
    temporary file would otherwise vanish under it.
    """
    removed = []
    for p in Path(directory).glob(".*.tmp"):
        if p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def make_folder(path: Path, option: str, keyword: Optional[str] = None) -> None:
    """Create the folder `path` (and its parents) for the output `option` names (`--output-dir`, or `` `output_dir` ``
    with `keyword` for a library call). A folder that the checks before passed but the system still refuses (a
    virtual or read-only file system such as /proc, a parent removed meanwhile, a full disk) is one UserError
    naming it, not an OSError traceback."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise no_space(Path(path) / ".", None) from None
        why = exc.strerror.lower() if exc.strerror else str(exc)
        raise UserError(f"{path}: cannot create the folder ({why}); choose another {option}", option=keyword) from None


def check_output_path(path: Path, option: str) -> None:
    """Refuse, before any work, an output file whose folder is missing, is a file, or is read-only."""
    path = Path(path)
    parent = path.parent
    if path.is_dir():
        raise UserError(f"{option} {path}: is a directory; give a file name")
    for above in (parent, *parent.parents):
        if above.exists() and not above.is_dir():
            raise UserError(f"{option} {path}: {above} is a file, not a folder; choose another path")
        if above.exists():
            break
    if not parent.is_dir():
        raise UserError(f"{option} {path}: folder {parent} does not exist; create it first (mkdir -p {parent})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{option} {path}: folder {parent} is not writable; choose another path")


def check_output_folder(path: Path, option: str, own: Sequence[str] = (), what: str = "") -> None:
    """Refuse, before any work, an output folder that is a file, lies under a file, or cannot be written; with
    `own` (the files that mark a `what`, e.g. a study's plan.json), also a folder that holds other things but
    none of them: a folder of the user's, whose files (a report.md of theirs) grutool would overwrite."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{option} {path}: is a file, not a folder; choose another folder")
    if own and path.is_dir() and not any((path / name).is_file() for name in own) and any(path.iterdir()):
        raise UserError(f"{option} {path}: is not empty and is not a {what} (no {own[0]}); grutool writes a {what} "
                        f"only into a new or empty folder or a {what} of its own, so it leaves this one alone: "
                        f"choose another folder")
    for above in (path, *path.parents):
        if not above.exists():
            continue
        if not above.is_dir():
            raise UserError(f"{option} {path}: {above} is a file, so no folder can be made under it; "
                            f"choose another folder")
        if not os.access(above, os.W_OK | os.X_OK):
            raise UserError(f"{option} {path}: {above} is not writable; choose another folder")
        break
