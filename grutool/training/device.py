"""Which torch device a run uses: the one place that reads `train.device` / `--device` names."""

from __future__ import annotations

import torch

from grutool.errors import UserError, clipped

DEVICES = ("auto", "cpu", "cuda")
"""The device names a run, `--device` and the library's `device` arguments take (train.device's schema too)."""


def resolve_device(name: str, field: str = "train.device") -> torch.device:
    """`auto` (CUDA when present, else CPU), `cpu` or `cuda`; asking for CUDA without it is a user error
    naming `field` (`device` for a library call's argument, which the CLI shows as --device), and so is any
    other name (`gpu`: torch's own error listed its every device type). A library call may name one GPU,
    `cuda:N`, as torch does."""
    base, _, index = name.partition(":") if isinstance(name, str) else (None, "", "")
    if base not in DEVICES or (":" in name and not (base == "cuda" and index.isdigit())):
        raise UserError(f"{field}: {clipped(repr(name), 40)} is not one of {', '.join(DEVICES)}"
                        f"{' (or cuda:N, one GPU)' if '.' not in field else ''}",
                        option=field if "." not in field else ())
    if base == "cuda" and index and torch.cuda.is_available() and int(index) >= torch.cuda.device_count():
        raise UserError(f"{field}: {name!r}, but this machine has {torch.cuda.device_count()} CUDA device(s), "
                        f"numbered from 0", option=field if "." not in field else ())
    if base == "cuda" and not torch.cuda.is_available():
        why = (f"this torch {torch.__version__} is a CPU-only build" if torch.version.cuda is None
               else "no CUDA device is visible")
        raise UserError(f"{field}: {name!r} requested but CUDA is not available ({why}); use cpu or auto",
                        option=field if "." not in field else ())
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
