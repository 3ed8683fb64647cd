"""Data-parallel training over processes: the one module that talks to torch.distributed.

`torchrun --nproc-per-node N -m grutool train CONFIG` starts N copies of `grutool train`; torchrun sets
RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT, and `process_group` joins them (gloo on CPU,
NCCL on CUDA). What the loop does with it:

- rank 0 alone reads and writes the run directory (lock, config, vocabularies, checkpoints, metrics);
  what the others need from it (vocabularies, last.pt) they receive from rank 0 (`share`), so the
  directory need not be on a shared file system;
- an epoch's batches are the same list on every rank (same seed), dealt out by `shard`;
- gradients are averaged by DistributedDataParallel (`wrap`);
- every failure of a collective (a rank that died, or one that hangs past `train.dist_timeout_s`)
  becomes one `PeerFailure`.

With WORLD_SIZE unset (or 1) every helper here is a no-op, and training is the single-process loop.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import torch

from grutool.errors import PeerFailure, UserError

log = logging.getLogger("grutool")


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = Dist()


def from_env() -> Dist:
    """The job torchrun (or any launcher setting its variables) started this process in."""
    env = os.environ
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        return Dist(int(env.get("RANK", "0")), world, int(env.get("LOCAL_RANK", "0")))
    except ValueError:
        raise UserError(f"RANK/WORLD_SIZE/LOCAL_RANK: not integers ({env.get('RANK')}, {env.get('WORLD_SIZE')}, "
                        f"{env.get('LOCAL_RANK')}); start distributed training with torchrun") from None


def device_for(dist: Dist, device: torch.device) -> torch.device:
    """One GPU per process (cuda:LOCAL_RANK); CPU processes share the CPU."""
    if device.type == "cuda" and dist.enabled:
        torch.cuda.set_device(dist.local_rank)
        return torch.device("cuda", dist.local_rank)
    return device


@contextlib.contextmanager
def process_group(dist: Dist, device: torch.device, timeout_s: float):
    """Join the job's process group for a training's duration (nothing to do for a single process).

    `timeout_s` bounds how long a collective waits for a rank that does not answer: a rank that dies
    closes its connections and the others fail at once; one that hangs fails them after `timeout_s`.
    """
    import torch.distributed as td

    if not dist.enabled or td.is_initialized():
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    try:
        td.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    except Exception as exc:  # rendezvous failures: wrong address, a rank that never came
        raise PeerFailure(f"distributed training: could not join the {dist.world_size} processes "
                          f"({_first_line(exc)}); start them with torchrun") from None
    try:
        yield
    finally:
        td.destroy_process_group()


def _first_line(exc: BaseException) -> str:
    """The error's first sentence: gloo's starts with its source file (`[/__w/pytorch/.../pair.cc:553] Connection
    closed by peer [127.0.0.1]:24997.`) and goes on with advice for PyTorch's developers ("GLHF!")."""
    import re

    text = str(exc).strip().splitlines()
    first = re.sub(r"^\[[^\]]*\.(?:cc|cpp|c|h|hpp):\d+\]\s*", "", text[0] if text else "")
    first = re.split(r"(?<=[^.\s])\. (?=[A-Z])", first, maxsplit=1)[0]
    return f"{type(exc).__name__}: {first}"[:300]


@contextlib.contextmanager
def peers(dist: Dist, where: str):
    """Turn a failed collective (inside DDP's backward too) into one PeerFailure naming `where`."""
    if not dist.enabled:
        yield
        return
    try:
        yield
    except (RuntimeError, ValueError, ConnectionError) as exc:
        # A Python-level bug raises on every rank alike and is re-raised as it is; what gloo, NCCL and
        # the c10d store raise when a peer goes away is a RuntimeError (DistBackendError among them).
        text = str(exc)
        if not _is_peer_error(exc, text):
            raise
        raise PeerFailure(f"distributed training: rank {dist.rank} lost its peers during {where} "
                          f"(another process died, was killed or hung past train.dist_timeout_s; "
                          f"{_first_line(exc)}); the run directory keeps its last complete checkpoint: "
                          f"continue with --resume and the same number of processes") from None


_PEER_SIGNS = ("connection", "gloo", "nccl", "timed out", "timeout", "peer", "broken pipe", "socket",
               "distbackend", "c10d")


def _is_peer_error(exc: BaseException, text: str) -> bool:
    import torch.distributed as td

    if isinstance(exc, getattr(td, "DistError", ())) or isinstance(exc, ConnectionError):
        return True
    low = f"{type(exc).__name__} {text}".lower()
    return any(sign in low for sign in _PEER_SIGNS)


