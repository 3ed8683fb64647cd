"""The run directory never takes a user's files: found by grutool's own marker, cleared file by file.

Issue 20's data-loss repro: `grutool train exp/config.yaml -o exp`, where exp/ is the user's project
(their config, data, notes, a .git), used to print "an earlier run stopped before its first checkpoint;
starting over" and delete everything in exp/.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import torch
import yaml

from conftest import assert_user_error, invoke, tiny_config
from grutool import rundir, runs
from grutool.config_file import parse_config
from grutool.errors import TrainingInterrupted
from grutool.training.callbacks import Callback
from grutool.training.loop import train


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def users_project(tmp_path: Path) -> Path:
    """A user's folder: their own config.yaml (a valid grutool config), data, notes and a .git."""
    exp = tmp_path / "exp"
    raw = tiny_config(exp, epochs=1)  # writes exp/train.tsv, exp/val.tsv
    raw["output_dir"] = str(exp)
    (exp / "config.yaml").write_text("# my experiment, with comments\n" + yaml.safe_dump(raw), encoding="utf-8")
    (exp / "notes.md").write_text("what I tried on Monday\n", encoding="utf-8")
    (exp / ".git").mkdir()
    (exp / ".git" / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
    (exp / "vocab.json").write_text('{"mine": true}\n', encoding="utf-8")  # a name grutool also uses
    return exp


@pytest.mark.parametrize("flags", [[], ["--resume"], ["--overwrite"]], ids=["plain", "resume", "overwrite"])
@pytest.mark.parametrize("where", ["path", "dot"])
def test_training_into_a_users_folder_keeps_every_file(tmp_path, monkeypatch, flags, where):
    exp = users_project(tmp_path)
    before = snapshot(exp)
    if where == "dot":
        monkeypatch.chdir(exp)
        result = invoke("train", "config.yaml", "-o", ".", *flags)
    else:
        monkeypatch.chdir(tmp_path)
        result = invoke("train", exp / "config.yaml", "-o", exp, *flags)
    line = assert_user_error(result, "is not a grutool run directory", "output-dir")
    assert "starting over" not in result.output, line
    assert snapshot(exp) == before, "a user's file was changed or removed"


def _trained(tmp_path: Path, epochs: int = 1) -> tuple[dict, Path]:
    raw = tiny_config(tmp_path, epochs=epochs)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert invoke("train", cfg, "-q").exit_code == 0
    return raw, cfg


def test_a_run_is_marked_and_overwrite_removes_only_what_grutool_wrote(tmp_path):
    raw, cfg = _trained(tmp_path)
    run = tmp_path / "run"
    assert (run / rundir.MARKER).is_file() and rundir.is_run(run)
    (run / "my_notes.txt").write_text("keep me", encoding="utf-8")
    (run / "analysis").mkdir()
    (run / "analysis" / "fig.png").write_bytes(b"png")
    (run / "model.onnx").write_bytes(b"an old export")
    (run / "model.onnx.json").write_text("{}", encoding="utf-8")
    (run / ".model.onnx.abc.tmp.data").write_bytes(b"an old export's leftovers")
    (run / "tensorboard").mkdir()
    (run / "tensorboard" / "events.out.tfevents.1.host").write_bytes(b"old events")
    old_best = (run / rundir.BEST).read_bytes()
    result = invoke("train", cfg, "-q", "--overwrite", "--set", "train.seed=7")
    assert result.exit_code == 0, result.output
    assert (run / "my_notes.txt").read_text(encoding="utf-8") == "keep me"
    assert (run / "analysis" / "fig.png").read_bytes() == b"png"
    for gone in ("model.onnx", "model.onnx.json", ".model.onnx.abc.tmp.data", "tensorboard"):
        assert not (run / gone).exists(), gone
    assert (run / rundir.BEST).read_bytes() != old_best and (run / rundir.MARKER).is_file()


def test_a_folder_with_user_files_and_no_marker_is_refused_even_with_overwrite(tmp_path):
    """The old guard asked only for config.yaml, a name users use too."""
    raw, cfg = _trained(tmp_path)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "config.yaml").write_text("model: {}\n", encoding="utf-8")
    (folder / "data.tsv").write_text("a\tb\n", encoding="utf-8")
    before = snapshot(folder)
    for flags in ([], ["--overwrite"], ["--resume"]):
        assert_user_error(invoke("train", cfg, "-o", folder, *flags), "not a grutool run directory")
    assert snapshot(folder) == before


