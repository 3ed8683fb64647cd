"""The parity check `export` runs: an exported graph against the original model on a labelled split."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Parity:
    """Max absolute difference per output and agreement of what the task predicts (labels, tags, tokens; for
    real values, those within `close` of the original's)."""

    unit: str = "labels"
    close: float | None = None  # real-valued outputs: the largest |diff| at which a value still agrees
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    agree: int = 0
    total: int = 0
    examples: int = 0

    def update_diff(self, name: str, ref: torch.Tensor, got: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        """`mask` (the leading dims of ref, True at real steps): padding is left out of the comparison."""
        if mask is not None:
            ref, got = ref[mask.to(ref.device)], got.to(ref.device)[mask.to(ref.device)]
        if ref.numel() == 0:
            self.max_abs_diff.setdefault(name, 0.0)
            return
        d = float((ref.float() - got.float().to(ref.device)).abs().max())
        self.max_abs_diff[name] = max(self.max_abs_diff.get(name, 0.0), d)

    def update_agreement(self, ref: torch.Tensor, got: torch.Tensor, mask: torch.Tensor | None = None) -> None:
        same = ref.cpu() == got.cpu()
        if mask is not None:
            same = same[mask.cpu()]
        self.agree += int(same.sum())
        self.total += int(same.numel())

    @property
    def agreement(self) -> float:
        return self.agree / self.total if self.total else 1.0

    def worst(self) -> float:
        return max(self.max_abs_diff.values(), default=0.0)

    def report(self, atol: float | None, min_agreement: float) -> dict:
        ok = self.agreement >= min_agreement and (atol is None or self.worst() <= atol)
        return {"ok": ok, "examples": self.examples, "max_abs_diff": self.max_abs_diff,
                "agreement": round(self.agreement, 6), "agree": self.agree, "total": self.total, "unit": self.unit,
                "tolerance": {"max_abs_diff": atol, "min_agreement": min_agreement,
                              **({"close": self.close} if self.close is not None else {})}}
