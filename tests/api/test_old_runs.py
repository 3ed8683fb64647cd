"""Run directories written before the house move (issue 21) load and predict as they did.

tests/fixtures/runs_v1/ holds tiny runs of every family (config.yaml, vocabularies, best.pt) written by
the commit that added them, with what `infer --jsonl` printed then (expected.json). Any later change to
checkpoint keys, vocabulary files or config fields must still read them; predictions must agree (labels,
tags, texts exactly; probabilities and scores to 1e-5, for other CPUs' float rounding).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest

from conftest import invoke

RUNS = Path(__file__).resolve().parents[1] / "fixtures" / "runs_v1"


def close(got, want, path: str = "") -> None:
    if isinstance(want, float) or isinstance(got, float):
        assert math.isclose(got, want, rel_tol=1e-5, abs_tol=1e-5), f"{path}: {got} != {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and set(got) == set(want), f"{path}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            close(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            close(g, w, f"{path}[{i}]")
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def test_every_family_has_a_run():
    assert {p.name for p in RUNS.iterdir() if p.is_dir()} >= {"classifier", "tagger", "joint", "seq2seq", "lm",
                                                               "lm_stream"}


@pytest.mark.parametrize("name", sorted(p.name for p in RUNS.iterdir() if p.is_dir()))
def test_a_run_from_before_predicts_as_it_did(name, tmp_path):
    run = Path(shutil.copytree(RUNS / name, tmp_path / name))
    expected = json.loads((run / "expected.json").read_text(encoding="utf-8"))
    result = invoke("infer", run, *expected["args"], "--jsonl")
    assert result.exit_code == 0, result.output
    got = [json.loads(line) for line in result.stdout.splitlines()]
    want = [json.loads(line) for line in expected["jsonl"].splitlines()]
    assert want, "the fixture recorded no output"
    close(got, want)
