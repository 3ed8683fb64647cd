"""The kernels' GEMMs: oneDNN's pre-packed linear where torch exposes it and the size pays for its call, else BLAS.

The thresholds below were measured on this project's CPU; the figures are in docs/benchmarks.md ("The
fused GRU": "oneDNN for large GEMMs, BLAS for small ones", and the GEMM limit's parts).
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
# From this hidden size the weight-gradient GEMMs go through oneDNN despite a transposing copy.
BIG_WEIGHT_GRAD_H = 256
# oneDNN runs a step GEMM on plain weights nearly as fast as on weights reordered into its blocked
# layout, but a reorder costs more than many steps' difference: worth it for long sequences only.
REORDER_MIN_STEPS = 32


def gemm_backend(dtype: torch.dtype = torch.float32, rows: int = 1 << 30, hidden: int = 1 << 30, gates: int = 3) -> str:
    """`onednn` (pre-packed weights, float32 on CPU) where available and the step GEMM is large
    enough to pay for its call, else `blas` (torch.addmm / MKL)."""
    if dtype != torch.float32:
        return "blas"
    if _FORCED_BACKEND is not None:
        return _FORCED_BACKEND
    big = 2 * gates * rows * hidden * hidden >= ONEDNN_MIN_FLOPS
    return "onednn" if big and _onednn_available() else "blas"


@contextlib.contextmanager
def use_gemm_backend(name: str):
    """Force `blas` or `onednn` for the per-step GEMMs (tests and benchmarks compare the two)."""
    global _FORCED_BACKEND
    if name not in ("blas", "onednn"):
        raise ValueError(f"GEMM backend must be blas or onednn, got {name!r}")
    if name == "onednn" and not _onednn_available():
        raise RuntimeError("oneDNN's linear ops are not available in this torch build")
    previous, _FORCED_BACKEND = _FORCED_BACKEND, name
    try:
        yield
    finally:
        _FORCED_BACKEND = previous


def big_gemms_onednn(dtype: torch.dtype) -> bool:
    """Whether the big once-per-layer GEMMs (all steps at once) go through oneDNN: float32 where it is there
    (about twice MKL's rate on large GEMMs here) and BLAS is not forced."""
    return dtype == torch.float32 and _FORCED_BACKEND != "blas" and _onednn_available()


def matmul_t(a: torch.Tensor, b: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """a @ b.T (+ bias) for the big once-per-layer GEMMs: oneDNN where `big_gemms_onednn`, else BLAS."""
    if big_gemms_onednn(a.dtype):
        return torch.ops.mkldnn._linear_pointwise(a, b, bias, "none", [], "")  # strided views are fine
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