def test_a_run_of_an_earlier_version_without_the_marker_is_still_a_run(tmp_path):
    raw, cfg = _trained(tmp_path)
    run = tmp_path / "run"
    (run / rundir.MARKER).unlink()
    assert rundir.is_run(run)
    assert_user_error(invoke("train", cfg, "-q"), "exists and is not empty", "--overwrite")
    r = invoke("train", cfg, "-q", "--resume", "--set", "train.epochs=2")
    assert r.exit_code == 0, r.output
    r = invoke("train", cfg, "-q", "--overwrite")
    assert r.exit_code == 0, r.output
    assert (run / rundir.MARKER).is_file()


def _classifier_run_saved_with_tag_column(tmp_path: Path) -> tuple[dict, Path, Path, Path]:
    """(raw config, its file, a run trained by it, a copy whose config.yaml holds what older grutool wrote there)."""
    import shutil

    raw, cfg = _trained(tmp_path)
    run, old = tmp_path / "run", tmp_path / "old"
    shutil.copytree(run, old)
    saved = _config_on_disk(old)
    saved["data"].update(tag_column="tags", scheme="bio", convert_to="bioes")
    (old / rundir.CONFIG).write_text(yaml.safe_dump(saved, sort_keys=False), encoding="utf-8")
    return raw, cfg, run, old


def test_a_run_saved_with_a_setting_only_other_families_read_still_opens(tmp_path):
    """Older grutool saved a classifier run with data.tag_column (and scheme, convert_to) set, which a
    classifier never reads: eval, infer, export and --resume said `config.yaml:13: data.tag_column: only for
    task tagger or joint`, exit 2. The run reads as the same run without them; a config given to train is
    still refused for them."""
    raw, cfg, run, old = _classifier_run_saved_with_tag_column(tmp_path)
    for args in (["eval", "--json"], ["infer", "a lovely film", "--jsonl"]):
        now, then = invoke(args[0], run, *args[1:]), invoke(args[0], old, *args[1:])
        assert then.exit_code == 0, then.output
        assert then.stdout == now.stdout
    assert invoke("export", old, "-o", tmp_path / "m.onnx").exit_code == 0
    r = invoke("train", cfg, "-q", "--resume", "-o", old, "--set", "train.epochs=2")
    assert r.exit_code == 0, r.output
    assert runs.describe(old)["epochs"] == 2
    raw["data"]["tag_column"] = "tags"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert_user_error(invoke("train", cfg, "-o", tmp_path / "new"), "data.tag_column: only for task tagger or joint")


def test_a_run_s_own_config_yaml_resumes_it_when_it_holds_a_setting_only_other_families_read(tmp_path):
    """`train RUN/config.yaml --resume` (the run's own config as CONFIG) said `RUN/config.yaml:14: data.tag_column:
    only for task tagger or joint` of a run older grutool wrote; now it is read as the run is; a --set of the
    setting is still refused."""
    _, _, _, old = _classifier_run_saved_with_tag_column(tmp_path)
    r = invoke("train", old / rundir.CONFIG, "-q", "--resume", "-o", old, "--set", "train.epochs=2")
    assert r.exit_code == 0, r.output
    assert runs.describe(old)["epochs"] == 2 and _config_on_disk(old)["data"]["tag_column"] is None
    assert_user_error(invoke("train", old / rundir.CONFIG, "--resume", "-o", old, "--set", "data.tag_column=tags"),
                      "--set data.tag_column=tags: data.tag_column: only for task tagger or joint")


