"""Which torch device a run uses: the one place that reads `train.device` / `--device` names."""

from __future__ import annotations

import torch

from grutool.errors import UserError


def resolve_device(name: str) -> torch.device:
    """`auto` (CUDA when present, else CPU), `cpu` or `cuda`; asking for CUDA without it is a user error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device: 'cuda' requested but CUDA is not available; use cpu or auto")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
