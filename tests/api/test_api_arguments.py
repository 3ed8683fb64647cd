"""The Python API refuses what the CLI's options refuse, with one UserError naming the keyword argument: never a
traceback from deep inside, never a silently empty or wrong answer (the runs are tests/fixtures/runs_v1's)."""

from __future__ import annotations

import re
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


def test_numpy_numbers_are_options_of_their_kind_and_a_list_input_is_told_how_to_write_it(predictors, runs):
    """np.int64(2) as a beam or np.float32(0.5) as a temperature were refused (`must be an int, not an int64`);
    a tagger's input given as a list of tokens was told only `each input is one text`; evaluate(split=None,
    data=FILE), where the split is unused, was refused."""
    import numpy as np

    seq2seq = predictors["seq2seq"]
    assert seq2seq.predict(["12"], beam=np.int64(2)) == seq2seq.predict(["12"], beam=2)
    lm = predictors["lm_stream"]
    assert lm.predict(["a"], temperature=np.float32(0.5), max_length=3, num=np.int64(1)) == \
        lm.predict(["a"], temperature=0.5, max_length=3, num=1)
    with pytest.raises(UserError, match=r"^texts\[0\]: a list, not a str; each input is one text: tokens joined by "
                                        r"spaces, a numeric sequence as '0.5,1.2'"):
        predictors["tagger"].predict([["Hiro", "Nguyen"]])
    assert evaluate(runs["classifier"], split=None, data=TEST_TSV, device="cpu")["n"] > 0


def test_predict_takes_any_integer_type_as_the_batch_size(predictors):
    """numpy's int64 (a batch size read from an array of sizes) is an integer: refused by the first check."""
    import numpy as np

    texts = ["a b", "c", "d e f"]
    assert predictors["classifier"].predict(texts, batch_size=np.int64(2)) == \
        predictors["classifier"].predict(texts, batch_size=2)


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


@pytest.mark.parametrize("name", ["classifier", "tagger", "seq2seq", "lm"])
@pytest.mark.parametrize("bad,said", [(None, "texts[1]: None, not a str; each input is one text"),
                                      (1, "texts[1]: an int, not a str; each input is one text"),
                                      (b"x", "texts[1]: a bytes, not a str; decode it to a str")])
def test_predict_names_an_input_that_is_not_a_str(predictors, name, bad, said):
    # a TypeError in data/tokenize.py before (numeric runs: an AttributeError in data/numeric.py)
    with pytest.raises(UserError) as e:
        predictors[name].predict(["a b", bad])
    assert str(e.value) == said


@pytest.mark.parametrize("texts,said", [(None, "texts: a list of str, not None;"),
                                        (3, "texts: a list of str, not an int;"),
                                        (b"a b", "texts: a list of inputs, not one bytes; write predict(['a b'])")])
def test_predict_refuses_texts_that_are_no_list_of_inputs(predictors, texts, said):
    with pytest.raises(UserError) as e:
        predictors["classifier"].predict(texts)
    assert str(e.value).startswith(said) and e.value.options == ("texts",), str(e.value)


@pytest.mark.parametrize("name", ["classifier", "seq2seq"])
def test_predict_reads_any_iterable_of_str_as_the_list(predictors, name):
    texts = ["a b", "b a c", "c"]
    want = predictors[name].predict(list(texts), batch_size=2)
    assert predictors[name].predict(tuple(texts), batch_size=2) == want
    assert predictors[name].predict((t for t in texts), batch_size=2) == want  # an IndexError before


@pytest.mark.parametrize("name,options,said", [
    ("seq2seq", {"beam": "3"}, "beam: must be an int, not a str ('3')"),
    ("seq2seq", {"beam": True}, "beam: must be an int, not a bool (True)"),
    ("seq2seq", {"attention": 1}, "attention: must be a bool, not an int (1)"),
    ("lm", {"num": 2.0}, "num: must be an int, not a float (2.0)"),
    ("lm", {"temperature": "hot"}, "temperature: must be a float, not a str ('hot')"),
    ("lm", {"condition": 3}, "condition: must be a str, not an int (3)"),
])
def test_predict_options_of_the_wrong_type_are_named(predictors, name, options, said):
    with pytest.raises(UserError) as e:
        predictors[name].predict(["12"], **options)
    assert str(e.value) == said and e.value.options == tuple(options)


def test_an_int_is_a_float_option(predictors):
    lm = predictors["lm_stream"]
    assert lm.predict(["a"], temperature=1, max_length=3) == lm.predict(["a"], temperature=1.0, max_length=3)


def test_evaluate_names_a_beam_of_the_wrong_type(runs):
    with pytest.raises(UserError, match=r"^beam: must be an int, not a str \('3'\)$"):
        evaluate(runs["seq2seq"], beam="3", device="cpu")


@pytest.mark.parametrize("chunk,said", [(None, "text: None, not a str; feed one chunk of text at a time"),
                                        (b"ab", "text: a bytes, not a str; decode it to a str")])
def test_an_lm_stream_refuses_a_chunk_that_is_not_a_str(predictors, chunk, said):
    with pytest.raises(UserError) as e:
        predictors["lm_stream"].stream().feed(chunk)
    assert str(e.value) == said


