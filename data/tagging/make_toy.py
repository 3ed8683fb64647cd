"""Write the small tagging datasets in this folder (deterministic; run from anywhere).

    ner/{train,validation,test}.conll   toy named entities, CoNLL columns `token POS tag` (IOB2),
                                        with -DOCSTART- lines; many validation and test names
                                        never occur in train (what char features are for)
    travel/{train,validation,test}/     toy flight requests, parallel seq.in / seq.out (IOB2) / label
                                        (intent), lower-cased like ATIS; some validation and
                                        test cities never occur in train

    python data/tagging/make_toy.py
"""

from __future__ import annotations

import random
from pathlib import Path

HERE = Path(__file__).resolve().parent

# --- named entities --------------------------------------------------------------------

FIRST = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal", "Lucia"]
LAST = ["Schmidt", "Okafor", "Rossi", "Nguyen", "Larsen", "Moreau", "Tanaka", "Silva", "Novak", "Keller"]
ORGS = [["Acme", "Corp"], ["Globex"], ["Initech"], ["Umbrella", "Labs"], ["Stark", "Industries"],
        ["Wayne", "Foods"], ["Hooli"], ["Vandelay", "Imports"]]
LOCS = [["Paris"], ["Berlin"], ["New", "York"], ["Lagos"], ["Osaka"], ["Lima"], ["Cape", "Town"], ["Oslo"],
        ["San", "Diego"], ["Quito"]]
# Seen only in the test split.
NEW_FIRST = ["Mirela", "Tobias", "Yusuf", "Zofia"]
NEW_LAST = ["Petrova", "Abara", "Lindqvist"]
NEW_ORGS = [["Cyberdyne"], ["Soylent", "Group"]]
NEW_LOCS = [["Nairobi"], ["Santa", "Fe"]]

NER_TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .",
    "{PER} visited {LOC} last week .",
    "the {ORG} office in {LOC} hired {PER} .",
    "{PER} and {PER} met at {ORG} .",
    "yesterday {ORG} opened a shop in {LOC} .",
    "{PER} moved from {LOC} to {LOC} in May .",
    "according to {PER} , {ORG} will grow .",
    "{ORG} bought {ORG} for a lot of money .",
    "she told {PER} about the trip to {LOC} .",
]
POS = {".": ".", ",": ",", "the": "DT", "a": "DT", "in": "IN", "at": "IN", "for": "IN", "from": "IN", "to": "TO",
       "about": "IN", "of": "IN", "and": "CC", "she": "PRP", "will": "MD"}


def _entity(kind: str, rng: random.Random, new: bool) -> list[str]:
    fresh = new and rng.random() < 0.6
    if kind == "PER":
        return [rng.choice(NEW_FIRST if fresh else FIRST), rng.choice(NEW_LAST if fresh else LAST)]
    if kind == "ORG":
        return list(rng.choice(NEW_ORGS if fresh else ORGS))
    return list(rng.choice(NEW_LOCS if fresh else LOCS))


def ner_sentence(rng: random.Random, new: bool) -> list[tuple[str, str, str]]:
    rows = []
    for piece in rng.choice(NER_TEMPLATES).split():
        if piece.startswith("{"):
            kind = piece[1:-1]
            for i, word in enumerate(_entity(kind, rng, new)):
                rows.append((word, "NNP", f"{'B' if i == 0 else 'I'}-{kind}"))
        else:
            rows.append((piece, POS.get(piece, "NN"), "O"))
    return rows


def write_ner(n: dict[str, int], rng: random.Random) -> None:
    out = HERE / "ner"
    out.mkdir(exist_ok=True)
    for split, count in n.items():
        lines = ["-DOCSTART- -X- O", ""]
        for i in range(count):
            if i and i % 50 == 0:
                lines += ["-DOCSTART- -X- O", ""]
            lines += [" ".join(row) for row in ner_sentence(rng, new=split != "train")] + [""]
        (out / f"{split}.conll").write_text("\n".join(lines), encoding="utf-8")


# --- travel requests (joint intent + slots) -----------------------------------------------

CITIES = [["boston"], ["denver"], ["dallas"], ["atlanta"], ["new", "york"], ["san", "francisco"],
          ["salt", "lake", "city"], ["pittsburgh"], ["seattle"], ["miami"]]
NEW_CITIES = [["tucson"], ["las", "vegas"]]
DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
AIRLINES = [["delta"], ["united"], ["american", "airlines"], ["alaska", "air"]]
TRAVEL = {
    "flight": ["show me flights from {fromloc} to {toloc}",
               "i want to fly from {fromloc} to {toloc} on {day}",
               "list {airline} flights from {fromloc} to {toloc}",
               "flights to {toloc} leaving {fromloc} {day} morning"],
    "airfare": ["how much is a ticket from {fromloc} to {toloc}",
                "what is the {cost} fare from {fromloc} to {toloc}",
                "show me {cost} fares to {toloc} on {day}"],
    "ground_service": ["what ground transportation is available in {city}",
                       "how do i get downtown from the {city} airport"],
    "airline": ["which airlines fly from {fromloc} to {toloc}",
                "does {airline} fly to {toloc}"],
}
SLOTS = {"fromloc": "fromloc.city_name", "toloc": "toloc.city_name", "city": "city_name",
         "day": "depart_date.day_name", "airline": "airline_name", "cost": "cost_relative"}


def travel_sentence(rng: random.Random, new: bool) -> tuple[list[str], list[str], str]:
    intent = rng.choice(sorted(TRAVEL))
    words, tags = [], []
    for piece in rng.choice(TRAVEL[intent]).split():
        if not piece.startswith("{"):
            words.append(piece)
            tags.append("O")
            continue
        slot = piece[1:-1]
        if slot in ("fromloc", "toloc", "city"):
            value = rng.choice(NEW_CITIES if new and rng.random() < 0.3 else CITIES)
        elif slot == "day":
            value = [rng.choice(DAYS)]
        elif slot == "airline":
            value = rng.choice(AIRLINES)
        else:
            value = [rng.choice(["cheapest", "lowest"])]
        words += value
        tags += [f"{'B' if i == 0 else 'I'}-{SLOTS[slot]}" for i in range(len(value))]
    return words, tags, intent


def write_travel(n: dict[str, int], rng: random.Random) -> None:
    for split, count in n.items():
        out = HERE / "travel" / split
        out.mkdir(parents=True, exist_ok=True)
        rows = [travel_sentence(rng, new=split != "train") for _ in range(count)]
        for name, column in (("seq.in", 0), ("seq.out", 1)):
            (out / name).write_text("".join(" ".join(r[column]) + "\n" for r in rows), encoding="utf-8")
        (out / "label").write_text("".join(r[2] + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    write_ner({"train": 300, "validation": 60, "test": 60}, random.Random(5))
    write_travel({"train": 300, "validation": 60, "test": 60}, random.Random(7))
