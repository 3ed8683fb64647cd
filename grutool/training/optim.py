"""Optimizer and learning-rate schedule from the `train` section."""

from __future__ import annotations

import math
from typing import Optional

import torch

from grutool.config import MINIMIZED_METRICS, TrainConfig


def build_optimizer(params, t: TrainConfig, sparse=()) -> torch.optim.Optimizer:
    """The configured optimizer; Adam and AdamW use PyTorch's fused kernel where it exists.

    The fused kernel updates each parameter in one pass instead of a dozen elementwise ops:
    for a 1M-parameter text classifier on CPU, 0.3 ms per step instead of 4.8 ms (torch
    2.13), the largest single cost of a small model's step. The update rule is the same
    (equal up to float rounding). Torch builds or devices without it (CPU before torch 2.4)
    get the default implementation.

    `sparse`: parameters whose gradients are sparse (train.lazy_embeddings: the token embedding, built with
    `sparse=True`); they get Adam's lazy update (`LazyAdam`), the others the optimizer above.
    """
    params = [p for p in params if p.requires_grad]
    sparse = [p for p in sparse if p.requires_grad]
    if sparse:
        ids = {id(p) for p in sparse}
        return LazyAdam([p for p in params if id(p) not in ids], sparse, t)
    if t.optimizer in ("adam", "adamw"):
        cls = torch.optim.Adam if t.optimizer == "adam" else torch.optim.AdamW
        try:
            return cls(params, lr=t.lr, weight_decay=t.weight_decay, fused=True)
        except (RuntimeError, TypeError):  # unsupported device or dtype, or a torch without `fused`
            return cls(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)


def _closure_loss(closure):
    """What torch's optimizer protocol asks of `step(closure)`: the loss the closure recomputes (with
    gradients on), or None without one."""
    if closure is None:
        return None
    with torch.enable_grad():
        return closure()


