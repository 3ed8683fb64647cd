"""Peak memory and wall time of the data step (`grutool train CFG --dry-run`) on a large classifier TSV.

Writes (once; kept when it exists) a `--lines`-line TSV of text<TAB>label to `--dir`, words drawn Zipf-like
(s = 1.1) from a 50,000-word vocabulary whose frequent words are short, 5-30 words a line (~52 MB for 1M
lines), plus a 2,000-line validation and test file and a config in the shape of configs/sentiment.yaml.
Then runs the real CLI `--repeat` times in a fresh process under `/usr/bin/time -v` and prints, per run,
the peak RSS, wall time and CPU time (user + system), with the load average before each run (the machine may be shared).

    python benchmarks/data_memory.py [--lines 1000000] [--dir /tmp/grutool_data_memory] [--repeat 1] [--cold]

`--cold` empties the datasets cache (kept in DIR/hf_cache) before each run, so the CSV is parsed again.

`--lm` measures instead 30 training steps (`grutool train CFG --set train.max_steps=30`, validation included)
of a word language model with a 200,000-word vocabulary and an adaptive softmax: a `--lines`-line text file
whose first 10,000 lines hold each of the 200,000 words once, the rest Zipf-like as above.

Run it from the repository root with PYTHONPATH=. so that this checkout's grutool is the one measured.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

VOCAB = 50_000
CONFIG = """\
# Written by benchmarks/data_memory.py: the shape of configs/sentiment.yaml on a large generated file.
task: classifier
data:
  train: {dir}/train.tsv
  validation: {dir}/validation.tsv
  test: {dir}/test.tsv
  text_column: text
  label_column: label
  tokenizer: word
  lowercase: true
  max_length: 64
model:
  cell: gru
  embedding_dim: 64
  hidden_size: 64
  num_layers: 1
  bidirectional: true
  pooling: mean
train:
  batch_size: 16
  epochs: 1
  seed: 13
"""


LM_VOCAB = 200_000
LM_CONFIG = """\
# Written by benchmarks/data_memory.py --lm: a word language model with a 200,000-word vocabulary.
task: lm
data:
  train: {dir}/lm.txt[:99%]
  validation: {dir}/lm.txt[99%:]
  tokenizer: word
  lowercase: true
  max_length: 64
model:
  embedding_dim: 128
  hidden_size: 256
  bidirectional: false
  adaptive_cutoffs: [2000, 20000]
train:
  batch_size: 32
  epochs: 1
  max_steps: 30
  monitor: loss
  seed: 13
"""


def spelling(rank: int) -> str:
    """Rank 0 -> 'a', 25 -> 'z', 26 -> 'aa', ...: the most frequent words are the shortest, as in text."""
    letters = ""
    rank += 1
    while rank:
        rank, r = divmod(rank - 1, 26)
        letters = chr(97 + r) + letters
    return letters


def write_tsv(path: Path, lines: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = np.array([spelling(r) for r in range(VOCAB)], dtype=object)
    p = 1.0 / np.arange(1, VOCAB + 1) ** 1.1
    p /= p.sum()
    with open(path, "w", encoding="utf-8") as f:
        f.write("text\tlabel\n")
        for start in range(0, lines, 100_000):
            n = min(100_000, lines - start)
            counts = rng.integers(5, 31, n)
            ranks = rng.choice(VOCAB, size=int(counts.sum()), p=p)
            labels = rng.integers(0, 2, n)
            cuts = np.cumsum(counts)[:-1]
            rows = (" ".join(w) for w in np.split(words[ranks], cuts))
            f.writelines(f"{text}\t{y}\n" for text, y in zip(rows, labels))


def generate(folder: Path, lines: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", lines, 0), ("validation", 2_000, 1), ("test", 2_000, 2)):
        path = folder / f"{name}.tsv"
        if not path.is_file():
            write_tsv(path, n, seed)
    cfg = folder / "config.yaml"
    cfg.write_text(CONFIG.format(dir=folder), encoding="utf-8")
    return cfg


def write_lm_text(path: Path, lines: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    words = np.array([spelling(r) for r in range(LM_VOCAB)], dtype=object)
    every = rng.permutation(LM_VOCAB)  # each word once, 20 a line
    p = 1.0 / np.arange(1, LM_VOCAB + 1) ** 1.1
    p /= p.sum()
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(" ".join(words[every[j:j + 20]]) + "\n" for j in range(0, LM_VOCAB, 20))
        rest = lines - LM_VOCAB // 20
        counts = rng.integers(5, 31, rest)
        cuts = np.cumsum(counts)[:-1]
        ranks = rng.choice(LM_VOCAB, size=int(counts.sum()), p=p)
        f.writelines(" ".join(w) + "\n" for w in np.split(words[ranks], cuts))


def generate_lm(folder: Path, lines: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "lm.txt").is_file():
        write_lm_text(folder / "lm.txt", lines, 3)
    cfg = folder / "lm.yaml"
    cfg.write_text(LM_CONFIG.format(dir=folder), encoding="utf-8")
    return cfg


def measure(cfg: Path, *args: str) -> dict:
    """One `grutool train CFG ARGS` in a fresh process: peak RSS (MB), wall and CPU time (s), the data stage line."""
    load = Path("/proc/loadavg").read_text().split()[0]
    # The datasets cache goes beside the data, so a measurement writes nothing outside that folder.
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "HF_DATASETS_CACHE": str(cfg.parent / "hf_cache")}
    out = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "grutool", "train", str(cfg), *args],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(out.stdout + out.stderr)
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr).group(1))
    wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", out.stderr)
    seconds = int(wall.group(1) or 0) * 3600 + int(wall.group(2)) * 60 + float(wall.group(3))
    cpu = sum(float(re.search(rf"{kind} time \(seconds\): ([\d.]+)", out.stderr).group(1)) for kind in ("User", "System"))
    stage = re.search(r"data: .*", out.stdout + out.stderr)
    return {"load": load, "rss_mb": rss_kb / 1024, "wall_s": seconds, "cpu_s": cpu,
            "stage": stage.group(0) if stage else ""}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines of the training file")
    parser.add_argument("--dir", type=Path, default=Path("/tmp/grutool_data_memory"))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--cold", action="store_true", help="empty the datasets cache before each run")
    parser.add_argument("--lm", action="store_true", help="30 steps of a 200,000-word language model instead")
    args = parser.parse_args()
    cfg = generate_lm(args.dir, args.lines) if args.lm else generate(args.dir, args.lines)
    data = args.dir / ("lm.txt" if args.lm else "train.tsv")
    print(f"{data}: {args.lines:,} lines, {data.stat().st_size / 1e6:.1f} MB")
    for _ in range(args.repeat):
        if args.cold:
            shutil.rmtree(args.dir / "hf_cache", ignore_errors=True)
        run = args.dir / "lm_run"
        r = measure(cfg, "-o", str(run), "--overwrite") if args.lm else measure(cfg, "--dry-run")
        print(f"{'cold' if args.cold else 'warm'} cache  load {r['load']}  peak RSS {r['rss_mb']:,.0f} MB  wall {r['wall_s']:.1f} s  cpu {r['cpu_s']:.1f} s  | {r['stage']}")


if __name__ == "__main__":
    main()
