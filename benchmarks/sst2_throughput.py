"""Training throughput and accuracy: `grutool train` vs a plain PyTorch script (benchmark 1).

Both train the same model (configs/sst2.yaml without its char features, which the
plain script does not have: embedding, BiGRU, max-pooling, head) for the same
number of epochs on SST-2; grutool with length-bucketed,
packed batches, the plain script with random batches padded to the batch
maximum. Reported: real (non-padding) tokens per second of training, and test
accuracy.

    python benchmarks/sst2_throughput.py [--epochs N] [--set model.hidden_size=256] [--json out.json]
                                         [--plain-fused-adam]
    python benchmarks/sst2_throughput.py --threads 1 --set train.lazy_embeddings=true   # sparse embedding updates

docs/benchmarks.md ("Training throughput vs a plain PyTorch script") has the figures of both updates.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grutool.errors import UserError  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="configs/sst2.yaml")
    ap.add_argument("--epochs", type=int, default=None, help="default: the config's train.epochs")
    ap.add_argument("--set", action="append", default=[], help="config override, as for grutool train")
    ap.add_argument("--threads", type=int, default=None, help="default: torch's own count")
    ap.add_argument("--skip-plain", action="store_true")
    ap.add_argument("--plain-fused-adam", action="store_true",
                    help="give the plain script grutool's fused Adam too (isolates the batching speed-up)")
    ap.add_argument("--json")
    args = ap.parse_args()
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    import torch

    import plain_pytorch  # benchmarks/ is on sys.path
    from grutool.config_file import load_config
    from grutool.evaluate import evaluate
    from grutool.training.loop import train

    if args.threads is not None:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        overrides = ["model.char_features=false"] + list(args.set) + ["train.patience=null", f"output_dir={tmp}/run"]
        if args.epochs is not None:
            overrides.append(f"train.epochs={args.epochs}")
        cfg = load_config(args.config, overrides)
        t0 = time.perf_counter()
        summary = train(cfg)
        wall = time.perf_counter() - t0
        rows = [json.loads(l) for l in Path(tmp, "run", "metrics.jsonl").read_text().splitlines()]
        tokens = sum(r["tokens_per_s"] * r["epoch_time_s"] for r in rows)
        train_s = sum(r["epoch_time_s"] for r in rows)
        test = evaluate(f"{tmp}/run", "test", device="cpu")
        ours = {"tokens_per_s": tokens / train_s, "train_seconds": train_s, "wall_seconds": wall,
                "test_accuracy": test["accuracy"], "validation_accuracy": summary["best"],
                "epochs": cfg.train.epochs,
                "note": "test accuracy of best.pt (by validation accuracy)"}

    result = {"grutool": ours, "machine": platform.processor() or platform.machine(),
              "threads": torch.get_num_threads(), "torch": torch.__version__}
    if not args.skip_plain:
        m, d, t = cfg.model, cfg.data, cfg.train
        plain = plain_pytorch.run(d.train, d.test, epochs=t.epochs, batch_size=t.batch_size,
                                  emb=m.embedding_dim, hidden=m.hidden_size, lr=t.lr,
                                  emb_dropout=m.embedding_dropout, head_dropout=m.head_dropout,
                                  max_length=d.max_length, clip=t.clip_grad_norm, seed=t.seed,
                                  fused_adam=args.plain_fused_adam)
        plain["note"] = "test accuracy after the last epoch"
        plain["fused_adam"] = args.plain_fused_adam
        result["plain_pytorch"] = plain
        result["speedup"] = ours["tokens_per_s"] / plain["tokens_per_s"]

    print("| script | epochs | real tokens/s | train time (s) | test accuracy |")
    print("|---|---:|---:|---:|---:|")
    for name in ("grutool", "plain_pytorch"):
        if name in result:
            r = result[name]
            print(f"| {name} | {r['epochs']} | {r['tokens_per_s']:,.0f} | {r['train_seconds']:.1f} | {r['test_accuracy']:.4f} |")
    if "speedup" in result:
        print(f"\nspeedup (real tokens/s): {result['speedup']:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    try:
        main()
    except UserError as e:  # data not in place (docs/data.md), a bad --set: one line and exit 2, as grutool's own
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
