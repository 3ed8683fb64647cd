"""Config loading: valid and invalid cases as data files, `--set` overrides, round trip.

Each file under tests/config/cases/invalid/ is one case. Its first lines are comments:

    # error: <substring the UserError message must contain>
    # line: <YAML line the message must cite as `file.yaml:N:COLUMN:`>   (optional)

Config validation never reads data, so the data paths in these files need not exist.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import pytest
import yaml

from grutool.config import Config
from grutool.config_file import load_config, parse_config, to_yaml
from grutool.errors import UserError

CASES = Path(__file__).parent / "cases"
VALID = sorted((CASES / "valid").glob("*.yaml"))
INVALID = sorted((CASES / "invalid").glob("*.yaml"))


def _expectation(path: Path) -> tuple[str, int | None]:
    """The `# error:` substring and optional `# line:` number from a case file's header."""
    error, line = None, None
    for text in path.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"#\s*error:\s?(.*)$", text):
            error = m.group(1).strip()
        elif m := re.match(r"#\s*line:\s*(\d+)\s*$", text):
            line = int(m.group(1))
        elif not text.startswith("#"):
            break
    assert error, f"{path.name}: an invalid case must start with '# error: <expected substring>'"
    return error, line


def test_case_folders_are_not_empty():
    # A glob that finds nothing would make the parametrized tests pass vacuously.
    assert len(VALID) >= 2 and len(INVALID) >= 10


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_valid_config_loads(path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid case should not warn either
        cfg = load_config(path)
    assert isinstance(cfg, Config)
    assert cfg.output_dir  # defaulted to runs/<stem> when the file has none


def test_full_config_sets_every_field_as_written():
    path = CASES / "valid" / "full.yaml"
    cfg = load_config(path)
    assert cfg.model_dump(mode="json") == yaml.safe_load(path.read_text(encoding="utf-8"))


def test_output_dir_defaults_to_runs_and_config_stem():
    cfg = load_config(CASES / "valid" / "minimal.yaml")
    assert Path(cfg.output_dir) == Path("runs") / "minimal"


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_config_is_a_user_error(path):
    expected, line = _expectation(path)
    with pytest.raises(UserError) as info:
        load_config(path)
    message = str(info.value)
    assert expected in message
    assert path.name in message, "the message should name the config file"
    if line is not None:  # file:line:column, as compilers write it (was file:line for the schema and the rules)
        assert re.search(rf"{re.escape(path.name)}:{line}:\d+: ", message), "the message should cite the YAML line"


def test_missing_config_file(tmp_path):
    with pytest.raises(UserError, match="config file not found") as info:
        load_config(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(info.value)


def test_config_that_is_not_a_regular_file(tmp_path):
    # Both were "config file not found"; reading a FIFO would wait for a writer.
    with pytest.raises(UserError, match=r"^/dev/null: not a regular file \(a character device\); give the config"):
        load_config("/dev/null")
    if not hasattr(os, "mkfifo"):
        return
    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(UserError, match=r"fifo.yaml: not a regular file \(a FIFO\); give the config file itself"):
        load_config(tmp_path / "fifo.yaml")


def test_non_utf8_config_file(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"data:\n  train: caf\xe9.tsv\n")
    with pytest.raises(UserError, match="UTF-8") as info:
        load_config(path)
    assert "latin1.yaml" in str(info.value)


# --- --set overrides ----------------------------------------------------------------


@pytest.fixture
def base(tmp_path) -> Path:
    path = tmp_path / "base.yaml"
    path.write_text("data:\n  train: data/train.tsv\nmodel:\n  hidden_size: 8\n  num_layers: 1\n",
                    encoding="utf-8")
    return path


def test_set_overrides_a_value_from_the_file(base):
    cfg = load_config(base, ["model.hidden_size=256"])
    assert cfg.model.hidden_size == 256
    # Nothing else changes.
    plain = load_config(base).model_dump()
    plain["model"]["hidden_size"] = 256
    assert cfg.model_dump() == plain


def test_set_overrides_nested_values_the_file_does_not_mention(base):
    cfg = load_config(base, ["train.lr=0.01", "train.optimizer=sgd", "model.bidirectional=false",
                             "data.column_names=[text, label]", "train.max_steps=null",
                             "output_dir=elsewhere/run"])
    assert cfg.train.lr == 0.01 and cfg.train.optimizer == "sgd"
    assert cfg.model.bidirectional is False
    assert cfg.data.column_names == ["text", "label"]
    assert cfg.train.max_steps is None
    assert cfg.output_dir == "elsewhere/run"
    assert cfg.model.hidden_size == 8  # untouched sibling of an overridden section


def test_set_creates_a_section_missing_from_the_file(tmp_path):
    path = tmp_path / "minimal.yaml"
    path.write_text("data:\n  train: data/train.tsv\n", encoding="utf-8")
    cfg = load_config(path, ["train.epochs=2"])
    assert cfg.train.epochs == 2


def test_later_set_wins(base):
    assert load_config(base, ["model.hidden_size=16", "model.hidden_size=32"]).model.hidden_size == 32


def test_a_sections_mapping_sets_its_fields_and_keeps_the_files_others(base):
    # It replaced the section whole: the file's hidden_size 8 went back to the schema's default, silently.
    cfg = load_config(base, ["model={num_layers: 2, dropout: 0.1}", "data={column_names: [text, label]}"])
    assert (cfg.model.hidden_size, cfg.model.num_layers, cfg.model.dropout) == (8, 2, 0.1)
    assert cfg.data.train == "data/train.tsv" and cfg.data.column_names == ["text", "label"]
    with pytest.raises(UserError) as info:  # a nested section's field, refused for this family, at the --set
        load_config(base, ["data={covariates: {past: [load]}}"])
    assert str(info.value).startswith("--set data={covariates: {past: [load]}}: data.covariates: only for task")


def test_a_field_set_in_a_sections_mapping_is_located_at_that_set(base):
    with pytest.raises(UserError) as info:  # hidden_size is on line 4 of the file too: the --set gave this one
        load_config(base, ["model={hidden_size: 0}"])
    assert str(info.value).startswith("--set model={hidden_size: 0}: model.hidden_size: input should be greater")


@pytest.mark.parametrize("item, name", [("model={hidden_size: 8, hidden_size: 16}", "hidden_size"),
                                        ("data={covariates: {past: [a], past: [b]}}", "covariates.past")])
def test_a_key_given_twice_in_a_sets_mapping_is_refused(base, item, name):
    # YAML keeps the last silently (a config file's duplicate was refused already).
    with pytest.raises(UserError, match=rf"--set .*: {name} is given twice in the mapping; keep one of them"):
        load_config(base, [item])


@pytest.mark.parametrize("item, expected", [
    ("model.hidden_size=abc", "model.hidden_size: input should be a valid integer"),
    ("model.hidden_size=0", "model.hidden_size: input should be greater than 0"),
    ("model.dropout=1.5", "model.dropout: input should be less than 1"),
    ("model.cell=lstmm", "model.cell: input should be 'gru', 'lstm' or 'rnn'"),
    ("model.bidirectional=maybe", "model.bidirectional: input should be a valid boolean"),
])
def test_set_is_type_checked_and_names_the_override(base, item, expected):
    with pytest.raises(UserError) as info:
        load_config(base, [item])
    message = str(info.value)
    assert f"--set {item}" in message
    assert expected in message


def test_a_cross_field_error_names_the_set_that_broke_the_rule(base):
    # It named the config file, which holds no layer_norm: the value came from the command line.
    with pytest.raises(UserError) as info:
        load_config(base, ["model.layer_norm=true"])
    assert str(info.value).startswith("--set model.layer_norm=true: model.layer_norm: acts between")


@pytest.mark.parametrize("item, expected", [
    ("model.hiden_size=3", "--set model.hiden_size: unknown key; did you mean 'hidden_size'?"),
    ("modle.hidden_size=3", "--set modle.hidden_size: 'modle' is not a config section; did you mean 'model'?"),
    ("train.learning_rate=0.1", "--set train.learning_rate: unknown key"),
])
def test_set_unknown_key_suggests(base, item, expected):
    with pytest.raises(UserError) as info:
        load_config(base, [item])
    assert expected in str(info.value)


@pytest.mark.parametrize("item, expected", [
    ("model.hidden_size", "--set model.hidden_size: expected key.path=value"),
    ("=3", "--set =3: empty key"),
    # It was read as the string '[a, b' and refused as "input should be a valid list (got '[a, b')".
    ("data.column_names=[a, b", "--set data.column_names=[a, b: not a YAML list or mapping (expected ',' or ']'"),
    ("model.cell=GRU", "(got 'GRU'); did you mean 'gru'?"),
])
def test_set_bad_syntax(base, item, expected):
    with pytest.raises(UserError) as info:
        load_config(base, [item])
    assert expected in str(info.value)


# --- cross-field warnings -----------------------------------------------------------


def test_momentum_under_another_optimizer_warns(base):
    # It was silent; an error would refuse a tune space over train.optimizer [sgd, adam] with sgd's momentum set.
    with pytest.warns(UserWarning, match=r"train\.momentum=0\.5 has no effect with train\.optimizer adam"):
        load_config(base, ["train.momentum=0.5"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(base, ["train.momentum=0.5", "train.optimizer=sgd"])


def test_dropout_with_one_layer_warns(base):
    with pytest.warns(UserWarning, match=r"model\.dropout=0\.3 has no effect with model\.num_layers=1"):
        cfg = load_config(base, ["model.dropout=0.3"])
    assert cfg.model.dropout == 0.3  # a warning, not an error


def test_dropout_with_one_layer_warns_once(base):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_config(base, ["model.dropout=0.3"])
    dropout = [w for w in caught if "model.dropout" in str(w.message)]
    assert len(dropout) == 1, [str(w.message) for w in dropout]


def test_dropout_with_two_layers_does_not_warn(base):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_config(base, ["model.dropout=0.3", "model.num_layers=2"])


# --- the resolved config --------------------------------------------------------------


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.stem)
def test_resolved_config_round_trips(path):
    cfg = load_config(path)
    text = to_yaml(cfg)
    again = parse_config(yaml.safe_load(text))
    assert again == cfg
    assert to_yaml(again) == text


def test_resolved_config_round_trips_with_overrides(base):
    cfg = load_config(base, ["model.hidden_size=256", "train.lr=0.02", "data.column_names=[label, text]"])
    assert parse_config(yaml.safe_load(to_yaml(cfg))) == cfg


def test_a_saved_config_reads_back_through_grutool_s_own_loader(base, tmp_path):
    # Strings that grutool's YAML reads as numbers (1e-3: a float, as `lr: 1e-3` means) were written unquoted,
    # so a run's config.yaml read back with a column named 0.001, and its eval and infer refused the run.
    cfg = load_config(base, ["data.text_column='1e-3'", "data.label_column='2E5'", "train.lr=1e-3"])
    assert cfg.data.text_column == "1e-3" and cfg.train.lr == 0.001
    saved = tmp_path / "config.yaml"
    saved.write_text(to_yaml(cfg), encoding="utf-8")
    assert load_config(saved) == cfg


def test_resolved_config_has_every_default_filled(base):
    raw = yaml.safe_load(to_yaml(load_config(base)))
    assert set(raw) == set(Config.model_fields)
    for section in ("data", "model", "train"):
        assert set(raw[section]) == set(Config.model_fields[section].annotation.model_fields)


# A config names only what it changes: a field whose default depends on the family takes the family's when left
# out (`Task.default`), where the schema's classifier default used to stop a minimal config, one error at a time.
FAMILY_MINIMAL = {
    "tagger": ({"train": "data/train.conll", "scheme": "iob2"}, "token_accuracy", True),
    "seq2seq": ({"train": "data/pairs.tsv"}, "bleu", True),
    "lm": ({"train": "data/lm/train.tsv", "tokenizer": "char"}, "loss", False),
    "regressor": ({"train": "data/numeric/train.ts", "format": "ts"}, "rmse", True),
    "forecast": ({"train": "data/sines/sines.csv", "time_column": "date", "fractions": [0.7, 0.1, 0.2],
                  "input_length": 48, "horizon": 24}, "mse", False),
}


@pytest.mark.parametrize("task", FAMILY_MINIMAL)
def test_a_minimal_config_takes_its_familys_defaults(task):
    data, monitor, bidirectional = FAMILY_MINIMAL[task]
    cfg = parse_config({"task": task, "data": dict(data)}, "min.yaml")
    assert (cfg.train.monitor, cfg.model.bidirectional) == (monitor, bidirectional)
    # An empty section (`train:` with nothing under it) gets them too; what a config sets is kept as written.
    assert parse_config({"task": task, "data": dict(data), "train": None}, "min.yaml").train.monitor == monitor
    kept = parse_config({"task": task, "data": dict(data), "train": {"monitor": "loss"}}, "min.yaml")
    assert kept.train.monitor == "loss"


@pytest.mark.parametrize("data, monitor", [
    ({"train": "pairs.tsv"}, "bleu"),
    ({"train": "pairs.tsv", "tokenizer": "char"}, "exact_match"),          # bleu is refused on characters
    ({"train": "pairs.tsv", "target_tokenizer": "char"}, "exact_match"),
    ({"train": "train", "format": "cmudict"}, "exact_match"),              # a dictionary has no bleu
    ({"train": "pairs.tsv", "dictionary": True}, "exact_match"),
])
def test_a_seq2seq_monitor_left_out_is_one_its_data_allows(data, monitor):
    assert parse_config({"task": "seq2seq", "data": data}, "s.yaml").train.monitor == monitor


def test_a_family_default_set_against_its_rule_is_still_refused():
    with pytest.raises(UserError, match="model.bidirectional: a language model reads left to right"):
        parse_config({"task": "lm", "data": {"train": "x.tsv"}, "model": {"bidirectional": True}}, "lm.yaml")


def test_a_saved_config_keeps_what_it_was_trained_with():
    # config.yaml sets every field: the family defaults fill nothing in (a tagger trained with monitor loss).
    raw = {"task": "tagger", "data": {"train": "t.conll", "scheme": "iob2"}, "train": {"monitor": "loss"}}
    saved = yaml.safe_load(to_yaml(parse_config(raw, "t.yaml")))
    assert parse_config(saved, "config.yaml", saved=True).train.monitor == "loss"


def test_the_quoted_list_a_number_message_suggests_is_accepted():
    raw = {"task": "regressor", "data": {"train": "t.csv", "channels": [1, 2]}}
    with pytest.raises(UserError) as info:
        parse_config(raw, "r.yaml")
    suggested = re.search(r'--set "([^"]+)"', str(info.value)).group(1)
    cfg = parse_config({"task": "regressor", "data": {"train": "t.csv"}}, "r.yaml", overrides=[suggested])
    assert cfg.data.channels == ["1", "2"]


@pytest.mark.parametrize("setting, idle", [
    ({"model": {"residual": True, "num_layers": 1}}, "model.residual"),
    ({"train": {"tensorboard": ""}}, "train.tensorboard"),
])
def test_a_saved_run_with_a_setting_that_changed_nothing_still_loads(setting, idle):
    # Runs trained before these were refused may have one; it goes back to its default (config_file.unread_fields).
    from grutool.config_file import unread_fields

    raw = {"task": "classifier", "data": {"train": "t.tsv"}}
    for section, values in setting.items():
        raw[section] = dict(values)
    assert idle in unread_fields(raw)
    with pytest.raises(UserError, match=idle.replace(".", r"\.")):
        parse_config(yaml.safe_load(yaml.safe_dump(raw)), "my.yaml")
    cfg = parse_config(raw, "config.yaml", saved=True)
    section, name = idle.split(".")
    assert getattr(getattr(cfg, section), name) == type(getattr(cfg, section)).model_fields[name].default


@pytest.mark.parametrize("data", [
    {"train": "d/train.ts[:80%]", "validation": "d/train.ts[70%:]"},            # slices that overlap
    {"train": "d/train.ts", "header": False, "column_names": ["a", "b"]},       # a header setting a .ts never reads
])
def test_a_saved_run_older_rules_accepted_stays_readable(data):
    # Refused in a config the user writes; a run trained before these rules keeps loading (eval, infer, resume).
    raw = {"task": "classifier", "data": dict(data)}
    with pytest.raises(UserError):
        parse_config(yaml.safe_load(yaml.safe_dump(raw)), "my.yaml")
    saved = yaml.safe_load(to_yaml(parse_config(raw, "config.yaml", saved=True)))
    assert parse_config(saved, "config.yaml", saved=True).data.train == data["train"]


def test_an_overlap_given_by_a_set_is_located_at_it_and_an_absolute_path_is_the_same_file(tmp_path, monkeypatch):
    # `--set data.train=/abs/path/stream.txt[:95%]` beside the config's relative validation slice overlapped
    # unseen (the paths were compared as written), and an overlap a --set made was located at the file's line.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "s.txt").write_text("x\n" * 10)
    config = tmp_path / "c.yaml"
    config.write_text("task: lm\ndata:\n  train: d/s.txt[:90%]\n  validation: d/s.txt[90%:]\n", encoding="utf-8")
    item = f"data.train={tmp_path / 'd' / 's.txt'}[:95%]"
    with pytest.raises(UserError) as info:
        load_config(config, [item])
    assert str(info.value).startswith(f"--set {item}: data.validation: [90%:] of d/s.txt overlaps data.train, "
                                      f"[:95%] of it (90–95 % of the file in both)"), str(info.value)


def test_a_minimal_dictionary_config_reads_letters_and_phonemes():
    # format cmudict with the word tokenizer made every word one token (a 112,000-entry vocabulary, validation
    # words all <unk>): left out, the reading is configs/g2p.yaml's; what a config sets is kept.
    d = parse_config({"task": "seq2seq", "data": {"train": "train", "format": "cmudict"}}, "g.yaml").data
    assert (d.tokenizer, d.target_tokenizer, d.target_lowercase) == ("char", "whitespace", False)
    d = parse_config({"task": "seq2seq", "data": {"train": "p.tsv"}}, "s.yaml").data
    assert (d.tokenizer, d.target_tokenizer, d.target_lowercase) == ("word", None, None)
    kept = parse_config({"task": "seq2seq", "data": {"train": "train", "format": "cmudict", "target_lowercase": True}},
                        "g.yaml").data
    assert kept.target_lowercase is True and kept.tokenizer == "char"
