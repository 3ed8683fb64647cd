"""Write the toy seq2seq task in this folder: reverse a string of digits (deterministic; run from anywhere).

    {train,validation,test}.src   digit strings, 1 to 10 digits, one per line
    {train,validation,test}.tgt   the same strings reversed, line-aligned

A sequence-to-sequence model with attention learns it in seconds (configs/reverse.yaml).

    python data/reverse/make_reverse.py
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"train": 3000, "validation": 200, "test": 200}


def main() -> None:
    rng = random.Random(7)
    for split, n in SIZES.items():
        sources = ["".join(rng.choices("0123456789", k=rng.randint(1, 10))) for _ in range(n)]
        (HERE / f"{split}.src").write_text("".join(s + "\n" for s in sources), encoding="utf-8")
        (HERE / f"{split}.tgt").write_text("".join(s[::-1] + "\n" for s in sources), encoding="utf-8")


if __name__ == "__main__":
    main()
