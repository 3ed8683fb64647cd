"""Where a joint (intent + slots) run's sentence errors are, on one split of its data.

Every sentence the run gets wrong (its intent, or any of its tags: what sentence accuracy counts) falls in one of:
- **intent never in training**: the gold intent is not one of the training file's (no model can predict it);
- **intent**: the intent is wrong (whatever the tags);
- **role added or dropped**: the intent is right, and every wrong tag is the gold one with a role prefix added
  or taken away (`B-fromloc.city_name` against `B-city_name`): span and type right, and the data itself writes
  both (ATIS training tags 52 of its 230 ground-service questions with roles, its test file none of its 36);
- **tag never on that word in training**: the intent is right, and every wrong token is a word seen at least
  `--min-count` times in the training file, never with its gold tag (ATIS test tags `noon` as
  `depart_time.period_of_day`; the training file has it 96 times, always as a `.time` or `.start_time`);
- **other**: the rest (a role swapped, `toloc.` for `fromloc.`, is here).
The first matching kind counts. Each kind is listed with its sentences (`--show N` of each, with the wrong tokens).

    python benchmarks/joint_errors.py RUN [--split test] [--min-count 3] [--show 5] [--json out.json]

RUN: a run directory of `grutool train` with task joint, whose config names the split's data (paths relative to
the folder it is run from, as `grutool eval` reads them).
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import sys

import script_args  # noqa: E402  (benchmarks/ is sys.path[0])

ROLE = re.compile(r"^([BIES]-)?(?:[a-z_]+loc)\.")  # ATIS's roles: fromloc., toloc., stoploc.


KINDS = ("intent never in training", "intent", "role added or dropped", "tag never on that word in training", "other")


def strip_role(tag: str) -> str:
    return ROLE.sub(lambda m: m.group(1) or "", tag)


def kind_of(sentence, pred: dict, seen: dict, min_count: int, intents: set) -> str | None:
    """The kind of a sentence's error (module docstring), None when it is right. `seen`: each training word's
    tags, counted; `intents`: the training file's intents."""
    wrong = [(w, g, p) for w, g, p in zip(sentence.words, sentence.tags, pred["tags"]) if g != p]
    if pred["intent"] != sentence.intent:
        return "intent" if sentence.intent in intents else "intent never in training"
    if not wrong:
        return None
    if all(strip_role(g) == strip_role(p) and (g == strip_role(g)) != (p == strip_role(p)) for _, g, p in wrong):
        return "role added or dropped"
    if all(sum(seen[w].values()) >= min_count and seen[w][g] == 0 for w, g, _ in wrong):
        return "tag never on that word in training"
    return "other"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run")
    ap.add_argument("--split", default="test", choices=["train", "validation", "test"])
    ap.add_argument("--min-count", type=int, default=3, help="how often a word must occur in training to count")
    ap.add_argument("--show", type=int, default=5, help="sentences listed per kind")
    ap.add_argument("--json", help="write the kinds and their sentence numbers (0-based) here")
    args = ap.parse_args(argv)
    return script_args.run(report, args)


def report(args) -> int:
    from grutool.errors import UserError
    from grutool.predict import Predictor  # torch from here on

    p = Predictor(args.run, "cpu")
    if p.cfg.task != "joint":
        raise UserError(f"{args.run}: task {p.cfg.task}; this script reads joint runs (intent + slots)")

    def read(split: str):
        sentences = p.task.read(p.cfg, getattr(p.cfg.data, split), split)
        for s in sentences:
            s.words = [w.lower() for w in s.tokens] if p.cfg.data.lowercase else list(s.tokens)
        return sentences

    seen: dict = collections.defaultdict(collections.Counter)  # word -> its tags in training
    intents = set()
    for s in read("train"):
        intents.add(s.intent)
        for w, t in zip(s.words, s.tags):
            seen[w][t] += 1
    gold = read(args.split)
    preds = p.predict(p.task.read_inputs(p.cfg, getattr(p.cfg.data, args.split), p.run))
    kinds: dict = collections.defaultdict(list)
    for i, (s, pred) in enumerate(zip(gold, preds)):
        kind = kind_of(s, pred, seen, args.min_count, intents)
        if kind:
            kinds[kind].append(i)
    wrong = sum(len(v) for v in kinds.values())
    print(f"{args.run}, {args.split}: {len(gold)} sentences, {len(gold) - wrong} right "
          f"(sentence accuracy {100 * (len(gold) - wrong) / len(gold):.2f}), {wrong} wrong:")
    for kind in KINDS:
        print(f"  {kind:34s} {len(kinds[kind]):4d}")
    for kind in KINDS[2:4]:
        for i in kinds[kind][:args.show]:
            s, pred = gold[i], preds[i]
            diff = ", ".join(f"{w}: {g} -> {q}" for w, g, q in zip(s.words, s.tags, pred["tags"]) if g != q)
            print(f"  [{kind}] {i}: {' '.join(s.words)}\n      {diff}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"run": args.run, "split": args.split, "sentences": len(gold), "min_count": args.min_count,
                       "wrong": wrong, "kinds": {k: kinds[k] for k in KINDS}}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
