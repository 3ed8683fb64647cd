"""Checkpoint files: plain state_dicts plus metadata, written atomically, loaded with weights_only=True.

Generic atomic text and JSON writes live in `grutool.atomic` (no torch there).
"""

from __future__ import annotations

from pathlib import Path

import torch

from grutool.atomic import write_atomic
from grutool.errors import UserError


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save `obj` to `path` atomically (grutool.atomic): a crash mid-write leaves the previous file intact."""
    write_atomic(path, lambda f: torch.save(obj, f))


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; train first, or pick another run directory")
    try:
        # weights_only: a checkpoint is data (tensors, numbers, strings), never code.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"{path}: checkpoint is corrupt or truncated ({type(exc).__name__}); "
                        f"restore it or train again") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise UserError(f"{path}: not a grutool checkpoint (no 'model' entry)")
    return obj


def load_weights(model, path: Path, where: str = "config.yaml"):
    """`model` with the checkpoint's weights (model.kernel may differ: parameters are named alike)."""
    ckpt = load_checkpoint(path)
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not fit the model in {where} "
                        f"({str(exc).splitlines()[0]})") from None
    return model
