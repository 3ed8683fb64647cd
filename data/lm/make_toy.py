"""Write the toy language-model data in this folder (deterministic; run from anywhere).

    {train,validation,test}.tsv   made-up words from three "languages" (columns text, language): each
                                  language builds its words from its own syllables, so the condition
                                  tells a model which letters come next
    stream.txt                    a small text from a tiny grammar, read as one stream with train.bptt

A GRU learns both in seconds (configs/lm.yaml, configs/lm_stream.yaml).

    python data/lm/make_toy.py
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SIZES = {"train": 600, "validation": 90, "test": 90}
SYLLABLES = {
    "kalo": ["ka", "ko", "lo", "la", "ki", "mo"],
    "zuri": ["zu", "ri", "zi", "ru", "xu", "ni"],
    "pelt": ["pe", "te", "el", "pet", "len", "tep"],
}
SUBJECTS = ["the cat", "a dog", "the old man", "my sister", "the bird"]
VERBS = ["sees", "likes", "follows", "hears", "finds"]
OBJECTS = ["the river", "a small house", "the garden", "the moon", "a red ball"]


def word(rng: random.Random, language: str) -> str:
    return "".join(rng.choices(SYLLABLES[language], k=rng.randint(2, 4))).capitalize()


def main() -> None:
    rng = random.Random(11)
    for split, n in SIZES.items():
        rows = [(word(rng, lang), lang) for lang in SYLLABLES for _ in range(n // len(SYLLABLES))]
        rng.shuffle(rows)
        (HERE / f"{split}.tsv").write_text("text\tlanguage\n" + "".join(f"{w}\t{l}\n" for w, l in rows),
                                           encoding="utf-8")
    lines = [f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}." for _ in range(400)]
    (HERE / "stream.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
