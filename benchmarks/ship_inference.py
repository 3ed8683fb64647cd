"""Inference speed and accuracy of a trained run: PyTorch eager fp32, TorchScript fp32 and int8
(torch quantize_dynamic), ONNX Runtime fp32 and int8 (its dynamic quantizer) — issue 14's table.

Every backend runs through `Predictor.predict` (the same tokenization and post-processing as
`grutool infer`), on the run's validation and test texts:

    throughput   texts/s over the whole split in batches of 64
    latency      median (and p90) of one predict call with 1 text, and with 64 texts
    accuracy     classifier: accuracy; joint: intent accuracy, slot F1 (spans), sentence accuracy

    OMP_NUM_THREADS=1 python benchmarks/ship_inference.py runs/sst2 [--json out.json] [--repeats 200]

Exports are written by `grutool export` into the run directory first (parity checked there).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

from grutool.families.tagger import schemes  # no torch, as grutool.families
from grutool.families import get_task
import script_args  # noqa: E402  (benchmarks/ is sys.path[0])

BACKENDS = [("pytorch fp32", "torch", None, False), ("torchscript fp32", "torchscript", "model.pt", False),
            ("torchscript int8", "torchscript", "model.int8.pt", True),
            ("onnxruntime fp32", "onnx", "model.onnx", False), ("onnxruntime int8", "onnx", "model.int8.onnx", True)]


def gold(run, split: str):
    """Texts and gold answers of a split, as predict reads texts."""
    cfg = run.config
    task = get_task(cfg.task)
    source = getattr(cfg.data, split)
    if cfg.task == "classifier":
        from grutool.families.classifier.task import read_examples

        texts, labels = read_examples(cfg.data, source)
        return texts, labels
    sentences = task.read(cfg, source, split)
    return [" ".join(s.tokens) for s in sentences], [(s.tags, s.intent) for s in sentences]


def score(task: str, results: list[dict], answers) -> dict:
    if task == "classifier":
        return {"accuracy": sum(r["label"] == a for r, a in zip(results, answers)) / len(answers)}
    tp = fp = fn = intent = sentence = 0
    for r, (tags, gold_intent) in zip(results, answers):
        p, g = set(schemes.spans(r["tags"])), set(schemes.spans(tags))
        tp, fp, fn = tp + len(p & g), fp + len(p - g), fn + len(g - p)
        intent += r["intent"] == gold_intent
        sentence += r["intent"] == gold_intent and r["tags"] == tags
    n = len(answers)
    return {"intent_accuracy": intent / n, "slot_f1": 2 * tp / max(1, 2 * tp + fp + fn), "sentence_accuracy": sentence / n}


def timed(fn, repeats: int) -> list[float]:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--repeats", type=script_args.positive, default=200)
    ap.add_argument("--json")
    args = ap.parse_args()
    # After the arguments: --help and a bad argument answer at once, not after torch's import (seconds).
    import torch

    from grutool.export import export
    from grutool.predict import Predictor

    run_path = Path(args.run)
    for _, fmt, name, int8 in BACKENDS:
        if name and not (run_path / name).is_file():
            export(run_path, fmt, run_path / name, int8=int8, exporter="legacy")
    rows = []
    for label, backend, name, _ in BACKENDS:
        p = Predictor(run_path, "cpu", backend=backend, exported=run_path / name if name else None)
        row = {"backend": label, "bytes": (run_path / name).stat().st_size if name else
               sum(t.numel() * t.element_size() for t in p.model.state_dict().values())}
        for split in ("validation", "test"):
            texts, answers = gold(p.run, split)
            t = time.perf_counter()
            results = p.predict(texts, batch_size=64)
            row[f"{split}_texts_per_s"] = len(texts) / (time.perf_counter() - t)
            row[split] = score(p.cfg.task, results, answers)
        texts, _ = gold(p.run, "test")
        one = timed(lambda: p.predict(texts[:1]), args.repeats)
        many = timed(lambda: p.predict(texts[:64], batch_size=64), max(10, args.repeats // 10))
        row["batch1_ms"] = 1000 * statistics.median(one)
        row["batch1_p90_ms"] = 1000 * statistics.quantiles(one, n=10)[-1]
        row["batch64_ms"] = 1000 * statistics.median(many)
        rows.append(row)
        print(json.dumps(row), flush=True)
    env = {"torch": torch.__version__, "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine(),
           "python": platform.python_version(), "date": time.strftime("%Y-%m-%d")}
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if args.json:
        Path(args.json).write_text(json.dumps({"run": str(run_path), "env": env, "rows": rows}, indent=1))
    print(json.dumps(env))


if __name__ == "__main__":
    sys.exit(script_args.run(main))