def share(dist: Dist, make: Callable[[], Any], part: Optional[Callable[[Any], Any]] = None) -> Any:
    """`make()` on rank 0, its result on every rank; an error of rank 0's raised on every rank.

    So a bad config, data file or run directory stops all ranks with rank 0's message, at once,
    instead of leaving the others to wait for a broadcast until the timeout. With `part`, rank 0 keeps
    make()'s whole result and the others get `part(result)` (what they need of it).
    """
    if not dist.enabled:
        return make()
    import torch.distributed as td

    box: list[Any] = [None]
    error: Optional[BaseException] = None
    result = None
    if dist.is_main:
        try:
            result = make()
            box[0] = ("ok", part(result) if part is not None else result)
        except UserError as exc:
            error = exc
            box[0] = ("user", str(exc), exc.options)
        except BaseException as exc:
            error = exc
            box[0] = ("other", _first_line(exc), ())
    with peers(dist, "start-up"):
        td.broadcast_object_list(box, src=0)
    if error is not None:
        raise error
    if dist.is_main:
        return result
    kind, *rest = box[0]
    if kind == "ok":
        return rest[0]
    if kind == "user":
        error = UserError(rest[0], option=rest[1] or None)
        error.echo = True  # rank 0 says it; this rank stops with the same exit code, silently
        raise error
    raise PeerFailure(f"distributed training: rank 0 failed at start-up ({rest[0]})")


def broadcast(dist: Dist, obj: Any) -> Any:
    """Rank 0's `obj` on every rank."""
    if not dist.enabled:
        return obj
    import torch.distributed as td

    box = [obj]
    with peers(dist, "a broadcast"):
        td.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(dist: Dist, values: Sequence[float], device: torch.device, where: str) -> list[float]:
    """The sum over ranks of each of `values` (float64, so token counts stay exact)."""
    if not dist.enabled:
        return [float(v) for v in values]
    import torch.distributed as td

    t = torch.tensor([float(v) for v in values], dtype=torch.float64,
                     device=device if device.type == "cuda" else "cpu")
    with peers(dist, where):
        td.all_reduce(t)
    return t.tolist()


def all_gather(dist: Dist, obj: Any) -> list[Any]:
    """Every rank's `obj`, by rank."""
    if not dist.enabled:
        return [obj]
    import torch.distributed as td

    out: list[Any] = [None] * dist.world_size
    with peers(dist, "a checkpoint"):
        td.all_gather_object(out, obj)
    return out


def shard(batches: list, dist: Dist) -> list:
    """This rank's batches of an epoch: every world_size-th, cut to the same count on every rank.

    Rank r takes batches r, r + N, r + 2N, ..., so global step k trains batches kN .. kN + N - 1: with
    `train.batching: random` that is exactly the batch of N x batch_size a single process would draw. The
    last len(batches) mod N batches of the (shuffled) list are left out of the epoch, so no rank waits
    for a step the others never take; they are other examples each epoch.
    """
    if not dist.enabled:
        return batches
    usable = len(batches) - len(batches) % dist.world_size
    return batches[dist.rank:usable:dist.world_size]


def shard_streams(batches: list, dist: Dist) -> list:
    """This rank's batches of a stream split (truncated BPTT): every batch, of this rank's rows only.

    A stream batch is chunk k of every row, and each batch continues the previous one row by row, so a
    rank cannot take every N-th batch (its carried state would skip chunks). Rank r takes rows r, r + N,
    ... of each batch, in order: it reads its own streams from start to end and carries their state, and
    a step trains the batch a single process would (train.batch_size rows in all, not N x batch_size).
    """
    if not dist.enabled:
        return batches
    return [batch[dist.rank::dist.world_size] for batch in batches]


def check_shares(dist: Dist, split, batch_size: int) -> None:
    """Every rank needs a share: a stream split a row per rank (see `shard_streams`), any other split a batch
    per rank each epoch (see `shard`: with fewer, no rank would train a step); a UserError otherwise."""
    if not dist.enabled:
        return
    streams = getattr(split, "streams", None)
    if streams is not None:
        if streams < dist.world_size:
            raise UserError(f"train.batch_size: a stream (train.bptt) is read as {streams} parallel row(s), fewer "
                            f"than the {dist.world_size} processes, each of which reads its own rows; raise "
                            f"train.batch_size to at least {dist.world_size} or use fewer processes")
        return
    n = len(split)
    batches = -(-n // batch_size)
    if batches < dist.world_size:
        # The largest batch size that still gives every process a batch: ceil(n / b) >= world size.
        fits = -(-n // (dist.world_size - 1)) - 1
        fix = (f"lower train.batch_size to at most {fits} or use fewer processes" if fits >= 1
               else f"use at most {n} processes")
        raise UserError(f"train.batch_size: the {n} training examples make {batches} batch(es) of {batch_size}, "
                        f"fewer than the {dist.world_size} processes, each of which needs a batch per step; {fix}")


def wrap(model: torch.nn.Module, dist: Dist, device: torch.device) -> torch.nn.Module:
    """The module the training step calls: DistributedDataParallel around `model` when distributed.

    DDP broadcasts rank 0's weights at construction and averages gradients in backward. Every grutool
    model uses all its parameters in each training forward (tests/training/test_distributed.py checks
    each family), so `find_unused_parameters` stays off: it would cost a graph walk per step.
    """
    if not dist.enabled:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    with peers(dist, "start-up"):
        return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=False)


def seed_rank(dist: Dist, seed: int) -> None:
    """After the weights are built (from the same seed everywhere): an RNG stream of its own per rank, for
    dropout; rank 0 keeps the single-process stream."""
    if dist.rank:
        torch.manual_seed((seed * 1_000_003 + dist.rank) % 2**64)  # as torch takes a seed: any train.seed fits