CONFIG = str(ROOT / "configs" / "sentiment.yaml")


@pytest.mark.parametrize("overrides,said", [
    ("train.epochs=5", "overrides: a list of key.path=value strings, not one str; write "
                       "load_config(path, ['train.epochs=5'])"),  # `--set t: expected key.path=value` before
    (5, "overrides: a list of key.path=value strings, not 5;"),
    (["train.epochs=5", 3], "overrides[1]: 3 is not a key.path=value str;"),
])
def test_load_config_refuses_overrides_that_are_no_list_of_str(overrides, said):
    from grutool import load_config

    with pytest.raises(UserError) as e:
        load_config(CONFIG, overrides)
    assert str(e.value).startswith(said) and e.value.options == ("overrides",), str(e.value)


@pytest.mark.parametrize("path", [None, 3, {"task": "classifier"}])
def test_load_config_refuses_a_path_that_is_no_path(path):
    from grutool import load_config

    with pytest.raises(UserError, match=r"^path: a config file's path \(a str or Path\), not "):  # a pathlib TypeError
        load_config(path)


def test_load_config_reads_a_list_or_tuple_of_overrides_and_a_path():
    from grutool import load_config

    assert load_config(Path(CONFIG), ("train.epochs=5",)).train.epochs == 5
    assert load_config(CONFIG, ["train.epochs=4"]).train.epochs == 4


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "cpu:0", None])
def test_predictor_and_evaluate_refuse_a_device_the_cli_refuses(runs, device):
    from grutool import Predictor

    said = rf"^device: {re.escape(repr(device))} is not one of auto, cpu, cuda \(or cuda:N, one GPU\)$"
    with pytest.raises(UserError, match=said) as e:  # torch's RuntimeError before
        Predictor(runs["classifier"], device=device)
    assert e.value.options == ("device",)
    with pytest.raises(UserError, match=said):
        evaluate(runs["classifier"], device=device)


def test_a_library_call_may_name_one_gpu_as_torch_does(runs):
    """`cuda:1` worked through torch before the device names were checked: the library keeps it."""
    import torch

    from grutool import Predictor
    from grutool.training.device import resolve_device

    if torch.cuda.is_available():
        assert resolve_device("cuda:0", "device") == torch.device("cuda:0")
    else:
        with pytest.raises(UserError, match=r"^device: 'cuda:0' requested but CUDA is not available"):
            Predictor(runs["classifier"], device="cuda:0")


@pytest.mark.parametrize("name,options,said", [
    ("classifier", {"foo": 3}, "foo: not an option of predict; a task classifier run takes no options"),
    ("seq2seq", {"bean": 3}, "bean: not an option of predict; the options of a task seq2seq run are: beam, attention"),
    ("seq2seq", {"foo": 1, "bar": 2}, "bar, foo: not options of predict; the options of a task seq2seq run are: "),
])
def test_an_option_no_family_takes_is_said_so(predictors, name, options, said):
    # `foo: for no runs only (... is task classifier)` before
    with pytest.raises(UserError) as e:
        predictors[name].predict(["12"], **options)
    assert str(e.value).startswith(said), str(e.value)


def test_an_option_of_another_family_names_that_family(predictors):
    with pytest.raises(UserError, match=r"^beam: for seq2seq runs only \(.*classifier is task classifier\)$"):
        predictors["classifier"].predict(["a"], beam=3)


@pytest.mark.parametrize("name,long,limit", [("classifier", " ".join(["good"] * 70), 64),
                                             ("seq2seq", "1" * 25, 20)])
def test_an_answer_says_its_input_was_cut_to_data_max_length(predictors, name, long, limit, caplog):
    """A text longer than the run's data.max_length is read to that many tokens: infer's log said so, but a
    server's client got the answer with no word of it. Each answer now carries `truncated_to`."""
    short = "good" if name == "classifier" else "12"
    with caplog.at_level("WARNING", logger="grutool"):
        got = predictors[name].predict([short, long])
    assert "truncated_to" not in got[0] and got[1]["truncated_to"] == limit, got
    assert any("max_length" in r.getMessage() for r in caplog.records)  # the log says it as before


def test_a_stream_refuses_an_option_it_does_not_take_and_a_stream_model_has_no_end(predictors):
    """`stream(temperature=1.0)` of an lm was Python's TypeError (`open_stream() got an unexpected keyword
    argument`); `end()` of a stream model (train.bptt) was a TypeError before any feed and, after one, scored an
    <eos> its one text never holds."""
    with pytest.raises(UserError, match=r"^temperature: not an option of a task lm stream; it takes condition$"):
        predictors["lm"].stream(temperature=1.0)
    stream = predictors["lm_stream"].stream()
    with pytest.raises(UserError, match=r"^end: a stream model \(train\.bptt\)"):
        stream.end()
    stream.feed("ab")
    with pytest.raises(UserError, match=r"^end: a stream model"):
        stream.end()
    assert isinstance(predictors["lm"].stream(condition="zuri").end(), float)  # a line model's text ends: <eos> scored
