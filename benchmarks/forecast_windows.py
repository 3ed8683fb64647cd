"""A forecast run's test figures on every window and on the windows a `drop_last=True` loader would have kept.

The long-horizon literature's data loaders long dropped the last, incomplete batch of the test windows (SegRNN's
README says so of its own L = 720 table, fixed since; the shared data's SOURCE.md names the trap). A figure from
such a loader is the mean over the first floor(N / B) * B windows in time order, not over all N. This script
scores a trained run both ways, the model and the baselines on the same windows, so a grutool figure (every
window, the protocol) can also be read beside a published figure made the old way:

    python benchmarks/forecast_windows.py RUN [RUN ...] [--split test] [--drop-last 256] [--json out.json]

`--drop-last B`: the batch size of the loader that dropped windows (SegRNN's first ETTh1 script: 256). With
several runs of one horizon and input length (seeds), their mean and sample standard deviation follow
the per-run rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from grutool.errors import UserError  # noqa: E402


def score_run(run: str, split: str, drop_last: int) -> dict:
    """MSE/MAE of the run and of its baselines (z-scored) on every window of `split` and on the kept ones."""
    from grutool.families.forecast import metrics as fm
    from grutool.predict import Predictor
    from grutool.training.evaluation import evaluate_split

    p = Predictor(run, "cpu")
    if p.cfg.task != "forecast":
        raise UserError(f"{run}: task {p.cfg.task}; this script scores forecast runs")
    source = getattr(p.cfg.data, split, None)
    if source is None:
        raise UserError(f"{run}: the run's config has no data.{split}")
    encoded = p.task.encode_split(p.cfg, p.run, source, split)
    figures: dict = {}

    class Keeping(fm.ForecastMetrics):
        def compute(self) -> dict:
            out = super().compute()  # checks that every window was scored
            pred, gold = np.concatenate(self.preds), np.concatenate(self.golds)  # (N, H, T[, Q]), window order
            if pred.ndim == 4:
                pred = pred[..., self.median]
            n = len(pred)
            k = (n // drop_last) * drop_last
            if k == 0:
                raise UserError(f"{run}: {n} {split} windows, fewer than one batch of {drop_last}")
            rules = fm.baselines(self.split)

            def first(w: int) -> dict:  # MSE/MAE of the model and the baselines on the first w windows
                def pick(f: np.ndarray) -> dict:
                    s = fm.scores(f[:w], gold[:w], self.split)
                    return {"mse": s["mse"], "mae": s["mae"]}
                return {"windows": w, "model": pick(pred), "baselines": {name: pick(b) for name, b in rules.items()}}

            figures.update(horizon=out["horizon"], input_length=out["input_length"], every=first(n), kept=first(k))
            return out

    p.task.metrics = Keeping  # this Predictor's task only
    evaluate_split(p.model, p.task, encoded, p.device, p.cfg.train.batch_size)
    return {"run": run, **figures}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="forecast run directories (e.g. one per seed)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--drop-last", type=int, default=256, metavar="B",
                    help="batch size of the loader that dropped its last partial batch (default 256)")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    if args.drop_last < 1:
        print("error: --drop-last must be at least 1", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    try:
        rows = [score_run(r, args.split, args.drop_last) for r in args.runs]
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{args.split}: every window vs the first floor(N/{args.drop_last})*{args.drop_last} "
          f"(a drop_last=True loader of batch {args.drop_last}); z-scored MSE / MAE")
    for r in rows:
        e, k = r["every"], r["kept"]
        base = " | ".join(f"{name} {e['baselines'][name]['mse']:.4f} -> {k['baselines'][name]['mse']:.4f}"
                          for name in ("last_value", "seasonal_naive") if name in e["baselines"])
        print(f"{r['run']}: H {r['horizon']}, L {r['input_length']}: every {e['windows']} windows "
              f"{e['model']['mse']:.4f} / {e['model']['mae']:.4f}; kept {k['windows']} "
              f"{k['model']['mse']:.4f} / {k['model']['mae']:.4f}  (MSE of {base})")
    summary = {}  # per horizon and input length with more than one run (seeds): mean and sample sd
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["horizon"], r["input_length"]), []).append(r)
    for (h, L), rs in sorted(groups.items()):
        if len(rs) < 2:
            continue
        fig = {f"{part}_{m}": {"mean": statistics.mean(v), "sd": statistics.stdev(v)}
               for part in ("every", "kept") for m in ("mse", "mae")
               for v in [[r[part]["model"][m] for r in rs]]}
        summary[f"H{h}_L{L}"] = fig
        print(f"H {h}, L {L}, mean ± sd over {len(rs)} runs: every {fig['every_mse']['mean']:.4f} ± "
              f"{fig['every_mse']['sd']:.4f} / {fig['every_mae']['mean']:.4f} ± {fig['every_mae']['sd']:.4f}; "
              f"kept {fig['kept_mse']['mean']:.4f} ± {fig['kept_mse']['sd']:.4f} / "
              f"{fig['kept_mae']['mean']:.4f} ± {fig['kept_mae']['sd']:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"drop_last": args.drop_last, "split": args.split, "runs": rows,
                                               "summary": summary}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
