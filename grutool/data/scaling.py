"""Per-column standardisation of real-valued data, fitted on the training rows only and saved in the run.

A model of numbers reads z-scores: `(x - mean) / std` per column (channel). The mean and standard deviation
come from the training split alone, so nothing of the validation or test rows leaks into what the model is
fed; `eval`, `infer`, `export` and `serve` apply the saved figures. A model's outputs go back into the columns'
own units through `grutool.jsonsafe.float32_values` (`z * std + mean`, written with the digits float32 z-scores
hold), with the saved `mean` and `std`. It is saved as JSON beside the vocabularies (a task lists it in
`Task.vocabularies`, e.g. ``{"scaler": ("scaler.json", Standardizer)}``) and has their `save`/`load`/`len`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

from grutool.atomic import write_json_atomic
from grutool.errors import UserError

FORMAT = "grutool.standardizer/1"


class Standardizer:
    """z-score per named column: `transform(x) = (x - mean) / std` over the last axis of `x` (..., C)."""

    def __init__(self, names: Sequence[str], mean: Sequence[float], std: Sequence[float]):
        if not (len(names) == len(mean) == len(std)):
            raise ValueError(f"Standardizer: {len(names)} names, {len(mean)} means, {len(std)} deviations")
        self.names = [str(n) for n in names]
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    @classmethod
    def fit(cls, names: Sequence[str], values: Any, source: str = "") -> "Standardizer":
        """Fitted on `values` (N, C) — a numpy array or torch tensor, the training rows only — ignoring NaN;
        `source` (the file) names where a column without any value is.

        A column with one distinct value (std 0) keeps std 1, so it is shifted to 0 and not divided by zero.
        The deviation is the population one (ddof 0), as scikit-learn's StandardScaler, which the published
        forecasting protocol uses."""
        import numpy as np

        x = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(names):
            raise ValueError(f"Standardizer.fit: values of shape {x.shape} for {len(names)} columns")
        seen = ~np.isnan(x)
        counts = seen.sum(axis=0)
        if (counts == 0).any():
            empty = [names[i] for i in np.flatnonzero(counts == 0)]
            where = f"{source}: " if source else ""
            what = f"column {empty[0]!r} has" if len(empty) == 1 else f"columns {', '.join(map(repr, empty))} have"
            raise UserError(f"{where}{what} no value in the training rows to scale by (every cell missing); fill "
                            f"them, or leave the column out of the config")
        # In units of each column's largest magnitude: values of 1e-13 kept their spread (the cut-off was 1e-12
        # absolute: left unscaled, ~0 to the model), values past 1e154 their variance (its square overflowed).
        scale = np.where(seen, np.abs(x), 0.0).max(axis=0)  # (C,)
        scale = np.where(scale > 0, scale, 1.0)
        xs = np.where(seen, x, 0.0) / scale
        mean_s = xs.sum(axis=0) / counts  # (C,) in units of scale
        std_s = np.sqrt((np.where(seen, xs - mean_s, 0.0) ** 2).sum(axis=0) / counts)  # (C,)
        mean = mean_s * scale
        std = np.where(std_s > 1e-12, std_s * scale, 1.0)  # one value (up to rounding): std 1
        return cls(names, mean.tolist(), std.tolist())

    def __len__(self) -> int:
        return len(self.names)

    def _params(self, x: Any, columns: Sequence[int] | None):
        mean, std = self.mean, self.std
        if columns is not None:
            mean, std = [mean[i] for i in columns], [std[i] for i in columns]
        if hasattr(x, "detach"):  # a torch tensor: same dtype and device as x
            import torch

            return (torch.tensor(mean, dtype=x.dtype, device=x.device),
                    torch.tensor(std, dtype=x.dtype, device=x.device))
        import numpy as np

        dtype = x.dtype if getattr(x, "dtype", None) is not None and np.issubdtype(x.dtype, np.floating) else np.float64
        return np.asarray(mean, dtype=dtype), np.asarray(std, dtype=dtype)

    def transform(self, x: Any, columns: Sequence[int] | None = None) -> Any:
        """z-scores of `x` (..., C); `columns`: the indices of the columns x holds, when it holds a subset."""
        mean, std = self._params(x, columns)
        return (x - mean) / std

    # --- the run directory --------------------------------------------------------------------

    def to_dict(self) -> dict:
        return {"format": FORMAT, "names": self.names, "mean": self.mean, "std": self.std}

    @classmethod
    def from_dict(cls, data: dict, source: str = "scaler") -> "Standardizer":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise UserError(f"{source}: not a grutool standardizer ({FORMAT})")
        try:
            scaler = cls(data["names"], data["mean"], data["std"])
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{source}: damaged standardizer ({exc})") from None
        if not all(math.isfinite(v) for v in scaler.mean + scaler.std) or min(scaler.std, default=1) <= 0:
            raise UserError(f"{source}: damaged standardizer (a mean or deviation is not a finite number > 0)")
        return scaler

    def save(self, path: Path) -> None:
        write_json_atomic(self.to_dict(), Path(path), indent=1)

    @classmethod
    def load(cls, path: Path) -> "Standardizer":
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: cannot read the standardizer ({exc})") from None
        return cls.from_dict(data, str(path))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Standardizer) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Standardizer({len(self)} columns)"
