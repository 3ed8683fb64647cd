"""What every shapes report shares: checks that can fail, the tolerances, the overall verdict, one thread."""

from __future__ import annotations

import contextlib
from typing import Sequence, Union

import torch

TOL = 1e-9         # float64 checks: the same arithmetic in another order differs by ~1e-15
MODEL_TOL = 1e-5   # float32 checks on a configured model

Tensors = Union[torch.Tensor, Sequence[torch.Tensor]]


def compare(name: str, claim: str, left: Tensors, right: Tensors, tol: float = TOL) -> dict:
    """Pass/fail and the max absolute difference of `left` and `right` (same shapes required)."""
    left = [left] if isinstance(left, torch.Tensor) else list(left)
    right = [right] if isinstance(right, torch.Tensor) else list(right)
    check = {"name": name, "claim": claim, "passed": False, "max_abs_diff": None, "tolerance": tol}
    shapes_l, shapes_r = [list(t.shape) for t in left], [list(t.shape) for t in right]
    if shapes_l != shapes_r:
        check["detail"] = f"shapes differ: {shapes_l} vs {shapes_r}"
        return check
    diff = max([(a.double() - b.double()).abs().max().item() for a, b in zip(left, right) if a.numel()],
               default=0.0)
    check["max_abs_diff"] = diff
    check["passed"] = diff <= tol
    return check


def all_passed(report: dict) -> bool:
    """Every check and identity passed, every shape matches its formula, and so does a nested encoder report."""
    checks = list(report.get("identities", [])) + list(report.get("checks", []))
    if report.get("explain"):
        checks.append(report["explain"]["step"])
    rows = report.get("tensors", []) + report["parameters"].get("tensors", [])
    shapes_ok = all(t["matches_formula"] for t in rows)
    nested = report.get("encoder")
    return all(c["passed"] for c in checks) and shapes_ok and (nested is None or nested["all_passed"])


@contextlib.contextmanager
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy machine each parallel
    region can wait a scheduler slice for its second thread (0.2 s per RNN call measured)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
