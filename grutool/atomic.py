"""Atomic file writes without torch: a temporary file in the target's directory, fsync, then rename.

A crash mid-write leaves the previous file intact: rename is atomic on POSIX and Windows when source
and target are on one filesystem. `grutool.checkpoint` writes tensors through `write_atomic`; text,
JSON, vocabularies and bench reports use `write_text_atomic` / `write_json_atomic`.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Call `write(f)` on a temporary binary file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp creates 0600 files; give the result the permissions a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(text: str, path: Path) -> None:
    """`path` holds exactly `text` (UTF-8) or, after a crash, whatever it held before."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def write_json_atomic(obj, path: Path, **dumps_kwargs) -> None:
    """`json.dumps(obj, **dumps_kwargs)` written with `write_text_atomic`."""
    write_text_atomic(json.dumps(obj, **dumps_kwargs), path)
