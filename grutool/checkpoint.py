"""Checkpoint files: plain state_dicts plus metadata, written atomically, loaded with weights_only=True.

The one place that knows what a run's checkpoints hold:

    best.pt   {"model": weights (EMA's average when train.ema_decay), "meta"}
    last.pt   {"model", "optimizer", "schedule", "scaler", "ema" (or None), "rng", "carry", "meta"}
              rng:   {"torch": CPU generator state, "cuda": [per device] (with CUDA),
                      "ranks": [each rank's own {"torch", "cuda"}] (distributed)}
              carry: the recurrent state carried into the next batch (None, a tensor or a tuple/list of
                     them; distributed with a stream split: {"ranks": [each rank's]})
    meta      {"state": the TrainState as a dict, "monitor", "task", "world_size"}

`save_best`/`save_last` write them, `restore_last` puts a last.pt back into a training's objects.
Generic atomic text and JSON writes live in `grutool.atomic` (no torch there). Non-finite weights are
never written nor loaded (a diverged model is not a checkpoint), and weights that do not fit a model are reported
by parameter name, with the run file that sized it.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Callable, Mapping, Optional

import torch

from grutool.atomic import write_atomic
from grutool.errors import TrainingDiverged, UserError


def nonfinite(state: Mapping) -> list[str]:
    """Names of the floating-point tensors in `state` holding NaN or infinity."""
    return [k for k, v in state.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def save_atomic(obj: dict, path: Path) -> None:
    """torch.save `obj` to `path` atomically (grutool.atomic): a crash mid-write leaves the previous file intact.

    Serialised in memory first, so a full disk is an OSError of the write (reported with the size needed),
    not an error deep inside torch's zip writer. Refuses (TrainingDiverged) when obj["model"] is not finite.
    """
    path = Path(path)
    bad = nonfinite(obj.get("model") or {})
    if bad:
        raise TrainingDiverged(f"{path}: not saved, the weights are not finite ({', '.join(bad[:3])}"
                               f"{' ...' if len(bad) > 3 else ''}); training diverged: lower train.lr "
                               f"or set train.clip_grad_norm")
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    data = buffer.getbuffer()
    write_atomic(path, lambda f: f.write(data), size=len(data))


def save_best(path: Path, weights: Mapping, meta: dict) -> None:
    """best.pt: the weights validated (EMA's average when there is one) and the run's position."""
    save_atomic({"model": weights, "meta": meta}, path)


def rng_states() -> dict:
    """This process's generator states as last.pt keeps them (one rank's entry when distributed)."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def save_last(path: Path, *, model, optimizer, schedule, scaler, ema, rng: dict, carry, meta: dict) -> None:
    """last.pt: everything a --resume needs to continue as if never stopped (see the module docstring)."""
    save_atomic({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "schedule": schedule.state_dict(), "scaler": scaler.state_dict(),
                 "ema": ema.state_dict() if ema else None,
                 "rng": rng, "carry": carry, "meta": meta}, path)


def restore_last(ckpt: dict, path: Path, sizes: Mapping[str, int], *, model, optimizer, schedule, scaler, ema,
                 state_class: Callable, rank: Optional[int] = None) -> tuple:
    """Load last.pt (`ckpt`, read from `path`) into a training's objects and set the RNG; returns
    (`state_class(**saved position)`, the carried state as saved, on the CPU). `rank`: this process's entry
    in a distributed run's per-rank lists. A UserError if the file does not fit this run."""
    load_weights(model, ckpt["model"], path, sizes)
    try:
        optimizer.load_state_dict(ckpt["optimizer"])
        schedule.load_state_dict(ckpt["schedule"])
        scaler.load_state_dict(ckpt["scaler"])
        if ema is not None and ckpt.get("ema"):
            ema.load_state_dict(ckpt["ema"])
        state = state_class(**ckpt["meta"]["state"])
        rng = ckpt["rng"]["ranks"][rank] if rank is not None else ckpt["rng"]
        torch.set_rng_state(rng["torch"])
        carry = ckpt.get("carry")
        if rank is not None and isinstance(carry, dict):  # each rank's own streams' state
            carry = carry["ranks"][rank]
        carry = tuple(carry) if isinstance(carry, list) else carry
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: training state does not fit this run ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'incomplete'}); restore last.pt as "
                        f"training wrote it, or start over with `overwrite`", option="overwrite") from None
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return state, carry


