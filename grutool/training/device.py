"""Which torch device a run uses: the one place that reads `train.device` / `--device` names."""

from __future__ import annotations

import torch

from grutool.errors import UserError, clipped

DEVICES = ("auto", "cpu", "cuda")
"""The device names a run, `--device` and the library's `device` arguments take (train.device's schema too)."""


def resolve_device(name: str, field: str = "train.device") -> torch.device:
    """`auto` (CUDA when present, else CPU), `cpu` or `cuda`; asking for CUDA without it is a user error
    naming `field` (`device` for a library call's argument, which the CLI shows as --device), and so is any
    other name (`gpu`, `cuda:1`: torch's own error listed its every device type)."""
    if not isinstance(name, str) or name not in DEVICES:
        raise UserError(f"{field}: {clipped(repr(name), 40)} is not one of {', '.join(DEVICES)}",
                        option=field if "." not in field else ())
    if name == "cuda" and not torch.cuda.is_available():
        why = (f"this torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None
               else "no CUDA device is visible")
        raise UserError(f"{field}: 'cuda' requested but CUDA is not available ({why}); use cpu or auto",
                        option=field if "." not in field else ())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
