"""grutool study: cells × seeds in one study directory, its report, and --resume after a kill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import (ROOT, assert_user_error, children_of, invoke, process_running, run_in_terminal, shipped_config,
                      tiny_config)
from grutool import jsonsafe, study
from grutool.errors import TrainingInterrupted
from grutool.runs import list_runs
from grutool.training.callbacks import Callback


def write_config(root: Path, epochs: int = 2, **train) -> Path:
    raw = tiny_config(root, epochs=epochs, **train)
    raw["model"].update(embedding_dim=8, hidden_size=8)
    raw["train"]["device"] = "cpu"
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def done(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    config = write_config(root)
    result = study.run_study(config, ["gru", "lstm"], 2, study_dir=root / "st", latency_repeats=1)
    return root, config, result


def figures(result: dict) -> dict:
    return {r["run"]: (r["val"], r["validation"], r["test"], r["best_epoch"], r["parameters"]) for r in result["runs"]}


def test_report_shape(done):
    root, _, result = done
    assert list(result["cells_summary"]) == ["gru", "lstm"]
    for cell in result["cells_summary"].values():
        assert cell["seeds"] == [3, 4]
        assert len(cell["figures"]["val"]["values"]) == 2 and cell["figures"]["val"]["sd"] is not None
        assert set(cell["test"]) >= {"accuracy", "macro_f1"}
        assert cell["kernel"]["train"] and cell["kernel"]["inference"]
        for key in ("s_per_epoch", "s_to_best", "tokens_per_s", "latency_1_ms", "latency_32_ms"):
            assert cell["figures"][key]["mean"] > 0, key
    assert result["cells_summary"]["lstm"]["parameters"] > result["cells_summary"]["gru"]["parameters"]
    tables = study.table_rows(result)
    assert len(tables["quality"]) == 3 and len(tables["cost"]) == 3
    assert tables["cost"][0][3] == "tokens/s" and result["rate_unit"] == "tokens"
    metrics = [d["metric"] for d in result["comparisons"]]
    assert metrics[0] == "val_accuracy" and "test_accuracy" in metrics and "s_per_epoch" in metrics
    assert all(d["n"] == 2 and (d["p"] is not None or d["sd_diff"] == 0) for d in result["comparisons"])
    for name in (study.REPORT_MD, study.REPORT_JSON, study.REPORT_CSV):
        assert (root / "st" / name).is_file()
    assert len((root / "st" / study.REPORT_CSV).read_text().splitlines()) == 5  # header + 4 runs
    assert "## Differences" in (root / "st" / study.REPORT_MD).read_text()
    listed = list_runs(root / "st")  # `grutool runs STUDY` lists the runs
    assert [Path(r["run"]).name for r in listed] == ["gru-seed3", "gru-seed4", "lstm-seed3", "lstm-seed4"]
    assert {r["status"] for r in listed} == {"finished"}
    assert Path(study.plot(result, root / "st" / study.PLOT)).stat().st_size > 10_000


def test_the_default_study_and_tune_folders_are_ignored_by_git(tmp_path):
    # `grutool study configs/sentiment.yaml` (README) left studies/sentiment/ with its checkpoints untracked in
    # `git status`, ready to be committed by `git add -A`; runs/ was ignored, studies/ and tuning/ were not
    import shutil
    import subprocess

    from grutool import tune

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    study_dir, _ = study.plan(write_config(tmp_path), ["gru"], 1)
    for path in (study_dir / "runs" / "gru-seed3" / "best.pt", Path("tuning") / "tiny" / tune.DB):
        ignored = subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=ROOT)
        assert ignored.returncode == 0, path


def test_every_kernel_the_report_names_is_explained(done):
    # the legend named fused, native, onednn and cudnn, while the runs reported "compiled / compiled"
    import re

    from grutool.bench.env import KERNEL_OPS

    root, _, result = done
    text = (root / "st" / study.REPORT_MD).read_text()
    legend = next(line for line in text.splitlines() if line.startswith("Kernel:"))
    shown = {k for c in result["cells_summary"].values() for part in c["kernel"].values() if part
             for k in re.split(r"[+/]", part)}
    possible = {"compiled", "fused", "stack", "native"} | {path for _, path in KERNEL_OPS}
    for name in shown | possible:
        assert f"`{name}`" in legend, name


def test_the_same_difference_on_every_seed_is_not_called_significant():
    # JapaneseVowels, 2 seeds: the LSTM 4 of 370 test utterances behind on both, which printed "lstm lower (p 0)".
    def record(cell, seed, accuracy):
        return {"cell": cell, "seed": seed, "monitor": "accuracy", "val": None, "test": {"accuracy": accuracy},
                **{k: None for k in study.COST}}

    records = [record("gru", 3, 334 / 370), record("lstm", 3, 330 / 370),
               record("gru", 4, 340 / 370), record("lstm", 4, 336 / 370)]
    (d,) = study._compare(records, ["gru", "lstm"])
    assert d["metric"] == "test_accuracy" and d["diff"] == pytest.approx(-4 / 370)
    assert (d["p"], d["t"], d["ci95"], d["sd_diff"]) == (None, None, None, 0.0)
    assert "same difference on both seeds; too few seeds to test" in d["reading"] and "p —" in d["reading"]
    assert '"p": null' in jsonsafe.dumps(d) and '"t": null' in jsonsafe.dumps(d)
    records += [record("gru", 5, 300 / 370), record("lstm", 5, 296 / 370)]
    assert "all 3 seeds" in study._compare(records, ["gru", "lstm"])[0]["reading"]


def test_reproducible(done, tmp_path):
    root, config, result = done
    again = study.run_study(config, ["gru", "lstm"], 2, study_dir=tmp_path / "again", latency_repeats=1)
    assert figures(again) == figures(result)


def test_cli_resume_reuses_finished_runs(done):
    root, config, _ = done
    best = sorted((root / "st" / "runs").glob("*/best.pt"))
    before = [p.stat().st_mtime_ns for p in best]
    result = invoke("study", config, "--cells", "gru,lstm", "--seeds", "2", "-o", root / "st", "--resume", "-q")
    assert result.exit_code == 0, result.output
    assert result.output.count("(reused)") == 4
    # -q keeps a line per run; its help said "Only the report, warnings and errors"
    assert "a line per run" in " ".join(invoke("study", "--help").output.split())
    assert "quality" in result.stdout and "against gru, paired by seed" in result.stdout
    assert [p.stat().st_mtime_ns for p in best] == before
    # without --resume an existing study is refused, one line
    again = invoke("study", config, "--cells", "gru,lstm", "--seeds", "2", "-o", root / "st")
    assert again.exit_code == 2 and "add --resume" in again.output


def test_resume_reuses_the_finished_runs_an_older_grutool_wrote(tmp_path):
    """A finished run whose config.yaml lacks fields added since (older grutool wrote none) was not called
    finished with the study's config: each went through train --resume, which said `the run is complete ...;
    resume with a larger train.epochs`, and the run's line lacked `(reused)`."""
    config = write_config(tmp_path, epochs=1)
    args = ["study", config, "--cells", "gru", "--seeds", "1", "-o", tmp_path / "st", "-q"]
    assert invoke(*args).exit_code == 0
    run = tmp_path / "st" / "runs" / "gru-seed3"
    saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    for name in ("kernel", "layer_norm", "residual", "embedding_init"):  # fields the older code did not have
        del saved["model"][name]
    (run / "config.yaml").write_text(yaml.safe_dump(saved, sort_keys=False), encoding="utf-8")
    before = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    result = invoke(*args, "--resume")
    assert result.exit_code == 0, result.output
    assert "(reused)" in result.output and "the run is complete" not in result.output, result.output
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == before


def test_an_epoch_without_figures_keeps_its_point_on_the_learning_curve(tmp_path):
    """An epoch resumed from an older last.pt has no epoch_time_s (nor train_loss, tokens_per_s) in metrics.jsonl:
    the curve was cut to the rows that had one, so the run's last epoch went missing from the picture."""
    config = write_config(tmp_path, epochs=2)
    study.run_study(config, ["gru"], 1, study_dir=tmp_path / "st", latency_repeats=1)
    metrics = tmp_path / "st" / "runs" / "gru-seed3" / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics.read_text(encoding="utf-8").splitlines()]
    for key in ("train_loss", "tokens_per_s", "epoch_time_s", "grad_norm", "grad_norm_max"):
        rows[0].pop(key, None)
    metrics.write_text("".join(jsonsafe.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = study.report(tmp_path / "st", latency_repeats=1)
    curve = result["curves"]["gru-seed3"]
    assert [point[0] for point in curve] == [1, 2]
    assert curve[-1][1] == pytest.approx(rows[1]["epoch_time_s"])
    assert [e for e, _ in study.plot_series(result)["cells"]["gru"]["curves"][0]] == [1, 2]


def test_resume_with_a_setting_the_runs_cannot_take_is_refused_before_any_run(done):
    # It failed at the first reused run with train's "resume with the same config", which named neither
    # --overwrite nor another --output-dir, after plan.json had been rewritten with the new --set.
    root, config, _ = done
    files = {p: p.stat().st_mtime_ns for p in (root / "st").rglob("*") if p.is_file()}
    result = invoke("study", config, "--cells", "gru,lstm", "--seeds", "2", "-o", root / "st", "--resume",
                    "--set", "model.hidden_size=16", "--set", "train.epochs=3", "-q")
    assert_user_error(result, "model.hidden_size=8 (now 16)", "--overwrite", "--output-dir")
    assert "train.epochs=" not in result.output  # a longer training resumes: not named as a change
    assert {p: p.stat().st_mtime_ns for p in (root / "st").rglob("*") if p.is_file()} == files  # nothing written


def test_resume_that_would_shorten_finished_runs_is_refused(done):
    # `--set train.epochs=1` on a study whose runs trained 2 epochs: train left each run as it was ("complete, 2 of
    # 1 epochs"), the study counted them as newly trained, and one report mixed them with runs of 1 epoch (a study
    # resumed with other cells) under a header that said epochs=1.
    root, config, _ = done
    files = {p: p.stat().st_mtime_ns for p in (root / "st").rglob("*") if p.is_file()}
    result = invoke("study", config, "--cells", "gru,lstm", "--seeds", "2", "-o", root / "st", "--resume",
                    "--set", "train.epochs=1", "-q")
    assert_user_error(result, "resume: gru-seed3 trained 2 epochs, more than train.epochs=1 now",
                      "a finished run is not shortened", "--overwrite", "--output-dir")
    assert {p: p.stat().st_mtime_ns for p in (root / "st").rglob("*") if p.is_file()} == files  # nothing written


def test_resume_where_there_is_no_study_says_it_starts_a_new_one(tmp_path, caplog):
    config = write_config(tmp_path, epochs=1)
    with caplog.at_level("WARNING", logger="grutool"):
        study.run_study(config, ["gru"], 1, study_dir=tmp_path / "new", resume=True, latency_repeats=1)
    said = [r.getMessage() for r in caplog.records if "to resume" in r.getMessage()]
    assert said == [f"{tmp_path / 'new'}: no study there to resume; starting a new one"]
    assert (tmp_path / "new" / study.PLAN).is_file()


def test_compare_reads_a_study_folder_as_its_runs(done):
    # `grutool compare STUDY` said "give two run directories or more", though `grutool runs STUDY` lists them.
    root, _, _ = done
    result = invoke("compare", root / "st", "--json")
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [Path(r).name for r in runs] == ["gru-seed3", "gru-seed4", "lstm-seed3", "lstm-seed4"]
    shown = invoke("compare", root / "st")
    assert shown.exit_code == 0 and f"runs under {root / 'st' / 'runs'}" in shown.stdout
    assert "model.cell" in shown.stdout and "lstm-seed4" in shown.stdout


def test_a_resume_without_plot_says_the_picture_is_of_an_earlier_report(tmp_path):
    # --resume rewrote report.md/json/csv and left study.png as it was, unsaid (other cells, other figures).
    pytest.importorskip("matplotlib")
    config = write_config(tmp_path, epochs=1)
    args = ["study", config, "--cells", "gru", "--seeds", "1", "-o", tmp_path / "st", "-q"]
    first = invoke(*args, "--plot")
    assert first.exit_code == 0 and (tmp_path / "st" / study.PLOT).is_file(), first.output
    assert "drawn for an earlier report" not in first.output
    again = invoke(*args, "--resume")
    assert again.exit_code == 0, again.output
    assert f"warning: {tmp_path / 'st' / study.PLOT} was drawn for an earlier report; add --plot" in again.stderr
    redrawn = invoke(*args, "--resume", "--plot")
    assert redrawn.exit_code == 0 and "drawn for an earlier report" not in redrawn.output


def terminal_screen(args: list[str], width: int, cwd: Path) -> list[str]:
    """The lines a terminal of `width` columns shows for `grutool ARGS` (a pseudo-terminal; the terminal breaks
    a line longer than the width at its last column, wherever that falls)."""
    import re

    raw = run_in_terminal(args, width, cwd, rows=50, timeout=300)
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw.replace("\r", ""))
    return [line[k:k + width] for line in text.split("\n") for k in range(0, max(len(line), 1), width)]


def test_long_lines_wrap_between_words_in_a_terminal_and_stay_whole_in_a_pipe(done):
    # 80 columns: "kernel in training / infere" + "nce", "report.c" + "sv" (the terminal broke soft-wrapped lines)
    root, config, _ = done
    args = ["study", str(config), "--cells", "gru,lstm", "--seeds", "2", "-o", str(root / "st"), "--resume", "-q"]
    shown = terminal_screen(args, 80, root)
    report = json.loads((root / "st" / study.REPORT_JSON).read_text())  # written by this command
    long_lines = [f"quality: mean ± sd over seeds (higher accuracy is better); kernel in training / inference",
                  "cost: training s per epoch and to the best epoch; inference ms per batch of 1 and 32",
                  study.environment_line(report),
                  "wrote " + ", ".join(str(root / "st" / n) for n in (study.REPORT_MD, study.REPORT_JSON,
                                                                        study.REPORT_CSV))]
    words = {w for line in shown for w in line.split()}
    for line in long_lines:
        assert len(line) > 80 and set(line.split()) <= words, (set(line.split()) - words, "\n".join(shown))
    piped = invoke(*args)  # not a terminal: one line per item, as scripts read it
    assert "kernel in training / inference" in piped.stdout and str(root / "st" / study.REPORT_CSV) in piped.output


class Counter(Callback):
    """Counts trainings and remembers the step each one started at; raises Ctrl-C once, in run `stop_run`."""

    def __init__(self, stop_run=None, stop_step=3):
        self.runs, self.first_steps = 0, []
        self.stop_run, self.stop_step = stop_run, stop_step

    def on_train_begin(self, trainer):
        self.runs += 1
        self.first_steps.append(trainer.state.step)

    def on_step_end(self, trainer, loss, tokens):
        if self.runs == self.stop_run and trainer.state.step == self.stop_step:
            raise KeyboardInterrupt


def test_resume_after_a_kill(tmp_path, caplog):
    config = write_config(tmp_path)
    killer = Counter(stop_run=2)
    with pytest.raises(TrainingInterrupted):
        study.run_study(config, ["gru"], 3, study_dir=tmp_path / "st", callbacks=[killer], latency_repeats=1)
    first = tmp_path / "st" / "runs" / "gru-seed3" / "best.pt"
    mtime = first.stat().st_mtime_ns
    counter = Counter()
    caplog.clear()
    result = study.run_study(config, ["gru"], 3, study_dir=tmp_path / "st", resume=True, callbacks=[counter],
                             latency_repeats=1)
    # seed 5 was never started: it starts as new, without a warning of a run "stopped before its first checkpoint"
    assert not [r for r in caplog.records if "before its first checkpoint" in r.getMessage()]
    assert counter.runs == 2                     # seed 3 reused; seed 4 continued, seed 5 new
    assert counter.first_steps == [3, 0]         # seed 4 from its last.pt, at the step it was stopped
    assert first.stat().st_mtime_ns == mtime
    assert result["cells_summary"]["gru"]["seeds"] == [3, 4, 5] and not result["missing"]


def test_parallel_jobs_give_the_same_figures(done, tmp_path):
    root, config, result = done
    # One thread per run both ways: a float sum's order, so its last bits, depends on the thread count.
    one = ["train.num_threads=1"]
    sequential = study.run_study(config, ["gru"], 2, one, study_dir=tmp_path / "seq", latency_repeats=1)
    lines = []
    parallel = study.run_study(config, ["gru"], 2, one, study_dir=tmp_path / "par", jobs=2, threads=2,
                               latency_repeats=1, on_run=lambda i, n, run, summary, reused: lines.append(run.name))
    assert sorted(lines) == ["gru-seed3", "gru-seed4"]
    assert figures(parallel) == figures(sequential)
    assert parallel["cells_summary"]["gru"]["kernel"]["train"] == result["cells_summary"]["gru"]["kernel"]["train"]
    assert "2 at a time, 1 thread(s) each" in (tmp_path / "par" / study.REPORT_MD).read_text()
    # the terminal's tables said nothing of it: their s/epoch read as if each run had the machine alone
    import io

    from rich.console import Console

    from grutool.cli.study_cmd import _render

    console = Console(width=80, record=True, file=io.StringIO())
    _render(parallel, console)
    assert "2 runs trained at a time, 1 thread(s) each: their timings shared the machine" in " ".join(
        console.export_text().split())
    with pytest.raises(Exception, match="lower --jobs|jobs:"):
        study.run_study(config, ["gru"], 2, study_dir=tmp_path / "over", jobs=3, threads=2)


@pytest.mark.parametrize("name, metric", [("sines.yaml", "test_mse"), ("numeric_regression.yaml", "test_rmse")])
def test_a_study_of_the_numeric_families_compares_their_metrics_not_their_data(tmp_path, name, metric):
    # Forecasting and numeric sequences are studied like text; the counts and shapes their eval results carry
    # (windows, horizon, input length, season, n) are the same in every run and are not compared.
    raw = shipped_config(name, tmp_path / "unused", train={"epochs": 1, "device": "cpu"})
    config = tmp_path / name
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = study.run_study(config, ["gru", "lstm"], 2, study_dir=tmp_path / "st", latency_repeats=1)
    compared = {d["metric"] for d in result["comparisons"]}
    assert metric in compared and "s_per_epoch" in compared
    assert not {"test_n", "test_windows", "test_horizon", "test_input_length", "test_season"} & compared
    assert all(d["n"] == 2 for d in result["comparisons"])


def test_a_seq2seq_study_compares_its_metrics_not_its_beam_size(tmp_path):
    # eval of a seq2seq run carries the beam size it decoded with: the report had a "test beam_size" column and
    # a "test_beam_size ... no difference on any seed" row.
    raw = shipped_config("reverse.yaml", tmp_path / "unused", train={"epochs": 1, "device": "cpu"})
    config = tmp_path / "reverse.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = study.run_study(config, ["gru", "lstm"], 1, study_dir=tmp_path / "st", latency_repeats=1)
    compared = {d["metric"] for d in result["comparisons"]}
    assert "test_exact_match" in compared and "test_beam_size" not in compared
    assert all("beam_size" not in c["test"] for c in result["cells_summary"].values())
    assert "beam_size" not in (tmp_path / "st" / study.REPORT_MD).read_text()
    # reverse.yaml's targets are characters: sacreBLEU (word n-grams) was 0.0 in every run and compared as "no
    # difference"; the characters' own figures are compared instead.
    assert "test_bleu" not in compared and {"test_cer", "test_chrf"} <= compared
    assert all("bleu" not in c["test"] and "cer" in c["test"] for c in result["cells_summary"].values())
    assert "test_bleu " not in (tmp_path / "st" / study.REPORT_MD).read_text()
    from grutool.families import get_task

    assert get_task("seq2seq").uninformative({"bleu": 31.2, "char_level": False}) == frozenset()  # words: kept


def test_the_report_does_not_repeat_the_runs_data_warnings(tmp_path, caplog):
    # names.yaml: one "validation: 1 token(s) are not in the vocabulary" per run again while timing the latency
    raw = shipped_config("lm.yaml", tmp_path / "unused", train={"epochs": 1, "device": "cpu"})
    validation = Path(raw["data"]["validation"])
    text = validation.read_text(encoding="utf-8").splitlines()
    header, first = text[0], text[1].split("\t")
    first[header.split("\t").index("text")] = "§§§"  # a character the training split never has
    (tmp_path / "validation.tsv").write_text("\n".join([header, "\t".join(first)] + text[2:]) + "\n", encoding="utf-8")
    raw["data"]["validation"] = str(tmp_path / "validation.tsv")
    config = tmp_path / "lm.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    study.run_study(config, ["gru"], 2, study_dir=tmp_path / "st", latency_repeats=1)
    warned = [r for r in caplog.records if "not in the vocabulary" in r.getMessage()]
    assert len(warned) == 2, [r.getMessage() for r in warned]  # once per run, in its training


def test_a_study_without_a_validation_split_plots_test_figures_and_training_loss(tmp_path, recwarn):
    # No validation figure to plot (JapaneseVowels ships so): the picture was two empty panels and a warning.
    raw = shipped_config("numeric.yaml", tmp_path / "unused", train={"epochs": 2, "device": "cpu"})
    raw["data"]["validation"] = None
    config = tmp_path / "noval.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = study.run_study(config, ["gru", "lstm"], 2, study_dir=tmp_path / "st", latency_repeats=1)
    data = study.plot_series(result)
    assert data["left"] == "test accuracy (no validation split)" and data["right"] == "training loss"
    # the report's first line said "monitor `accuracy` on validation", of a study without one
    # the speed column named what numeric sequences count, as train's epoch line does: steps, not tokens
    assert study.table_rows(result)["cost"][0][3] == "steps/s" and "| steps/s |" in study.markdown(result)
    # ... and so did the differences table (it said tokens_per_s) and the Cost section's sentence (tokens per second)
    for terminal in (True, False):
        shown = [row[0] for row in study.table_rows(result, terminal=terminal)["differences"][1:]]
        assert "steps/s" in shown and "tokens_per_s" not in shown
        # the cost figures as the cost table names and writes them (`s_per_epoch -3.223e-04` before)
        assert {"s/epoch", "s to best", "b1 ms", "b32 ms", "test accuracy"} <= set(shown), shown
        rows = {row[0]: row for row in study.table_rows(result, terminal=terminal)["differences"][1:]}
        difference = rows["s/epoch"][-4]
        assert "e-" not in difference and len(difference.split(".")[-1]) == 3, rows["s/epoch"]
    assert "steps per second" in study.markdown(result) and "tokens" not in study.markdown(result)
    assert any(d["metric"] == "tokens_per_s" for d in result["comparisons"])  # report.json's key is kept
    intro = study.markdown(result).splitlines()[2]
    assert "on validation" not in intro and "no validation split" in intro
    for cell, s in data["cells"].items():
        runs = [r for r in result["runs"] if r["cell"] == cell]
        assert sorted(y for _, y in s["points"]) == sorted(r["test"]["accuracy"] for r in runs)
        assert [len(c) for c in s["curves"]] == [2, 2]  # a training loss per epoch, per seed
    pytest.importorskip("matplotlib")
    assert Path(study.plot(result, tmp_path / "st" / study.PLOT)).stat().st_size > 10_000
    assert not [w for w in recwarn if "legend" in str(w.message)]
    # The time axis was scaled to the points alone: two runs 3 ms apart sat in opposite corners. It starts at 0,
    # the metric's axis says which way is better, and the figure names the config, cells and seeds.
    fig = study.figure(result)
    left = fig.axes[0]
    times = [x for s in data["cells"].values() for x, _ in s["points"]]
    assert left.get_xlim()[0] == 0 and left.get_xlim()[1] >= max(times)
    assert left.get_ylabel() == "test accuracy (no validation split) (higher is better)"
    assert fig._suptitle.get_text() == "noval.yaml: gru, lstm, 2 seeds each"


def test_jobs_ctrl_c_saves_the_running_runs_starts_no_more_and_resume_finishes(tmp_path):
    # It printed a bare "interrupted" and left at once: the runs saved only where the terminal's SIGINT reached
    # them too, still writing as the prompt came back, and a SIGINT to grutool alone left them training on.
    import signal
    import subprocess
    import sys
    import time

    # Runs of 100,000 epochs: the two first are still training when both have written a row, however loaded the
    # machine (with 30, a loaded machine let one finish first, and a third start, between two looks). The
    # resume lowers train.epochs (a change --resume accepts) to a few past where they stopped, so it trains
    # a few epochs per run, not the ~290 that 100 left to the two stopped runs and the third.
    config = write_config(tmp_path, epochs=100_000)
    cmd = [sys.executable, "-m", "grutool", "study", str(config), "--cells", "gru", "--seeds", "3", "--jobs", "2",
           "--threads", "2", "-o", str(tmp_path / "st"), "-q"]
    # SIGINT as a terminal's job has it, even where the tests run as a background job (ignored, inherited: the
    # study would never see the Ctrl-C and its runs would train on)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if len([p for p in (tmp_path / "st" / "runs").glob("*/metrics.jsonl") if p.read_text().strip()]) >= 2:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # grutool alone, as a terminal's Ctrl-C now reaches it
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("interrupted: saved ") and "--resume" in last, err
    assert [run["status"] for run in list_runs(tmp_path / "st")] == ["interrupted", "interrupted"]
    reached = max(len(p.read_text().splitlines()) for p in (tmp_path / "st" / "runs").glob("*/metrics.jsonl"))
    result = invoke("study", config, "--cells", "gru", "--seeds", "3", "--jobs", "2", "--threads", "2",
                    "-o", tmp_path / "st", "-q", "--resume", "--set", f"train.epochs={reached + 3}")
    assert result.exit_code == 0, result.output
    assert [run["status"] for run in list_runs(tmp_path / "st")] == ["finished"] * 3


def test_jobs_a_failing_run_is_said_at_once_and_the_others_stop_with_their_last_pt(tmp_path):
    # With --jobs, runs were collected in the study's order: a run that failed in its first second was said
    # only once every run before it had trained to its end (here a long one), and the others trained on for a
    # report that could not come.
    import subprocess
    import sys
    import time

    config = write_config(tmp_path, patience=None)
    study.run_study(config, ["gru", "lstm"], 1, study_dir=tmp_path / "st", latency_repeats=1)
    (tmp_path / "st" / "runs" / "lstm-seed3" / "last.pt").write_bytes(b"not a checkpoint")
    cmd = [sys.executable, "-m", "grutool", "study", str(config), "--cells", "gru,lstm", "--seeds", "1", "--jobs",
           "2", "--threads", "2", "-o", str(tmp_path / "st"), "-q", "--resume", "--set", "train.epochs=100000"]
    started = time.monotonic()
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr
    assert time.monotonic() - started < 120  # 100,000 epochs of the gru run would take hours
    last = result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr and last.startswith("error: ") and "lstm-seed3" in last, result.stderr
    assert "stopped and saved their last.pt" in last and "--resume" in last, last
    # the gru run stopped: after a step with its last.pt ('interrupted'), or, where the stop reached it while it
    # was still starting, before it had touched its finished run (which then stays 'finished'); never running on
    status = {Path(r["run"]).name: r["status"] for r in list_runs(tmp_path / "st")}
    assert status["gru-seed3"] in ("interrupted", "finished"), status
    assert not list((tmp_path / "st" / "runs").glob("*/.lock"))


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_jobs_runs_stop_with_their_last_pt_when_the_study_process_is_killed(tmp_path):
    # `kill -9` of `grutool study --jobs` left its runs (in sessions of their own) training on, orphaned and
    # holding their runs' locks; now each stops as after Ctrl-C within a second or two of the kill.
    import os
    import signal
    import subprocess
    import sys
    import time

    config = write_config(tmp_path, epochs=100000, patience=None)
    cmd = [sys.executable, "-m", "grutool", "study", str(config), "--cells", "gru", "--seeds", "2", "--jobs", "2",
           "--threads", "2", "-o", str(tmp_path / "st"), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if len([p for p in (tmp_path / "st" / "runs").glob("*/last.pt")]) == 2 and len(children_of(proc.pid)) == 2:
            break
        time.sleep(0.2)
    runs = children_of(proc.pid)
    assert len(runs) == 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 60
    while any(process_running(p) for p in runs) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in runs if process_running(p)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, "the study's runs trained on after the study was killed"
    assert [r["status"] for r in list_runs(tmp_path / "st")] == ["interrupted", "interrupted"]
    assert not list((tmp_path / "st" / "runs").glob("*/.lock"))


def test_the_learning_curves_of_one_epoch_runs_are_drawn(tmp_path, monkeypatch):
    """`grutool study CONFIG --seeds 1 --set train.epochs=1 --plot`: each curve is one point, and a line without
    markers drew nothing: the right panel was empty but for its legend."""
    pytest.importorskip("matplotlib")
    from grutool import curves

    result = {"monitor": "rmse", "cells": ["gru", "lstm"], "curves": {"a": [(1, None, 0.2, 1.0)],
                                                                      "b": [(1, None, 0.21, 0.9)]},
              "runs": [{"cell": "gru", "run": "a", "val": 0.2, "s_to_best": 0.08},
                       {"cell": "lstm", "run": "b", "val": 0.21, "s_to_best": 0.05}]}
    seen = {}
    monkeypatch.setattr(curves, "save_png", lambda fig, path, dpi: seen.setdefault("fig", fig))
    study.plot(result, tmp_path / "study.png")
    right = seen["fig"].axes[1]
    lines = right.get_lines()
    assert [len(line.get_xdata()) for line in lines] == [1, 1]
    assert all(line.get_marker() not in (None, "None", "", " ") for line in lines), [l.get_marker() for l in lines]
    assert list(right.get_xticks()) == [1]  # the epoch, not 0.96, 0.98 ... 1.04 around it


def test_the_terminal_s_differences_say_which_cell_each_row_compares_when_there_are_three_cells():
    # --cells gru,lstm,rnn: the terminal's table (no `cells` column, to fit 80 columns) showed val_accuracy,
    # test_accuracy ... twice, lstm's and rnn's rows alike, under the one title "against gru".
    def compared(b: str, value: float) -> dict:
        return {"metric": "val_accuracy", "a": "gru", "b": b, "diff": value, "ci95": 0.1, "ratio": None,
                "reading": "noise (p 0.5)"}

    result = {"cells": ["gru", "lstm", "rnn"], "cells_summary": {}, "monitor": "accuracy", "rate_unit": "tokens",
              "comparisons": [compared("lstm", 0.01), compared("rnn", -0.02)]}
    terminal = study.table_rows(result, terminal=True)["differences"]
    assert terminal[0][:2] == ["metric", "cell"] and [row[1] for row in terminal[1:]] == ["lstm", "rnn"]
    assert study.table_rows(result)["differences"][1][1] == "lstm - gru"  # report.md: the pair, as before
    result["cells"] = ["gru", "lstm"]
    result["comparisons"] = result["comparisons"][:1]
    assert study.table_rows(result, terminal=True)["differences"][0][:2] == ["metric", "difference"]  # one pair


def test_the_kernel_recorder_keeps_looking_past_an_epoch_that_trained_no_step():
    # A study run stopped by Ctrl-C after its epoch's last step resumes into an epoch with nothing left to train
    # (validation only): the recorder removed its hooks after that epoch, and the report said `? / compiled`.
    import types

    import torch

    from grutool.training.callbacks import KernelRecorder

    class Layer(torch.nn.Module):
        def path(self, x):
            return "compiled"

        def forward(self, x):
            return x

    model = torch.nn.Sequential(Layer())
    trainer = types.SimpleNamespace(model=model)
    recorder = KernelRecorder()
    recorder.on_train_begin(trainer)
    model.eval()
    model(torch.zeros(1))  # validation's call: not training's kernel
    recorder.on_epoch_end(trainer, {})
    model.train()
    model(torch.zeros(1))
    recorder.on_epoch_end(trainer, {})
    assert recorder.kernel == "compiled"
    model(torch.zeros(1))
    assert not recorder._hooks  # removed after the first epoch that trained
    recorder.on_train_end(trainer)


def test_a_cell_s_training_kernel_comes_from_any_seed_that_recorded_one(tmp_path):
    # A study resumed by an older grutool has no kernel for the run it continued: the cell read `? / compiled`
    # though its other seed had recorded one.
    config = write_config(tmp_path, epochs=1)
    study.run_study(config, ["gru"], 2, study_dir=tmp_path / "st", latency_repeats=1)
    plan = json.loads((tmp_path / "st" / study.PLAN).read_text(encoding="utf-8"))
    recorded = plan["kernels"].pop("gru-seed3")
    (tmp_path / "st" / study.PLAN).write_text(json.dumps(plan), encoding="utf-8")
    result = study.report(tmp_path / "st", latency_repeats=1)
    assert result["cells_summary"]["gru"]["kernel"]["train"] == recorded == plan["kernels"]["gru-seed4"]


def test_ctrl_c_while_the_report_is_written_says_how_to_get_it(tmp_path, monkeypatch):
    # Every run finished, then Ctrl-C while the runs were tested and timed: a bare `interrupted` (or a
    # traceback), no report, and no word that --resume reuses the runs and writes it.
    config = write_config(tmp_path, epochs=1)

    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(study, "report", stopped)
    result = invoke("study", config, "--cells", "gru", "--seeds", "1", "-o", tmp_path / "st", "-q")
    assert result.exit_code == 130, result.output
    assert result.output.strip().splitlines()[-1] == (f"interrupted: saved {tmp_path / 'st'}; continue with the "
                                                      f"same command plus --resume")


def test_a_resume_that_reuses_runs_trained_two_at_a_time_still_says_their_timings_shared_the_machine(tmp_path):
    # `study --jobs 2`, then the same command with --resume but without --jobs: every run reused, and the
    # rewritten report said "Runs trained one after another" of timings taken two at a time.
    config = write_config(tmp_path, epochs=1)
    first = study.run_study(config, ["gru"], 2, study_dir=tmp_path / "st", latency_repeats=1)
    assert first["jobs"] == 1 and "one after another" in (tmp_path / "st" / study.REPORT_MD).read_text()
    plan = json.loads((tmp_path / "st" / study.PLAN).read_text(encoding="utf-8"))
    plan.update(jobs=2, threads_per_run=1)  # as `--jobs 2 --threads 2` wrote it, before plan.json's `trained`
    plan.pop("trained", None)
    (tmp_path / "st" / study.PLAN).write_text(json.dumps(plan), encoding="utf-8")
    for _ in range(2):  # the resume that reads the older plan.json, then one that reads the plan it wrote
        result = study.run_study(config, ["gru"], 2, study_dir=tmp_path / "st", resume=True, latency_repeats=1)
        assert (result["jobs"], result["threads_per_run"]) == (2, 1)
        assert "Runs trained 2 at a time, 1 thread(s) each" in (tmp_path / "st" / study.REPORT_MD).read_text()
    # a run trained now, one at a time, beside them: the report still says some shared the machine
    third = study.run_study(config, ["gru"], 3, study_dir=tmp_path / "st", resume=True, latency_repeats=1)
    assert third["jobs"] == 2
    assert json.loads((tmp_path / "st" / study.PLAN).read_text())["trained"]["gru-seed5"] == {"jobs": 1, "threads": None}


def test_seconds_per_epoch_count_an_epoch_that_max_steps_cut_short_as_the_part_it_trained(tmp_path):
    # --set train.max_steps=6 on 25-batch epochs: s/epoch was the seconds of those 6 batches.
    config = write_config(tmp_path, epochs=2)
    result = study.run_study(config, ["gru"], 1, ["train.max_steps=1"], study_dir=tmp_path / "st", latency_repeats=1)
    summary = json.loads((tmp_path / "st" / "runs" / "gru-seed3" / "summary.json").read_text())
    assert summary["last_epoch_steps"] == 1 < summary["steps_per_epoch"]
    [row] = [json.loads(line) for line in (tmp_path / "st" / "runs" / "gru-seed3" / "metrics.jsonl").read_text().splitlines()]
    [run] = result["runs"]
    assert run["s_per_epoch"] == pytest.approx(row["epoch_time_s"] * summary["steps_per_epoch"])
    assert run["s_to_best"] == pytest.approx(row["epoch_time_s"])  # the time it took, as it was


def test_threads_without_jobs_hold_the_runs_to_that_budget(tmp_path):
    """`grutool study ... --threads 1` (no --jobs) trained every run, and timed the report, on torch's default
    count (its environment line said `2 torch threads`): the budget counted only with --jobs 2+."""
    import torch

    class Threads(Callback):
        seen: list = []

        def on_train_begin(self, trainer) -> None:
            self.seen.append(torch.get_num_threads())

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the suite runs on one thread; a study's default is more
    try:
        recorder = Threads()
        result = study.run_study(write_config(tmp_path, epochs=1), ["gru"], 1, study_dir=tmp_path / "st",
                                 callbacks=[recorder], latency_repeats=1, threads=1)
        assert recorder.seen == [1]
        assert result["env"]["torch_threads"] == 1, "the report's environment names the budget"
        assert torch.get_num_threads() == 2  # the caller's count afterwards
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("mean, sd, shown", [
    (0.98648, 0.0027, "0.9865 ± 0.0027"),
    (0.000812345, 0.0000412, "8.123e-04 ± 4.12e-05"),  # read `0.0008 ± 0.0000` (a forecaster's mse in its units)
    (0.024, 0.0, "0.02400 ± 0.00000"),
    (1234.5, 12.3, "1,234 ± 12"),
])
def test_the_reports_figures_keep_four_significant_digits(mean, sd, shown):
    from grutool.study import mean_pm

    assert mean_pm({"mean": mean, "sd": sd}) == shown
    assert mean_pm({"mean": 12.3456, "sd": 0.5}, 3) == "12.346 ± 0.500"  # seconds: fixed decimals, as asked