class RowAdam(torch.optim.Optimizer):
    """Adam for parameters whose gradients are sparse in their rows (a token embedding built with `sparse=True`),
    touching only the rows in the batch, along dense Adam's path.

    With a zero gradient, dense Adam still moves a row: its first moment m decays by beta1 a step and the weight
    follows m / sqrt(v). Torch's SparseAdam (TensorFlow's LazyAdam) drops those moves, so a word seen once moves
    by one step where Adam moves it by up to 1 / (1 - beta1 / sqrt(beta2)) ~ 10; on SST-2 that cost 0.6 points
    of test accuracy (five seeds; docs/benchmarks.md). Here each row keeps the step it was last updated at and that step's
    learning rate, and when it is next in a batch (or at `flush`, each epoch's end) the k zero-gradient steps it
    missed are applied at once: m and v decay exactly (beta1^k, beta2^k), and the weight moves by the sum of
    those steps' updates, lr * m / sqrt(v) * sum_j q^j sqrt(bc2_j) / bc1_j (j = 1..k, q = beta1 / sqrt(beta2),
    bc_j the bias corrections of the j-th missed step), with the learning rate of the row's last update held
    over the missed steps and eps's term taken at their first: an approximation only there, and small, since
    the sum is carried by the ~20 steps after that update (q^20 = 0.12). The step's own update is Adam's.
    """

    def __init__(self, params, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})
        self._tables: dict = {}  # (betas, device) -> per-step bias corrections, grown as steps come

    def _state(self, p: torch.Tensor) -> dict:
        st = self.state[p]
        if not st:
            st["step"] = 0
            st["exp_avg"] = torch.zeros_like(p)
            st["exp_avg_sq"] = torch.zeros_like(p)
            st["last"] = torch.zeros(p.shape[0], dtype=torch.long, device=p.device)  # each row's last update (0: none)
            # and its learning rate, in the weights' dtype: what a checkpoint gives back (load casts it so)
            st["last_lr"] = torch.zeros(p.shape[0], dtype=p.dtype, device=p.device)
        return st

    # Missed steps whose bias corrections are summed one by one (they change fast in a run's first steps);
    # the rest of the geometric sum holds those of the last of them (q^32 = 0.035 of the first term is left).
    EXACT_STEPS = 32

    def _table(self, betas: tuple[float, float], steps: int, device: torch.device) -> tuple:
        """For steps 0 .. n >= steps + 1 (step 0 as step 1), float64: sqrt(bc2) / bc1 and sqrt(bc2); and j = 1..J
        with q^j, the weights of the first J missed steps. Grown as steps come."""
        key = (tuple(betas), str(device))
        table = self._tables.get(key)
        if table is None or table[0].shape[0] <= steps:
            beta1, beta2 = betas
            n = torch.arange(max(2 * steps, 1024), dtype=torch.float64, device=device).clamp_min(1)
            root = torch.sqrt(1 - torch.pow(beta2, n))
            j = torch.arange(1, self.EXACT_STEPS + 1, device=device)  # (J,)
            qj = torch.pow(beta1 / math.sqrt(beta2), j.to(torch.float64))  # (J,)
            table = self._tables[key] = (root / (1 - torch.pow(beta1, n)), root, j, qj)
        return table

    def _missed(self, group: dict, m: torch.Tensor, v: torch.Tensor, last: torch.Tensor, lr: torch.Tensor,
                upto: int) -> torch.Tensor:
        """Rows' m and v (R, E), last updated at steps `last` (R,) with learning rates `lr` (R,), decayed in place
        over the zero-gradient steps up to step `upto`; returns the weight change (R, E) those steps make."""
        beta1, beta2 = group["betas"]
        q, J = beta1 / math.sqrt(beta2), self.EXACT_STEPS
        bias, root, j, qj = self._table(group["betas"], upto + J + 1, m.device)
        k = upto - last  # (R,) steps missed
        missed = last.unsqueeze(1) + j  # (R, J) the first J missed steps (some beyond `upto`: masked)
        weights = qj * (j <= k.unsqueeze(1))  # (R, J): q^j where j <= k
        total = (weights * bias.index_select(0, missed.flatten()).view_as(missed)).sum(1)  # (R,)
        rest = (k - J).clamp_min(0).to(torch.float64)  # (R,) steps beyond those, at the J-th one's corrections
        total += q ** J * q * (1 - torch.pow(q, rest)) / (1 - q) * bias.index_select(0, last + J)
        eps = (group["eps"] * root.index_select(0, last + 1)).to(v.dtype).unsqueeze(1)  # eps's scale, held
        change = m / (v.sqrt() + eps) * (-(lr.to(torch.float64) * total)).to(m.dtype).unsqueeze(1)  # (R, E)
        kf = k.to(torch.float64).unsqueeze(1)
        m.mul_(torch.pow(beta1, kf).to(m.dtype))  # where a row was never updated, m is 0 and stays 0
        v.mul_(torch.pow(beta2, kf).to(v.dtype))
        return change

    @torch.no_grad()
    def step(self, closure=None):
        loss = _closure_loss(closure)
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self._state(p)
                st["step"] += 1
                t = st["step"]
                grad = p.grad.coalesce()
                rows, g = grad.indices()[0], grad.values()  # (R,), (R, E)
                m, v = st["exp_avg"].index_select(0, rows), st["exp_avg_sq"].index_select(0, rows)  # (R, E) copies
                change = self._missed(group, m, v, st["last"].index_select(0, rows),
                                      st["last_lr"].index_select(0, rows), t - 1)
                m.lerp_(g, 1 - beta1)
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                bc1, bc2 = 1 - beta1 ** t, 1 - beta2 ** t
                denom = (v.sqrt() / math.sqrt(bc2)).add_(group["eps"])
                change.addcdiv_(m, denom, value=-group["lr"] / bc1)
                p.index_add_(0, rows, change)
                st["exp_avg"].index_copy_(0, rows, m)
                st["exp_avg_sq"].index_copy_(0, rows, v)
                st["last"].index_fill_(0, rows, t)
                st["last_lr"].index_fill_(0, rows, float(group["lr"]))
        return loss

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every row up to date, as dense Adam would have it now: at each epoch's end, before validation
        and checkpoints. A row caught up keeps its last update's learning rate for the steps still ahead of it."""
        for group in self.param_groups:
            for p in group["params"]:
                st = self.state.get(p)
                if not st:
                    continue
                p.add_(self._missed(group, st["exp_avg"], st["exp_avg_sq"], st["last"], st["last_lr"], st["step"]))
                st["last"].fill_(st["step"])

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        for st in self.state.values():  # torch casts every state tensor but `step` to the weights' dtype
            if "last" in st:
                st["last"] = st["last"].to(torch.long)