def load_checkpoint(path: Path) -> dict:
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a checkpoint file")
    if not path.is_file():
        raise UserError(f"{path}: checkpoint not found; train first, or pick another run directory")
    try:
        open(path, "rb").close()
    except OSError as exc:  # zipfile.is_zipfile says False for a file it cannot open: "corrupt", wrongly
        raise UserError(f"{path}: cannot read the checkpoint ({exc.strerror or exc}); check its permissions, "
                        f"or copy the run somewhere you can read") from None
    if not zipfile.is_zipfile(path):  # torch.save's format (all grutool writes) is a zip archive
        raise UserError(f"{path}: checkpoint is corrupt or truncated (not a torch.save archive); "
                        f"restore it or train again")
    try:
        # weights_only: a checkpoint is data (tensors, numbers, strings), never code.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Weights only load failed" in str(exc):
            raise UserError(f"{path}: refused: the file holds pickled code or objects, not plain weights "
                            f"(grutool never writes such files); train again, or load it only if you trust "
                            f"its origin") from None
        raise UserError(f"{path}: checkpoint is corrupt or truncated (UnpicklingError); "
                        f"restore it or train again") from None
    except Exception as exc:
        raise UserError(f"{path}: checkpoint is corrupt or truncated ({type(exc).__name__}); "
                        f"restore it or train again") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise UserError(f"{path}: not a grutool checkpoint (no 'model' entry); restore it or train again")
    state = obj["model"]
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise UserError(f"{path}: not a grutool checkpoint (its 'model' entry is a {type(state).__name__}, "
                        f"not named tensors); restore it or train again")
    bad = nonfinite(state)
    if bad:  # grutool never saves such weights: the file was damaged or edited, and would predict nonsense
        raise UserError(f"{path}: the weights are not finite (NaN or infinity in {', '.join(bad[:3])}"
                        f"{' ...' if len(bad) > 3 else ''}); the file is damaged: restore it or train again")
    return obj


def load_weights(model: torch.nn.Module, state: dict, path: Path, sizes: Mapping[str, int]) -> None:
    """`model.load_state_dict(state)`, or a UserError naming the first parameter that does not fit.

    `sizes`: the run files that size the model and their lengths ({"labels.json": 3, ...}); a mismatched
    dimension equal to one of them is blamed on that file, anything else on config.yaml.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if not (missing or unexpected or wrong):
        model.load_state_dict(state)
        return
    more = len(missing) + len(unexpected) + len(wrong) - 1
    more = f" (and {more} more)" if more else ""
    if wrong:
        k = wrong[0]
        theirs, ours = tuple(state[k].shape), tuple(own[k].shape)
        blamed = [name for name, n in sizes.items()
                  if n in ours and n not in theirs]
        cause = (f"{blamed[0]} has {sizes[blamed[0]]} entries, the checkpoint was trained with another count"
                 if blamed else "config.yaml describes another model")
        what = f"parameter {k} has shape {list(theirs)} in the checkpoint but {list(ours)} in the model"
    elif missing:
        what, cause = f"parameter {missing[0]} is missing from the checkpoint", "config.yaml describes another model"
    else:
        what, cause = (f"the checkpoint has parameter {unexpected[0]}, which the model lacks",
                       "config.yaml describes another model")
    raise UserError(f"{path}: weights do not fit the run's model: {what}{more}; {cause}; "
                    f"restore the run's files as training wrote them, or train again")


def load_run_weights(model: torch.nn.Module, path: Path, sizes: Optional[Mapping[str, int]] = None):
    """`model` with the weights of the checkpoint at `path` (model.kernel may differ from training's:
    every kernel names its parameters alike); a UserError as `load_weights` when they do not fit."""
    load_weights(model, load_checkpoint(path)["model"], path, sizes or {})
    return model