def test_a_run_s_own_config_yaml_resumes_that_run_from_any_folder(tmp_path, monkeypatch):
    """docs/guide.md: `train RUN/config.yaml --resume` works from any folder. The run's config.yaml keeps its
    output_dir as given, relative to the folder train ran in, so from another folder it named a folder that did
    not exist: the resume said `the run stopped before its first checkpoint; ... starting over` there, then
    could not find the data (exit 2), and the run was never continued."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    elsewhere.mkdir()
    raw = tiny_config(project, epochs=1)
    raw["data"] = {split: f"data/{split}.tsv" for split in ("train", "validation", "test")}
    raw["output_dir"] = "runs/mine"  # both relative, as a user writes them
    (project / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    monkeypatch.chdir(project)
    assert invoke("train", "c.yaml", "-q").exit_code == 0
    run = project / "runs" / "mine"
    monkeypatch.chdir(elsewhere)
    r = invoke("train", run / rundir.CONFIG, "--resume", "--set", "train.epochs=2")
    assert r.exit_code == 0, r.output
    assert "starting over" not in r.output and runs.describe(run)["epochs"] == 2, r.output
    assert list(elsewhere.iterdir()) == []  # nothing written where the command ran


@pytest.mark.parametrize("flags", [[], ["--resume"]], ids=["plain", "resume"])
def test_a_kill_during_the_first_last_pt_write_starts_over(tmp_path, flags):
    """best.pt is written before last.pt: a kill between them left a run nothing could continue or replace."""
    raw, cfg = _trained(tmp_path)
    run = tmp_path / "run"
    for name in (rundir.LAST, rundir.SUMMARY):
        (run / name).unlink()
    (run / ".last.pt.k1ll.tmp").write_bytes(b"half a checkpoint")
    r = invoke("train", cfg, *flags)
    assert r.exit_code == 0, r.output
    assert r.output.count("starting over") == 1, r.output  # --resume said it twice, in two wordings
    assert (run / rundir.LAST).is_file() and not list(run.glob(".*.tmp"))


def test_resume_of_a_run_killed_before_its_folder_existed_starts_it(tmp_path):
    raw = tiny_config(tmp_path, epochs=1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert not (tmp_path / "run").exists()
    r = invoke("train", cfg, "--resume")
    assert r.exit_code == 0, r.output
    # No folder: nothing says a run stopped there (a mistyped -o would read as a lost run); a new one starts.
    assert f"{tmp_path / 'run'}: no run there to resume; starting a new one" in r.output, r.output
    assert "first checkpoint" not in r.output
    assert (tmp_path / "run" / rundir.BEST).is_file()


class KillAtEpoch(Callback):
    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, trainer, metrics: dict) -> None:
        if trainer.state.epoch == self.epoch:
            raise KeyboardInterrupt  # as a Ctrl-C or kill after this epoch's checkpoints would leave it


def test_a_resume_killed_later_is_not_listed_as_the_earlier_finish(tmp_path):
    raw = tiny_config(tmp_path, epochs=1)
    train(parse_config(raw))
    run = tmp_path / "run"
    assert runs.status(run) == "finished"
    raw["train"]["epochs"] = 4
    with pytest.raises(TrainingInterrupted):
        train(parse_config(raw), resume=True, callbacks=[KillAtEpoch(3)])
    assert runs.status(run) == "interrupted", "summary.json of the 1-epoch finish was left behind"
    # A plain --resume with the original epochs: the run is past them; its summary says what it holds.
    raw["train"]["epochs"] = 1
    summary = train(parse_config(raw), resume=True)
    assert summary["epochs"] >= 2 and runs.status(run) == "finished"
    assert runs.describe(run)["epochs"] == summary["epochs"]


@pytest.mark.parametrize("command", ["infer", "eval", "export"])
def test_non_finite_weights_are_refused_on_load(tmp_path, command):
    raw, cfg = _trained(tmp_path)
    run = tmp_path / "run"
    obj = torch.load(run / rundir.BEST, weights_only=True)
    name = next(k for k, v in obj["model"].items() if v.is_floating_point())
    obj["model"][name].view(-1)[0] = float("nan")
    torch.save(obj, run / rundir.BEST)
    args = {"infer": ["infer", run, "a good film"], "eval": ["eval", run, "--json"],
            "export": ["export", run, "-o", tmp_path / "m.onnx"]}[command]
    assert_user_error(invoke(*args), "not finite", name)
    assert not (tmp_path / "m.onnx").exists()


# --- a resume's settings, its "complete" message, the dry run's checks ------------------------------


def _config_on_disk(run: Path) -> dict:
    return yaml.safe_load((run / rundir.CONFIG).read_text(encoding="utf-8"))


def test_a_resume_with_new_epochs_records_them_in_config_yaml(tmp_path):
    """config.yaml kept the first start's train.epochs: `runs` showed 133/3000 (interrupted, then resumed with
    133) and 33/60 read as 33/30."""
    raw = tiny_config(tmp_path, epochs=6)
    with pytest.raises(TrainingInterrupted):
        train(parse_config(raw), callbacks=[KillAtEpoch(1)])  # Ctrl-C in a long run
    run = tmp_path / "run"
    raw["train"]["epochs"] = 2
    train(parse_config(raw), resume=True)
    assert _config_on_disk(run)["train"]["epochs"] == 2
    assert (runs.describe(run)["epochs"], runs.describe(run)["max_epochs"]) == (2, 2)
    raw["train"]["epochs"] = 3  # a finished run trained longer
    train(parse_config(raw), resume=True)
    assert _config_on_disk(run)["train"]["epochs"] == 3
    assert (runs.describe(run)["epochs"], runs.describe(run)["max_epochs"]) == (3, 3)
    assert runs.status(run) == "finished"
    raw["train"]["epochs"] = 1  # past it: nothing trains, nothing is rewritten
    train(parse_config(raw), resume=True)
    assert _config_on_disk(run)["train"]["epochs"] == 3


def test_resume_of_an_early_stopped_run_names_train_patience_and_the_folder_used(tmp_path):
    """It said "resume with a larger train.epochs", which trained nothing, and named the folder the run was first
    trained in, not the copy given with -o."""
    import shutil

    # lr ~0: accuracy never improves after epoch 1, so patience 1 stops the run at epoch 2 of 6.
    raw = tiny_config(tmp_path, epochs=6, lr=1e-12, patience=1, monitor="accuracy")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert invoke("train", cfg, "-q").exit_code == 0
    run, copy = tmp_path / "run", tmp_path / "copy"
    assert runs.describe(run)["epochs"] < 6, "the setup must stop early"
    shutil.copytree(run, copy)
    r = invoke("train", cfg, "--resume", "-o", copy, "--set", "train.epochs=12")
    assert r.exit_code == 0, r.output
    assert "the run is complete" in r.output and "train.patience" in r.output, r.output
    assert "larger train.epochs" not in r.output, r.output
    assert f"run directory: {copy}" in r.stdout and f"run directory: {run}\n" not in r.stdout, r.stdout
    r = invoke("train", cfg, "-q", "--resume", "-o", copy, "--set", "train.patience=3")
    assert r.exit_code == 0, r.output
    assert runs.describe(copy)["epochs"] > runs.describe(run)["epochs"], "a larger patience trains on"
    assert _config_on_disk(copy)["train"]["patience"] == 3


def test_an_epoch_cut_short_by_max_steps_is_said_so_in_the_lines_files_and_resume(tmp_path):
    """`train.max_steps` below one epoch printed `epoch 1/3: ...` and `done: 1 epoch(s)`, as if the epoch had
    been trained whole: the lines, metrics.jsonl and summary.json now say how many of its batches ran."""
    import json
    import re

    raw = tiny_config(tmp_path, epochs=3, max_steps=3, device="cpu")  # 64 rows, batch 8: 8 batches an epoch
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    r = invoke("train", cfg)
    assert r.exit_code == 0, r.output
    # `(3/8 batches)` where the line would pass 80 columns: how long it is depends on the tok/s figure's digits
    assert re.search(r"epoch 1/3 \(3( of |/)8 steps\): loss ", r.output), r.output
    [done] = [line for line in r.stdout.splitlines() if line.startswith("done:")]
    assert "epoch(s)" not in done and "3 steps (train.max_steps)" in done and "3 of its 8 steps" in done, done
    [row] = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert (row["epoch"], row["step"], row["epoch_steps"], row["steps_per_epoch"]) == (1, 3, 3, 8), row
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["epochs"], summary["last_epoch_steps"], summary["steps_per_epoch"]) == (1, 3, 8), summary
    r = invoke("train", cfg, "--resume")
    assert r.exit_code == 0, r.output
    assert "complete (3 steps; epoch 1 of 3 stopped at 3 of its 8 steps)" in r.output, r.output
    # Whole epochs read as before: no batch count on their lines or rows.
    r = invoke("train", cfg, "--overwrite", "--set", "train.max_steps=16")
    assert r.exit_code == 0, r.output
    assert "epoch 2/3: loss " in r.output and " of 8 steps" not in r.output, r.output
    assert "done: 2 epoch(s), 16 steps" in r.stdout, r.stdout
    assert all("epoch_steps" not in json.loads(line)
               for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())


def _error_line(result) -> str:
    assert_user_error(result)
    return result.output.strip()


@pytest.mark.parametrize("folder", ["finished run", "user's folder"])
def test_a_dry_run_refuses_what_train_refuses_and_writes_nothing(tmp_path, folder):
    """`--dry-run` said `config ok ... (not written)` on a folder the real train then refused."""
    raw, cfg = _trained(tmp_path)
    target = tmp_path / "run"
    if folder == "user's folder":
        target = tmp_path / "mine"
        target.mkdir()
        (target / "notes.md").write_text("mine\n", encoding="utf-8")
    before = snapshot(tmp_path)
    dry = _error_line(invoke("train", cfg, "--dry-run", "-o", target))
    assert snapshot(tmp_path) == before
    assert dry == _error_line(invoke("train", cfg, "-o", target))


def test_a_dry_run_with_overwrite_or_resume_says_what_train_would_do_and_writes_nothing(tmp_path):
    raw, cfg = _trained(tmp_path)
    before = snapshot(tmp_path)
    r = invoke("train", cfg, "--dry-run", "--overwrite")
    assert r.exit_code == 0, r.output
    assert "not written" in r.stdout and "replace" in r.stdout, r.stdout
    r = invoke("train", cfg, "--dry-run", "--resume", "--set", "train.epochs=2")
    assert r.exit_code == 0, r.output
    assert "not written" in r.stdout and "resume it at epoch 2" in r.stdout, r.stdout
    assert snapshot(tmp_path) == before


def test_a_dry_run_resume_of_a_complete_run_says_there_is_nothing_to_resume_as_train_does(tmp_path):
    """`train --dry-run --resume` of a run that had trained all its epochs said `train would resume it at epoch
    2`, while `train --resume` then said the run is complete and trained nothing."""
    raw, cfg = _trained(tmp_path)  # 1 epoch of 1: complete
    before = snapshot(tmp_path)
    dry = invoke("train", cfg, "--dry-run", "--resume")
    assert dry.exit_code == 0, dry.output
    assert "resume it at epoch" not in dry.stdout, dry.stdout
    real = invoke("train", cfg, "--resume")
    assert real.exit_code == 0, real.output
    said = real.output.split("warning: ", 1)[1].split(str(tmp_path / "run") + ": ", 1)[1].split("\n")[0]
    assert said.startswith("the run is complete") and said in " ".join(dry.stdout.split()), (said, dry.stdout)
    assert snapshot(tmp_path) == before
    # With room to train, the dry run still says where the resume starts.
    r = invoke("train", cfg, "--dry-run", "--resume", "--set", "train.epochs=2")
    assert r.exit_code == 0 and "resume it at epoch 2" in r.stdout, r.output


@pytest.mark.parametrize("flags", [[], ["--dry-run"], ["--resume"], ["--overwrite"]],
                         ids=["plain", "dry-run", "resume", "overwrite"])
def test_an_existing_read_only_output_folder_is_one_line_before_any_work(tmp_path, monkeypatch, flags):
    """An empty folder on a read-only mount as --output-dir was an OSError traceback from the lock (exit 1), and
    `--dry-run` said `(not written)`. Simulated through os.access, as root ignores chmod (a real read-only
    mount fails the same check: access(2) answers EROFS)."""
    raw = tiny_config(tmp_path, epochs=1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw), encoding="utf-8")
    locked = tmp_path / "locked"
    locked.mkdir()
    access = os.access
    monkeypatch.setattr("grutool.rundir.os.access",
                        lambda p, mode, **kw: not (mode & os.W_OK and Path(p).resolve() == locked.resolve())
                        and access(p, mode, **kw))
    assert_user_error(invoke("train", cfg, "-o", locked, *flags), str(locked), "not writable", "--output-dir")
    assert list(locked.iterdir()) == []


def test_a_run_reads_a_sliced_relative_path_from_the_folder_train_ran_in_keeping_its_slice(tmp_path, monkeypatch):
    project, run = tmp_path / "project", tmp_path / "run"
    (project / "data").mkdir(parents=True)
    (project / "data" / "train.ts").write_text("@data\n", encoding="utf-8")
    monkeypatch.chdir(project)
    rundir.prepare_new(run, overwrite=False)  # the marker records the folder train runs in
    monkeypatch.chdir(tmp_path)
    cfg = parse_config(tiny_config(tmp_path / "t"))
    cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={
        "train": "data/train.ts[:80%]", "validation": "data/train.ts[80%:]", "test": "data/missing.ts"})})
    read = rundir.read_from_run(cfg, run).data
    assert (read.train, read.validation) == (f"{project / 'data' / 'train.ts'}[:80%]",
                                             f"{project / 'data' / 'train.ts'}[80%:]")
    assert read.test == "data/missing.ts"  # not there either: from the working directory, as written


@pytest.mark.parametrize("config, word", [("sentiment.yaml", "step"), ("numeric.yaml", "update")])
def test_the_stretched_schedule_s_message_names_optimizer_steps_as_the_run_does(tmp_path, config, word):
    # A numeric run's speed counts time steps and its lines say `updates`; this message said `now spans 32 steps`
    from types import SimpleNamespace

    from conftest import shipped_config
    from grutool.families import get_task
    from grutool.training.run_setup import redrawn_schedule

    saved = parse_config(shipped_config(config, tmp_path, train={"schedule": "cosine", "epochs": 2,
                                                                 "max_steps": None}))
    now = saved.model_copy(update={"train": saved.train.model_copy(update={"epochs": 4})})
    trainer = SimpleNamespace(cfg=now, task=get_task(now.task), state=SimpleNamespace(step=16),
                              batches_per_epoch=8, total_steps=32)
    said = redrawn_schedule(trainer, saved)
    assert said.startswith(f"train.schedule cosine now spans 32 {word}s, not the 16 the run started with: "
                           f"from {word} 16 ") and said.endswith(f"trained 32 {word}s from the start"), said


@pytest.mark.parametrize("schedule, warned", [("cosine", True), ("linear", True), ("constant", False)])
def test_a_resume_that_stretches_a_decaying_schedule_says_so(tmp_path, schedule, warned):
    """Resumed with a larger train.epochs, a cosine schedule is drawn over the new length from the step reached:
    its rate rose from 0.0 back to 0.000439 without a word, and the weights differ from a run that long from the
    start. The resume now says so (a constant rate, or the same length, leaves nothing to say)."""
    import json
    import re

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path, epochs=2, schedule=schedule)), encoding="utf-8")
    assert invoke("train", cfg).exit_code == 0
    r = invoke("train", cfg, "--resume", "--set", "train.epochs=4")
    assert r.exit_code == 0, r.output
    said = re.search(r"train\.schedule (\w+) now spans 32 steps, not the 16 the run started with: from step 16 its "
                     r"learning rate follows the new length \(([0-9.e-]+) there, where the run's schedule was at "
                     r"([0-9.e-]+)\)", r.output)
    assert bool(said) == warned, r.output
    if warned:
        rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
        assert said.group(1) == schedule and float(said.group(3)) == pytest.approx(rows[1]["lr"], abs=1e-9)
        assert float(said.group(2)) > 0.0
    assert "now spans" not in invoke("train", cfg, "--resume", "--set", "train.epochs=4").output  # ended: as it is


@pytest.mark.parametrize("train, word", [("reviews.tsv", "step"), ("sensors.ts", "update")])
def test_a_complete_run_past_its_steps_says_where_it_stopped_in_its_own_words(train, word):
    """A run resumed with fewer steps to an epoch than it was trained with (a larger batch) stands past the steps
    of train.epochs before reaching their count: the message names the last step (numbers: the last update,
    as their progress lines do) and the setting to raise."""
    from types import SimpleNamespace

    from grutool.families import get_task
    from grutool.training import run_setup

    cfg = SimpleNamespace(task="classifier", train=SimpleNamespace(patience=None, epochs=10, max_steps=None),
                          data=SimpleNamespace(format="auto", channels=None, train=train))
    trainer = SimpleNamespace(state=SimpleNamespace(epoch=6, step=120, bad_epochs=0), cfg=cfg, total_steps=100,
                              task=get_task("classifier"))
    assert run_setup.has_ended(trainer)
    assert run_setup.ended_message(trainer, {}) == (
        f"the run is complete (6 of 10 epochs, 120 {word}s); nothing to resume. It stopped at its last {word}. "
        f"To train longer, resume with a larger train.epochs (e.g. --set train.epochs=20)")


@pytest.mark.parametrize("patience, bad, expect", [
    (None, 0, "It stopped after more epochs than train.epochs now allows. To train longer, resume with a larger "
              "train.epochs (e.g. --set train.epochs=46)"),
    (10, 10, "It stopped early: accuracy did not improve for 10 epoch(s) (train.patience 10). To train longer, resume "
             "with a larger train.patience and train.epochs (e.g. --set train.patience=20 --set train.epochs=46)"),
])
def test_a_complete_run_resumed_with_fewer_epochs_than_it_trained_says_so(patience, bad, expect):
    """`--resume --set train.epochs=5` of a run that trained 23: it said `23 of 5 epochs`, `at train.epochs`, and
    offered train.epochs=10, which resumes nothing either."""
    from types import SimpleNamespace

    from grutool.families import get_task
    from grutool.training import run_setup

    cfg = SimpleNamespace(task="classifier", train=SimpleNamespace(patience=patience, epochs=5, max_steps=None),
                          data=SimpleNamespace(format="auto", channels=None, train="reviews.tsv"))
    trainer = SimpleNamespace(state=SimpleNamespace(epoch=23, step=575, bad_epochs=bad), cfg=cfg, total_steps=125,
                              task=get_task("classifier"), monitor_label="accuracy")
    assert run_setup.has_ended(trainer)
    assert run_setup.ended_message(trainer, {}) == (
        f"the run is complete (23 epochs, 575 steps: more than train.epochs 5, as given now); nothing to resume. "
        f"{expect}")
