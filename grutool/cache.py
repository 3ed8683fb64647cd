"""Where grutool keeps what it builds on demand (the compiled kernel's builds, `ext/`): the one place that
picks that folder."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """`$GRUTOOL_CACHE`, else `$XDG_CACHE_HOME/grutool`, else `~/.cache/grutool`. A relative XDG_CACHE_HOME is
    ignored, as the XDG Base Directory specification says; an empty variable counts as unset."""
    if os.environ.get("GRUTOOL_CACHE"):
        return Path(os.environ["GRUTOOL_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "grutool"
    return Path.home() / ".cache" / "grutool"