class LazyAdam(torch.optim.Optimizer):
    """Adam with the dense parameters on `build_optimizer`'s Adam (fused) and the sparse ones (train.lazy_embeddings:
    the token embedding) on `RowAdam`, as one optimizer to the trainer.

    A token embedding's gradient has rows only for the batch's tokens, but dense Adam reads and writes every row
    every step, and the gradient itself is a zeroed table with those rows added: for SST-2's 13,831 x 64 table,
    passes over 885k values that were most of a training step. The two optimizers share their param groups'
    dicts, so a schedule's learning rate reaches both, and one state dict holds both states.
    """

    def __init__(self, dense: list, sparse: list, t: TrainConfig):
        self.dense = build_optimizer(dense, t)
        self.sparse = RowAdam(sparse, lr=t.lr)
        super().__init__(dense + sparse, {"lr": t.lr})
        self.param_groups = self.dense.param_groups + self.sparse.param_groups

    @torch.no_grad()
    def step(self, closure=None):
        loss = _closure_loss(closure)
        self.dense.step()
        self.sparse.step()
        return loss

    def flush(self) -> None:
        self.sparse.flush()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.dense.zero_grad(set_to_none)
        self.sparse.zero_grad(set_to_none)

    def state_dict(self) -> dict:
        return {"dense": self.dense.state_dict(), "sparse": self.sparse.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        self.dense.load_state_dict(state_dict["dense"])
        self.sparse.load_state_dict(state_dict["sparse"])
        self.param_groups[:] = self.dense.param_groups + self.sparse.param_groups


def _values(grad: torch.Tensor) -> torch.Tensor:
    """What a gradient's norm and clipping read: a sparse one's coalesced values (its rows), else itself."""
    return grad.coalesce()._values() if grad.is_sparse else grad  # coalesce: itself when it already is


def _coalesced(params) -> list:
    """Parameters with a gradient, sparse ones coalesced in place (each row once: its norm is then its values')."""
    params = [p for p in params if p.grad is not None]
    for p in params:
        if p.grad.is_sparse and not p.grad.is_coalesced():
            p.grad = p.grad.coalesce()
    return params


def clip_grad_norm(params, max_norm: float) -> Optional[torch.Tensor]:
    """torch.nn.utils.clip_grad_norm_, minus its multiply-by-1.0 when the norm is in bounds on CPU.

    PyTorch always rescales by min(1, max_norm / (norm + 1e-6)), to avoid a device sync
    on GPU; on CPU the test is free and the skipped rescale is a pass over every gradient
    (~0.1 ms a step for a 1M-parameter model). The same factor is computed the same way,
    so the gradients are bit-identical either way. Sparse gradients (train.lazy_embeddings) count with their
    rows and are rescaled by the same factor. Returns the total norm before clipping (None: no gradients).
    """
    params = _coalesced(params)
    utils = torch.nn.utils
    if not params:
        return None
    if any(p.grad.is_sparse for p in params):
        norm = grad_norm(params)
        coef = max_norm / (norm + 1e-6)
        if bool(coef < 1.0):
            for p in params:
                _values(p.grad).mul_(coef)
        return norm
    if params[0].grad.device.type != "cpu" or not hasattr(utils, "get_total_norm"):  # GPU, or torch < 2.6
        return utils.clip_grad_norm_(params, max_norm)
    norm = utils.get_total_norm([p.grad for p in params])
    if bool(max_norm / (norm + 1e-6) < 1.0):
        utils.clip_grads_with_norm_(params, max_norm, norm)
    return norm


def grad_norm(params) -> Optional[torch.Tensor]:
    """The global gradient norm, without changing any gradient (None: no gradients)."""
    grads = [_values(p.grad) for p in _coalesced(params)]
    if not grads:
        return None
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))


def param_grad_norm(p: torch.nn.Parameter) -> float:
    """One parameter's gradient norm (a sparse gradient's, over its rows)."""
    return float(torch.linalg.vector_norm(_values(p.grad)))


def planned_steps(t: TrainConfig, batches_per_epoch: int) -> int:
    """The optimizer steps a run is planned for, the length its schedule spans: train.epochs of its batches, or
    train.max_steps where that is fewer."""
    total = t.epochs * batches_per_epoch
    return total if t.max_steps is None else min(total, t.max_steps)


def lr_factor(step: int, kind: str, warmup: int, total: int) -> float:
    """Multiplier of the peak LR after `step` optimizer steps."""
    if warmup and step < warmup:
        return (step + 1) / warmup
    if kind in ("constant", "plateau"):
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    return 0.5 * (1.0 + math.cos(math.pi * progress))  # cosine


class Schedule:
    """Per-step factor (warm-up, linear, cosine) plus an optional per-epoch plateau reduction."""

    def __init__(self, optimizer: torch.optim.Optimizer, t: TrainConfig, total_steps: int):
        self.step_sched = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, t.schedule, t.warmup_steps, total_steps))
        self.plateau = None
        if t.schedule == "plateau":
            mode = "min" if t.monitor in MINIMIZED_METRICS else "max"
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=mode, factor=0.5, patience=1)

    def step(self) -> None:
        if self.plateau is None:
            self.step_sched.step()

    def epoch_end(self, metric: float | None) -> None:
        if self.plateau is not None and metric is not None:
            self.plateau.step(metric)

    def state_dict(self) -> dict:
        return {"step": self.step_sched.state_dict(),
                "plateau": self.plateau.state_dict() if self.plateau else None}

    def load_state_dict(self, state: dict) -> None:
        self.step_sched.load_state_dict(state["step"])
        if self.plateau is not None and state.get("plateau"):
            self.plateau.load_state_dict(state["plateau"])
