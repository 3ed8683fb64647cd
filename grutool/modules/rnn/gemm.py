"""The kernels' GEMMs: oneDNN's pre-packed linear for the per-step GEMMs where torch exposes it, the size pays
for its call and the shapes are few; BLAS for the rest.

oneDNN builds a primitive for every GEMM shape it meets and keeps it (~0.6 MB each) in two caches of 1,024
entries, oneDNN's own and ideep's, which nothing torch exposes can bound or empty. So it is handed only shapes
that recur: never the all-rows GEMMs (a new row count at nearly every batch), and a ragged batch's step GEMMs
only from ONEDNN_RAGGED_MIN_HIDDEN and up to ONEDNN_MAX_RAGGED_ROWS rows (issue 24: ~1 GB of peak memory on
UD-EWT before).

The thresholds below were measured on this project's CPU; the figures are in docs/benchmarks.md ("The
fused GRU": "oneDNN for large GEMMs, BLAS for small ones", the GEMM limit's parts, and "Peak memory").
"""

from __future__ import annotations

import contextlib
from typing import Optional

import torch
import torch.nn.functional as F

_ONEDNN_OK: Optional[bool] = None
_FORCED_BACKEND: Optional[str] = None


def _onednn_available() -> bool:
    """Whether torch exposes oneDNN's pre-packed linear (private ops Inductor uses) and it computes correctly."""
    global _ONEDNN_OK
    if _ONEDNN_OK is None:
        try:
            ok = torch.backends.mkldnn.is_available()
            if ok:
                # Fixed values, not torch.randn: the probe must not draw from the global RNG (it would shift
                # every dropout mask after it, and runs would differ from the native kernel's).
                x = torch.linspace(-1, 1, 15).reshape(3, 5)
                w = torch.linspace(-0.5, 0.7, 20).reshape(4, 5)
                b = torch.linspace(0.1, 0.4, 4)
                packed = torch.ops.mkldnn._reorder_linear_weight(w, 3)
                y = torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
                ok = bool(torch.allclose(y, F.linear(x, w, b), atol=1e-5))
        except (AttributeError, RuntimeError, NotImplementedError):
            ok = False
        _ONEDNN_OK = ok
    return _ONEDNN_OK


# Below this many flops a step GEMM (B, H) x (H, gates*H) is faster through BLAS: oneDNN's call has a
# fixed cost of its own.
ONEDNN_MIN_FLOPS = 2e6
# oneDNN runs a step GEMM on plain weights nearly as fast as on weights reordered into its blocked
# layout, but a reorder costs more than many steps' difference: worth it for long sequences only.
REORDER_MIN_STEPS = 32
# The steps of a ragged batch of B rows have every row count up to B, a oneDNN primitive (~0.6 MB, cached for
# good) each. They go through oneDNN only where it pays most, from this hidden size (1.8-2.4x BLAS's step
# GEMM; below it, at most ~1.4x), and where B is a batch size, not, say, a char encoder's distinct words
# (UD-EWT: up to hundreds, a new B each batch): each such weight then costs at most 2 x 128 primitives.
ONEDNN_RAGGED_MIN_HIDDEN = 256
ONEDNN_MAX_RAGGED_ROWS = 128
# The compiled kernel's step GEMMs (x_t W_ih^T and h W_hh^T in the forward, dgh W_hh in the backward) run
# through oneDNN's brgemm micro-kernel (float32), B read in column panels of 32, up to this hidden size:
# 1.1-4x oneDNN's linear and BLAS per call at B 32, H 64-512 (the backward's K 3H too: at H 512 3 % faster
# than BLAS, one thread and two). Figures: docs/benchmarks.md, "The step GEMMs on brgemm" and "Column panels".
BRGEMM_MAX_HIDDEN = 1024  # the LSTM's and RNN's loops follow the same rule


def gemm_backend(dtype: torch.dtype = torch.float32, rows: int = 1 << 30, hidden: int = 1 << 30, gates: int = 3,
                 ragged: bool = False) -> str:
    """`onednn` (pre-packed weights, float32 on CPU) where available, the step GEMM is large enough to pay
    for its call and its shapes are few (`ragged`: the steps have every row count up to `rows`), else
    `blas` (torch.addmm / MKL)."""
    if dtype != torch.float32:
        return "blas"
    if _FORCED_BACKEND is not None:  # brgemm: the compiled kernel's; the others' step GEMMs then run on BLAS
        return "blas" if _FORCED_BACKEND == "brgemm" else _FORCED_BACKEND
    big = 2 * gates * rows * hidden * hidden >= ONEDNN_MIN_FLOPS
    few = not ragged or (rows <= ONEDNN_MAX_RAGGED_ROWS and hidden >= ONEDNN_RAGGED_MIN_HIDDEN)
    return "onednn" if big and few and _onednn_available() else "blas"


def forced_backend() -> Optional[str]:
    """The backend `use_gemm_backend` forces, or None."""
    return _FORCED_BACKEND


@contextlib.contextmanager
def use_gemm_backend(name: str):
    """Force `blas`, `onednn` or `brgemm` (the compiled kernel's; BLAS for the others) for the per-step GEMMs
    (tests and benchmarks compare them)."""
    global _FORCED_BACKEND
    if name not in ("blas", "onednn", "brgemm"):
        raise ValueError(f"GEMM backend must be blas, onednn or brgemm, got {name!r}")
    if name == "onednn" and not _onednn_available():
        raise RuntimeError("oneDNN's linear ops are not available in this torch build")
    previous, _FORCED_BACKEND = _FORCED_BACKEND, name
    try:
        yield
    finally:
        _FORCED_BACKEND = previous


def ragged(batch_sizes: list[int]) -> bool:
    """Whether packed rows hold sequences of unequal lengths: then the steps have every row count from
    batch_sizes[-1] to batch_sizes[0] (see ONEDNN_MAX_RAGGED_ROWS)."""
    return batch_sizes[0] != batch_sizes[-1]


def matmul_t(a: torch.Tensor, b: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """a @ b.T (+ bias) for the big once-per-layer GEMMs over all of a call's rows (input projections, input
    and weight gradients): BLAS. Their row count N, a batch's total length, is a new shape at nearly every
    call, and oneDNN builds and keeps a primitive for each shape it meets (~0.6 MB; ~1 GB of peak memory on
    UD-EWT, docs/benchmarks.md "Peak memory"); for a new shape its build costs more than BLAS's whole product."""
    return F.linear(a, b, bias)


class Linear:
    """y = x @ w.T (+ b) for one weight used at each of `steps` steps, through oneDNN or BLAS."""

    def __init__(self, w: torch.Tensor, rows: int, backend: str, steps: int = REORDER_MIN_STEPS):
        self.backend = backend
        if backend == "onednn":
            self.w = torch.ops.mkldnn._reorder_linear_weight(w, rows) if steps >= REORDER_MIN_STEPS else w
        else:
            self.w = w.t()  # (in, out) view: addmm reads it transposed, no copy

    def __call__(self, x: torch.Tensor, b: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.backend == "onednn":
            return torch.ops.mkldnn._linear_pointwise(x, self.w, b, "none", [], "")
        return torch.addmm(b, x, self.w) if b is not None else torch.mm(x, self.w)
