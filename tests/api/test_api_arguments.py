"""The Python API refuses what the CLI's options refuse, with one UserError naming the keyword argument: never a
traceback from deep inside, never a silently empty or wrong answer (the runs are tests/fixtures/runs_v1's)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from grutool import evaluate
from grutool.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
RUNS = ROOT / "tests" / "fixtures" / "runs_v1"
TEST_TSV = str(ROOT / "data" / "sentiment" / "test.tsv")


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("runs")
    return {name: Path(shutil.copytree(RUNS / name, tmp / name)) for name in ("classifier", "tagger", "seq2seq", "lm",
                                                                               "lm_stream")}


@pytest.fixture(scope="module")
def predictors(runs):
    from grutool import Predictor

    return {name: Predictor(path, "cpu") for name, path in runs.items()}


@pytest.mark.parametrize("name", ["classifier", "tagger", "seq2seq"])
@pytest.mark.parametrize("batch_size", [0, -1, 2.0, True, "8"])
def test_predict_refuses_a_batch_size_the_cli_refuses(predictors, name, batch_size):
    with pytest.raises(UserError, match=r"^batch_size: must be an int >= 1 \(got ") as e:
        predictors[name].predict(["a b"], batch_size=batch_size)
    assert e.value.options == ("batch_size",) and "\n" not in str(e.value)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, False])
def test_evaluate_refuses_a_batch_size_the_cli_refuses(runs, batch_size):
    with pytest.raises(UserError, match=r"^batch_size: must be an int >= 1 .*None: the run's train.batch_size"):
        evaluate(runs["classifier"], data=TEST_TSV, batch_size=batch_size, device="cpu")


def test_evaluate_batch_size_none_is_the_runs_and_one_scores_the_same(runs):
    default = evaluate(runs["classifier"], data=TEST_TSV, device="cpu")
    one = evaluate(runs["classifier"], data=TEST_TSV, batch_size=1, device="cpu")
    assert default["n"] == one["n"] > 0 and default["accuracy"] == one["accuracy"]


@pytest.mark.parametrize("split,said", [("tset", "'tset' is not one of train, validation, test (did you mean 'test'?)"),
                                        ("format", "'format' is not one of train, validation, test;"),
                                        ("label_column", "'label_column' is not one of"),
                                        (None, "None is not one of"), (3, "3 is not one of")])
def test_evaluate_scores_only_the_splits_eval_names(runs, split, said):
    # `split` was any data field's name: `format` read its value `auto` as a file
    with pytest.raises(UserError) as e:
        evaluate(runs["classifier"], split=split, device="cpu")
    assert str(e.value).startswith(f"split: {said}") and e.value.options == ("split",), str(e.value)
