"""grutool tune on Optuna: trials as run directories, pruning through the training callbacks, best.yaml, resume."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import invoke
from grutool import tune
from grutool.config_file import load_config
from grutool.errors import TrainingInterrupted, UserError
from grutool.runs import list_runs
from grutool.training.loop import train
from test_study import Counter, write_config

optuna = pytest.importorskip("optuna")

SPACE = "train.lr: {float: [1.0e-3, 3.0e-2], log: true}\nmodel.hidden_size: {int: [4, 12], step: 4}\n"


class PruneTrial(optuna.pruners.BasePruner):
    """Prunes trial `number` at its first report: a pruned trial on demand."""

    def __init__(self, number):
        self.number = number

    def prune(self, study, trial):
        return trial.number == self.number


@pytest.fixture
def setup(tmp_path):
    config = write_config(tmp_path)
    (tmp_path / "space.yaml").write_text(SPACE, encoding="utf-8")
    return tmp_path, config, tmp_path / "space.yaml"


def read_trials(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_four_trials_one_pruned_and_best_yaml_retrains_to_the_best(setup):
    root, config, space = setup
    lines = []
    result = tune.tune(config, space, 4, tune_dir=root / "tu", pruner=PruneTrial(2), sampler="random",
                       on_trial=lambda rec, best: lines.append((rec.number, rec.state)))
    assert lines == [(0, "complete"), (1, "complete"), (2, "pruned"), (3, "complete")]
    trials = read_trials(root / "tu" / tune.TRIALS)
    assert [t["state"] for t in trials] == ["complete", "complete", "pruned", "complete"]
    pruned_run = Path(trials[2]["runs"][0])
    assert json.loads((pruned_run / "summary.json").read_text())["epochs"] == 1  # stopped after epoch 1 of 2
    listed = list_runs(root / "tu")
    assert len(listed) == 4  # every trial a run directory
    # the pruned trial's run says so (it was listed as finished)
    assert {Path(r["run"]).name: r["status"] for r in listed} == {
        Path(t["runs"][0]).name: "pruned" if t["state"] == "pruned" else "finished" for t in trials}
    table = invoke("runs", root / "tu")
    assert next(line for line in table.stdout.splitlines() if pruned_run.name in line).rstrip().endswith("pruned")
    best = result["best"]
    assert best["value"] == max(t["value"] for t in trials if t["state"] == "complete")
    # best.yaml names the trial's run folder: after a kill a trial's number and its folder's differ
    assert f"# Its run: {best['runs'][0]}\n" in (root / "tu" / tune.BEST).read_text()
    cfg = load_config(root / "tu" / tune.BEST, [f"output_dir={root / 'retrained'}"])
    assert cfg.train.lr == best["params"]["train.lr"] and cfg.model.hidden_size == best["params"]["model.hidden_size"]
    assert train(cfg)["best"] == best["value"]
    assert Path(tune.plot(result, root / "tu" / tune.PLOT)).stat().st_size > 10_000


def test_cli_line_per_trial_and_grid(setup):
    root, config, space = setup
    (root / "grid.yaml").write_text("model.hidden_size: {int: [4, 8], step: 4}\n", encoding="utf-8")
    result = invoke("tune", config, "--space", root / "grid.yaml", "--trials", "5", "--sampler", "grid",
                    "--pruner", "none", "-o", root / "tg", "-q")
    assert result.exit_code == 0, result.output
    trial_lines = [line for line in result.stdout.splitlines() if line.startswith("trial")]
    assert len(trial_lines) == 2  # the grid has two points: the study stops there, and says why
    assert "grid: all 2 points tried, so the search ended before --trials 5" in result.stdout
    assert "model.hidden_size=4" in result.stdout and "model.hidden_size=8" in result.stdout
    assert "best: trial" in result.stdout and (root / "tg" / tune.BEST).is_file()


def test_resume_continues_an_interrupted_trial(setup):
    root, config, space = setup
    killer = Counter(stop_run=2)
    with pytest.raises(TrainingInterrupted):
        tune.tune(config, space, 3, tune_dir=root / "tu", pruner="none", callbacks=[killer])
    counter = Counter()
    result = tune.tune(config, space, 3, tune_dir=root / "tu", pruner="none", callbacks=[counter], resume=True)
    assert counter.first_steps == [3, 0]  # trial 1's run from its last.pt, then one new trial
    states = {t["number"]: t["state"] for t in result["trials"]}
    assert states == {0: "complete", 1: "fail", 2: "complete", 3: "complete"}
    continued = next(t for t in result["trials"] if t["number"] == 2)
    assert continued["runs"] == [str(root / "tu" / "trials" / "0001-seed3")]
    assert continued["params"] == next(t for t in result["trials"] if t["number"] == 1)["params"]
    # trials.jsonl said "fail" with "error": null for the trial Ctrl-C stopped
    stopped = next(t for t in read_trials(root / "tu" / tune.TRIALS) if t["number"] == 1)
    assert "interrupted (Ctrl-C)" in stopped["error"] and "continues its runs" in stopped["error"]


def test_an_interrupted_baseline_trial_is_continued_as_the_config_as_given(setup):
    # Ctrl-C in trial 0 (the config as given): the trial that continued it lost its "(the config as given)"
    root, config, space = setup
    with pytest.raises(TrainingInterrupted):
        tune.tune(config, space, 2, tune_dir=root / "tu", pruner="none", callbacks=[Counter(stop_run=1)])
    result = tune.tune(config, space, 2, tune_dir=root / "tu", pruner="none", resume=True)
    continued = next(t for t in result["trials"] if t["runs"] == [str(root / "tu" / "trials" / "0000-seed3")]
                     and t["state"] == "complete")
    assert continued["number"] != 0 and continued["baseline"]


class PruneAll(optuna.pruners.BasePruner):
    def prune(self, study, trial):
        return True


def test_a_trial_is_not_pruned_after_its_last_epoch(setup):
    # "pruned after epoch 2: ... behind the other trials" for a trial that had trained every epoch: nothing was
    # stopped, yet it was recorded (and listed by `grutool runs`) as pruned
    root, config, space = setup
    result = tune.tune(config, space, 2, ["train.epochs=1"], tune_dir=root / "one", pruner=PruneAll())
    assert [t["state"] for t in result["trials"]] == ["complete", "complete"]
    result = tune.tune(config, space, 1, tune_dir=root / "two", pruner=PruneAll(), baseline=False)
    assert [t["state"] for t in result["trials"]] == ["pruned"]  # after epoch 1 of 2 it still is


def test_resume_after_a_killed_process(setup):
    root, config, space = setup
    params = tune.load_space(space, config)
    storage = f"sqlite:///{(root / 'tu' / tune.DB).resolve()}"
    (root / "tu").mkdir()
    study = optuna.create_study(storage=storage, study_name="tiny", direction="maximize")
    dead = subprocess.Popen(["true"])
    dead.wait()
    trial = study.ask()  # left RUNNING by a process that is gone
    chosen = {p.path: p.suggest(trial) for p in params}
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", dead.pid)
    assert dead.pid != os.getpid()
    result = tune.tune(config, space, 1, tune_dir=root / "tu", resume=True)
    states = [(t["number"], t["state"]) for t in result["trials"]]
    assert states == [(0, "fail"), (1, "complete")]
    assert result["trials"][1]["params"] == chosen


def test_a_timeout_before_the_first_trial_says_no_trial_ran(setup):
    # "no trial completed; see DIR/trials.jsonl", an empty file
    root, config, space = setup
    result = invoke("tune", config, "--space", space, "--trials", "2", "--timeout", "0.000001", "-o", root / "tu")
    assert result.exit_code == 0, result.output
    assert "no trial ran: --timeout 1e-06 s had passed before the first" in result.output
    assert (root / "tu" / tune.TRIALS).read_text() == ""


def test_a_timeout_of_0_is_refused_before_anything_is_written(setup):
    # It ran no trial, exited 0 and left optuna.db, trials.jsonl and tune.json behind.
    from conftest import assert_user_error

    root, config, space = setup
    assert_user_error(invoke("tune", config, "--space", space, "--trials", "2", "--timeout", "0", "-o", root / "tu"),
                      "--timeout 0: no trial could start", "(more than 0), or leave it out")
    assert not (root / "tu").exists()


def test_existing_tune_needs_resume(setup):
    root, config, space = setup
    tune.tune(config, space, 1, tune_dir=root / "tu")
    result = invoke("tune", config, "--space", space, "--trials", "2", "-o", root / "tu")
    assert result.exit_code == 2 and "add --resume" in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1


def test_resume_where_there_is_no_tune_says_it_starts_a_new_one(setup, caplog):
    # A mistyped -o with --resume started a second tune without a word.
    root, config, space = setup
    with caplog.at_level("WARNING", logger="grutool"):
        tune.tune(config, space, 1, tune_dir=root / "new", resume=True)
    said = [r.getMessage() for r in caplog.records if "to resume" in r.getMessage()]
    assert said == [f"{root / 'new'}: no tune there to resume; starting a new one"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="grutool"):
        tune.tune(config, space, 2, tune_dir=root / "new", resume=True)  # there now: resumed, nothing said
    assert not [r for r in caplog.records if "to resume" in r.getMessage()]
    assert len(read_trials(root / "new" / tune.TRIALS)) == 2


def test_a_resume_without_plot_says_the_picture_is_of_earlier_trials(setup):
    pytest.importorskip("matplotlib")
    root, config, space = setup
    first = invoke("tune", config, "--space", space, "--trials", "2", "-o", root / "tu", "--plot", "-q")
    assert first.exit_code == 0 and (root / "tu" / tune.PLOT).is_file(), first.output
    again = invoke("tune", config, "--space", space, "--trials", "3", "-o", root / "tu", "--resume", "-q")
    assert again.exit_code == 0, again.output
    assert f"warning: {root / 'tu' / tune.PLOT} was drawn before these trials; add --plot" in again.stderr


@pytest.mark.parametrize("name,config", [("sentiment", "sentiment"), ("atis", "atis"), ("atis_narrow", "atis")])
def test_shipped_spaces_fit_their_configs(name, config):
    root = Path(__file__).resolve().parents[2]
    params = tune.load_space(root / "configs" / "spaces" / f"{name}.yaml", root / "configs" / f"{config}.yaml")
    assert params and all(p.path in tune.config_paths() for p in params)
    own = tune.config_values(load_config(root / "configs" / f"{config}.yaml"), params)
    assert all(p.contains(own[p.path]) for p in params), "trial 0 is the config as shipped"


def test_prune_after_keeps_the_median_pruner_off_for_the_first_epochs():
    """A trial far behind two finished ones: pruned at its first epoch by default, not before --prune-after.
    (Hyperband takes it as its min_resource, the first rung.)"""
    def pruned_at(prune_after: int):
        study = optuna.create_study(direction="maximize", pruner=tune.make_pruner("median", 10, prune_after),
                                    sampler=optuna.samplers.RandomSampler(seed=0))
        for _ in range(2):
            good = study.ask()
            for step in range(1, 11):
                good.report(0.9, step)
            study.tell(good, 0.9)
        bad = study.ask()
        for step in range(1, 11):
            bad.report(0.1, step)
            if bad.should_prune():
                return step
        return None

    assert pruned_at(1) == 1
    assert pruned_at(4) == 4


def test_prune_after_beyond_the_epochs_is_refused_before_any_trial(setup):
    root, config, space = setup
    result = invoke("tune", config, "--space", space, "--trials", "2", "-o", root / "tu", "--prune-after", "3")
    assert result.exit_code == 2 and "prune-after: 3 epochs is more than a trial trains (2" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    assert not (root / "tu").exists()
    assert invoke("tune", config, "--space", space, "--trials", "1", "-o", root / "tu",
                  "--prune-after", "0").exit_code == 2


# --- --jobs: trials in their own processes ------------------------------------------------------------


def test_jobs_two_processes_share_four_trials(setup):
    root, config, space = setup
    result = invoke("tune", config, "--space", space, "--trials", "4", "--jobs", "2", "--threads", "2",
                    "--sampler", "random", "--pruner", "none", "-o", root / "tj", "-q")
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("trial")]
    assert len(lines) == 4 and all(re.match(r"trial +\d complete +0\.\d{4} .*\| best 0\.\d{4}", line) for line in lines)
    trials = read_trials(root / "tj" / tune.TRIALS)
    assert sorted(t["number"] for t in trials) == [0, 1, 2, 3] and {t["state"] for t in trials} == {"complete"}
    runs = [run for t in trials for run in t["runs"]]
    assert sorted(Path(run).name for run in runs) == [f"000{n}-seed3" for n in range(4)]  # none lost or twice
    assert all(json.loads((Path(run) / "summary.json").read_text())["epochs"] == 2 for run in runs)
    study = optuna.load_study(study_name="tiny", storage=tune.open_storage(f"sqlite:///{root / 'tj' / tune.DB}"))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 4  # nothing more in the storage
    pids = {t.user_attrs["pid"] for t in study.trials}
    assert len(pids) == 4 and os.getpid() not in pids  # each trial trained in a process of its own
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 4
    best = yaml.safe_load((root / "tj" / tune.BEST).read_text())
    winner = max(trials, key=lambda t: t["value"])
    assert best["train"]["lr"] == winner["params"]["train.lr"]


def _start(root, config, space, *extra) -> subprocess.Popen:
    """`grutool tune --jobs 2` in a process of its own, with trials long enough to stop midway; returns once
    both trials have finished an epoch."""
    cmd = [sys.executable, "-m", "grutool", "tune", str(config), "--space", str(space), "--trials", "3", "--jobs",
           "2", "--threads", "2", "--pruner", "none", "--set", "train.epochs=30", "-o", str(root / "tj"),
           "-q", *extra]
    # SIGINT as a terminal's job has it, even where the tests run as a background job (ignored, inherited)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        started = [p for p in (root / "tj" / "trials").glob("*/metrics.jsonl") if p.read_text().strip()]
        if len(started) == 2:
            return proc
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"the trials did not start: {proc.communicate()}")


def _children(pid: int) -> list[int]:
    """The processes `pid` started, from any of its threads (Optuna's threads start the trials)."""
    return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]


def test_jobs_ctrl_c_stops_every_trial_and_resume_continues_them(setup):
    root, config, space = setup
    # The resume must give the same --set (tune refuses another: its trials could not be ranked together), so the
    # trials keep their 30 epochs rather than the study test's 100,000 lowered on resume.
    proc = _start(root, config, space)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted: saved ")
    stopped = read_trials(root / "tj" / tune.TRIALS)
    assert [t["state"] for t in stopped] == ["fail", "fail"]
    assert all((Path(t["runs"][0]) / "last.pt").is_file() for t in stopped)
    result = invoke("tune", config, "--space", space, "--trials", "3", "--jobs", "2", "--threads", "2", "--pruner",
                    "none", "--set", "train.epochs=30", "-o", root / "tj", "-q", "--resume")
    assert result.exit_code == 0, result.output
    trials = read_trials(root / "tj" / tune.TRIALS)
    assert sorted(t["state"] for t in trials) == ["complete"] * 3 + ["fail"] * 2
    continued = [t for t in trials if t["state"] == "complete" and t["runs"] in [s["runs"] for s in stopped]]
    assert len(continued) == 2  # both interrupted trials ran again, continuing their runs


def test_jobs_ctrl_c_before_the_trials_train_runs_them_again_on_resume(setup):
    """Stopped while its process was still starting (before its training loop), a trial was left failed, not
    interrupted, and `--resume` never ran it again: the baseline (the config as given) was lost for good, and
    the best trial could be worse than the config the search started from."""
    root, config, space = setup
    # trials long enough (300 epochs, ~5 s) that the SIGINT, sent while they start, cannot arrive after they have
    # ended: with 30, a CI run once saw the baseline trial complete before the search's handler passed it on
    cmd = [sys.executable, "-m", "grutool", "tune", str(config), "--space", str(space), "--trials", "2", "--jobs",
           "2", "--threads", "2", "--pruner", "none", "--set", "train.epochs=300", "-o", str(root / "tj"), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    def trial_processes() -> list[int]:  # not any other child (a compiler's version check, say)
        found = []
        for pid in _children(proc.pid):
            try:
                if b"grutool.tune" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(pid)
            except OSError:  # ended meanwhile
                pass
        return found

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and len(trial_processes()) < 2:
        time.sleep(0.05)
    assert not list((root / "tj").glob("trials/*/metrics.jsonl")), "stopped too late: a trial had trained"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    stopped = read_trials(root / "tj" / tune.TRIALS)
    assert [t["state"] for t in stopped] == ["fail", "fail"] and any(t["baseline"] for t in stopped)
    assert all(t["error"].startswith("interrupted (Ctrl-C)") for t in stopped), stopped
    result = invoke("tune", config, "--space", space, "--trials", "2", "--jobs", "2", "--threads", "2", "--pruner",
                    "none", "--set", "train.epochs=300", "-o", root / "tj", "-q", "--resume")
    assert result.exit_code == 0, result.output
    done = [t for t in read_trials(root / "tj" / tune.TRIALS) if t["state"] == "complete"]
    assert len(done) == 2 and any(t["baseline"] for t in done), done  # both ran again, the baseline among them
    assert {tuple(sorted(t["params"].items())) for t in stopped} <= {tuple(sorted(t["params"].items())) for t in done}


def test_jobs_a_trial_process_that_dies_is_one_line_and_exit_1(setup):
    root, config, space = setup
    proc = _start(root, config, space)
    os.kill(_children(proc.pid)[0], signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: trial ") and "exit code -9" in lines[0], err
    assert sorted(t["state"] for t in read_trials(root / "tj" / tune.TRIALS)) == ["fail", "fail"]


def test_a_trial_whose_values_the_config_refuses_together_is_said_as_the_trials(tmp_path):
    # Each value passes the space's check alone; one layer with layer_norm fails as a trial. It read
    # `--set model.layer_norm=true: ...`, a --set nobody typed.
    raw = yaml.safe_load(write_config(tmp_path).read_text())
    raw["model"]["num_layers"] = 2
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    (tmp_path / "s.yaml").write_text("model.num_layers: {categorical: [1, 2]}\n"
                                     "model.layer_norm: {categorical: [true, false]}\n", encoding="utf-8")
    tune.tune(tmp_path / "c.yaml", tmp_path / "s.yaml", 4, tune_dir=tmp_path / "tu", sampler="grid", pruner="none")
    [failed] = [t for t in read_trials(tmp_path / "tu" / tune.TRIALS) if t["state"] == "fail"]
    assert failed["params"] == {"model.num_layers": 1, "model.layer_norm": True}
    assert failed["error"].startswith("the trial's model.layer_norm=true: model.layer_norm: acts between recurrent "
                                      "layers"), failed["error"]


def test_every_trial_is_scored_on_the_base_configs_monitor(tmp_path):
    # A seq2seq config leaving train.monitor out: bleu on words, exact_match on characters. A space varying the
    # tokenizer gave its trials one each, and ranked bleu against exact_match ("best: validation bleu 0.015", an
    # exact_match figure). The search's monitor is pinned: a value that rules it out is refused up front.
    root = Path(__file__).resolve().parents[2] / "data" / "reverse"
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump({"task": "seq2seq", "data": {
        "train": str(root / "train"), "validation": str(root / "validation"), "format": "parallel_text",
        "source": "src", "target": "tgt"}, "train": {"epochs": 1, "max_steps": 3}}), encoding="utf-8")
    (tmp_path / "sp.yaml").write_text("data.tokenizer: {categorical: [word, char]}\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"sp.yaml:1:1: data.tokenizer: the config refuses char \(the search's "
                                        r"train.monitor=bleu: train.monitor: 'bleu' counts word n-grams"):
        tune.tune(config, tmp_path / "sp.yaml", 2, tune_dir=tmp_path / "t1", sampler="grid", pruner="none")
    tune.tune(config, tmp_path / "sp.yaml", 2, ["train.monitor=exact_match"], tune_dir=tmp_path / "t2",
              sampler="grid", pruner="none")
    runs = [Path(run) for t in read_trials(tmp_path / "t2" / tune.TRIALS) for run in t["runs"]]
    assert len(runs) == 2 and {load_config(r / "config.yaml", saved=True).train.monitor for r in runs} == {"exact_match"}


def test_jobs_need_threads_and_a_named_pruner(setup):
    root, config, space = setup
    with pytest.raises(UserError, match="jobs: 3 trials at once need at least 3 threads"):
        tune.tune(config, space, 2, tune_dir=root / "tu", jobs=3, threads=2)
    with pytest.raises(UserError, match="jobs: train.num_threads 2 × 2 jobs"):
        tune.tune(config, space, 2, ["train.num_threads=2"], tune_dir=root / "tu", jobs=2, threads=2)
    with pytest.raises(UserError, match="pruner: with jobs > 1"):
        tune.tune(config, space, 2, tune_dir=root / "tu", jobs=2, threads=2, pruner=PruneTrial(0))
    assert not (root / "tu").exists()


def test_sqlite_storage_gives_each_enqueued_trial_to_one_asker(tmp_path):
    """Threads (and processes) asking at once: SQLite has no SELECT ... FOR UPDATE, so without BEGIN IMMEDIATE
    two askers take one enqueued trial and the second fails with "Cannot tell a COMPLETE trial" (2 runs in 3
    on the plain URL here)."""
    for rep in range(2):
        study = optuna.create_study(study_name="race", storage=tune.open_storage(f"sqlite:///{tmp_path / f'{rep}.db'}"))
        for i in range(30):
            study.enqueue_trial({"x": float(i)})
        study.optimize(lambda t: t.suggest_float("x", 0, 100), n_trials=30, n_jobs=4)
        assert sorted(t.params["x"] for t in study.trials) == [float(i) for i in range(30)]
        assert {t.state.name for t in study.trials} == {"COMPLETE"}


def test_jobs_grid_runs_each_point_once(setup):
    root, config, _ = setup
    (root / "grid.yaml").write_text("model.hidden_size: {int: [4, 8], step: 4}\n", encoding="utf-8")
    result = tune.tune(config, root / "grid.yaml", 5, tune_dir=root / "tg", sampler="grid", pruner="none", jobs=2,
                       threads=2)
    assert sorted(t["params"]["model.hidden_size"] for t in result["trials"]) == [4, 8]  # no third, repeated point


def test_first_trial_is_the_config_as_given_when_the_space_holds_it(setup, caplog):
    root, config, space = setup
    cfg = load_config(config)
    space.write_text(f"train.lr: {{float: [{cfg.train.lr / 2}, {cfg.train.lr * 2}], log: true}}\n"
                     f"model.hidden_size: {{int: [4, 12], step: 4}}\n", encoding="utf-8")
    assert tune.Param("model.hidden_size", "int", 4, 12, 4).contains(cfg.model.hidden_size)
    result = tune.tune(config, space, 2, tune_dir=root / "tb", sampler="random")
    first = result["trials"][0]
    assert first["baseline"] and first["params"] == {"train.lr": cfg.train.lr,
                                                     "model.hidden_size": cfg.model.hidden_size}
    assert not result["trials"][1]["baseline"]
    # the baseline trial trains exactly the config: the same best as `grutool train` on it
    retrained = load_config(config, [f"output_dir={root / 'plain'}"])
    assert train(retrained)["best"] == first["value"]
    # a resumed study does not queue it again
    again = tune.tune(config, space, 3, tune_dir=root / "tb", sampler="random", resume=True)
    assert [t["baseline"] for t in again["trials"]] == [True, False, False]


def test_no_baseline_trial_when_the_config_lies_outside_the_space_or_it_is_turned_off(setup, caplog):
    root, config, space = setup
    cfg = load_config(config)
    space.write_text("model.hidden_size: {int: [12, 16], step: 4}\n", encoding="utf-8")  # the config has 8
    assert cfg.model.hidden_size == 8
    result = tune.tune(config, space, 1, tune_dir=root / "out", sampler="random")
    assert not result["trials"][0]["baseline"] and result["trials"][0]["params"]["model.hidden_size"] in (12, 16)
    assert "model.hidden_size=8 is outside the space" in caplog.text
    space.write_text("model.hidden_size: {int: [4, 12], step: 4}\n", encoding="utf-8")
    result = invoke("tune", config, "--space", space, "--trials", "1", "--no-baseline", "--sampler", "random",
                    "-o", root / "off", "-q")
    assert result.exit_code == 0, result.output
    assert "config as given" not in result.stdout
    assert not read_trials(root / "off" / tune.TRIALS)[0]["baseline"]


@pytest.mark.parametrize("param, value, inside", [
    (tune.Param("a", "int", 4, 12, 4), 8, True), (tune.Param("a", "int", 4, 12, 4), 10, False),
    (tune.Param("a", "int", 4, 12, 4), 16, False), (tune.Param("a", "float", 0.1, 0.5), 0.3, True),
    (tune.Param("a", "float", 1e-6, 1e-3, log=True), 0.0, False), (tune.Param("a", "float", 0.0, 1.0, 0.25), 0.5, True),
    (tune.Param("a", "categorical", choices=[8, 16]), 16, True), (tune.Param("a", "categorical", choices=[8, 16]), 8.0, False),
    (tune.Param("a", "categorical", choices=[True, False]), 1, False), (tune.Param("a", "int", 0, 2), True, False)])
def test_contains(param, value, inside):
    assert param.contains(value) is inside


@pytest.mark.parametrize("name, entry", [("sines.yaml", "model.segment_length: {categorical: [7, 14]}"),
                                         ("numeric_regression.yaml", "model.input_noise: {float: [0.0, 0.3]}")])
def test_tune_minimises_a_forecaster_s_and_a_regressor_s_error(tmp_path, name, entry):
    # The numeric families' monitors are errors (mse, rmse): the search minimises them, and best.yaml retrains.
    from conftest import shipped_config

    raw = shipped_config(name, tmp_path / "unused", train={"epochs": 1, "device": "cpu"})
    (tmp_path / name).write_text(yaml.safe_dump(raw), encoding="utf-8")
    (tmp_path / "space.yaml").write_text(entry + "\n", encoding="utf-8")
    result = tune.tune(tmp_path / name, tmp_path / "space.yaml", 2, tune_dir=tmp_path / "tu", pruner="none",
                       sampler="random")
    trials = read_trials(tmp_path / "tu" / tune.TRIALS)
    assert [t["state"] for t in trials] == ["complete", "complete"]
    assert result["best"]["value"] == min(t["value"] for t in trials)
    cfg = load_config(tmp_path / "tu" / tune.BEST, [f"output_dir={tmp_path / 'again'}"])
    assert train(cfg)["best"] == result["best"]["value"]


def test_a_missing_extra_names_the_readme_install_command(monkeypatch):
    # it said `pip install 'grutool[tune]'`, which fails for grutool installed from its source folder
    import builtins

    from grutool.curves import _pyplot
    from grutool.errors import UserError
    from grutool.tune import _optuna

    real = builtins.__import__

    def without(name, *args, **kwargs):
        if name.split(".")[0] in ("optuna", "matplotlib"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without)
    for call, extra in ((_optuna, "tune"), (_pyplot, "plot")):
        with pytest.raises(UserError) as e:
            call()
        assert f"python -m pip install -c constraints.txt -e '.[{extra}]' in grutool's source folder" in str(e.value)


def test_the_importance_axis_names_the_evaluator_that_ran_and_optuna_warns_nothing(setup, monkeypatch, recwarn):
    """The axis said 'importance (fANOVA)' while Optuna 5's default, PED-ANOVA, ran (fANOVA needs scikit-learn),
    and a few trials printed Optuna's 'Target and region quantiles select the same set of trials' warning."""
    pytest.importorskip("matplotlib")
    root, config, space = setup
    result = tune.tune(config, space, 3, tune_dir=root / "tu", sampler="random", pruner="none")
    used, figures = [], []
    real = optuna.importance.get_param_importances

    def spy(study, *args, evaluator=None, **kwargs):
        used.append(evaluator)
        return real(study, *args, evaluator=evaluator, **kwargs)

    monkeypatch.setattr(optuna.importance, "get_param_importances", spy)
    import grutool.curves
    monkeypatch.setattr(grutool.curves, "save_png", lambda fig, path, **kw: figures.append(fig))
    tune.plot(result, root / "tu" / tune.PLOT)
    assert len(used) == 1 and len(figures) == 1
    evaluator = used[0] if used[0] is not None else optuna.importance.PedAnovaImportanceEvaluator()  # 5.x default
    method = {"PedAnovaImportanceEvaluator": "PED-ANOVA", "FanovaImportanceEvaluator": "fANOVA",
              "MeanDecreaseImpurityImportanceEvaluator": "mean decrease impurity"}[type(evaluator).__name__]
    assert method in figures[0].axes[1].get_xlabel()
    assert not [w for w in recwarn if "quantiles" in str(w.message) or "will be equal" in str(w.message)]


def test_an_older_tune_s_best_yaml_with_a_setting_the_family_never_reads_says_to_remove_it(tmp_path):
    """Older grutool accepted `data.tag_column: tags` in a classifier config and tune wrote it into best.yaml;
    today's tune writes best.yaml through today's rules, so only such old files hold one. `train` refuses it as it
    refuses any config the user writes (best.yaml is one to edit, not a run's record): the line and the setting
    are named, and now the fix too (was: `...: only for task tagger or joint (task is classifier)`, no fix)."""
    from conftest import assert_user_error, tiny_config
    from grutool.config_file import to_yaml

    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(tiny_config(tmp_path)), encoding="utf-8")
    text = to_yaml(load_config(tmp_path / "tiny.yaml"))
    assert "tag_column: null" in text, "today's best.yaml keeps the setting at its default"
    best = tmp_path / "tune" / "best.yaml"
    best.parent.mkdir()
    best.write_text("# grutool tune: trial 2, validation accuracy 0.9 (train.lr=0.01).\n"
                    + text.replace("tag_column: null", "tag_column: tags"), encoding="utf-8")
    line = next(n for n, l in enumerate(best.read_text(encoding="utf-8").splitlines(), 1) if "tag_column" in l)
    assert_user_error(invoke("train", best, "--dry-run"), f"{best}:{line}:",
                      "data.tag_column: only for task tagger or joint (task is classifier, which never reads it); "
                      "remove it")


def test_resume_with_other_settings_is_refused_before_any_write(setup):
    # `--resume --set train.epochs=1` after trials of 2 epochs ran on, ranked its trials with the others, and
    # rewrote best.yaml with epochs 1: `grutool train best.yaml` no longer trained the best trial.
    root, config, space = setup
    tune.tune(config, space, 1, tune_dir=root / "tu", pruner="none")
    before = {p: p.stat().st_mtime_ns for p in (root / "tu").rglob("*") if p.is_file()}
    (root / "narrow.yaml").write_text("train.lr: {float: [1.0e-3, 3.0e-2], log: true}\n", encoding="utf-8")
    for args, said in ((["--set", "train.epochs=1"], "searched with no --set (now --set train.epochs=1)"),
                       (["--seeds", "2"], "--seeds 1 (now 2)"),
                       (["--space", root / "narrow.yaml"], "other space entries")):
        command = ["tune", config, "--space", space, "--trials", "2", "-o", root / "tu", "--resume", *args]
        if "--space" in args:
            command[2:4] = []
        result = invoke(*command)
        assert result.exit_code == 2 and said in result.output, result.output
        assert len([line for line in result.output.splitlines() if line.strip()]) == 1
    # the same command over an edited config file: its trials trained with batch_size 4
    raw = yaml.safe_load(config.read_text(encoding="utf-8"))
    was = raw["train"]["batch_size"]
    raw["train"]["batch_size"] = was * 2
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = invoke("tune", config, "--space", space, "--trials", "2", "-o", root / "tu", "--resume")
    assert result.exit_code == 2, result.output
    assert f"another config (train.batch_size {was} in its trials, {was * 2} now)" in result.output
    assert {p: p.stat().st_mtime_ns for p in (root / "tu").rglob("*") if p.is_file()} == before
    raw["train"]["batch_size"] = was
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert len(tune.tune(config, space, 2, tune_dir=root / "tu", pruner="none", resume=True)["trials"]) == 2


def test_best_yaml_says_what_its_one_seed_gave_when_the_value_is_a_mean_of_seeds(setup):
    # --seeds 2: best.yaml's header gave the two runs' mean, and `grutool train best.yaml` (its first seed
    # alone) trained to another figure, with nothing saying which to expect.
    root, config, space = setup
    result = tune.tune(config, space, 1, tune_dir=root / "tu", pruner="none", seeds=2)
    runs = result["best"]["runs"]
    first = json.loads((Path(runs[0]) / "summary.json").read_text())["best"]
    header = (root / "tu" / tune.BEST).read_text().splitlines()[0]
    assert f"validation accuracy {result['best']['value']:.6g}, the mean of its 2 seeds' runs" in header, header
    assert f"train.seed 3, as below, gave {first:.6g}" in header, header
    assert load_config(root / "tu" / tune.BEST).train.seed == 3
    one = tune.tune(config, space, 1, tune_dir=root / "one", pruner="none")
    assert "mean" not in (root / "one" / tune.BEST).read_text().splitlines()[0]


def test_the_history_of_one_trial_has_whole_trial_numbers_and_no_empty_importance_axes(setup, monkeypatch):
    # One trial: the history's axis read -0.04, -0.02, 0.00 ...; the importance panel was empty 0-1 axes under
    # a title that ran past the picture's edge.
    pytest.importorskip("matplotlib")
    root, config, space = setup
    result = tune.tune(config, space, 1, tune_dir=root / "tu", pruner="none")
    figures = []
    import grutool.curves
    monkeypatch.setattr(grutool.curves, "save_png", lambda fig, path, **kw: figures.append(fig))
    tune.plot(result, root / "tu" / tune.PLOT)
    left, right = figures[0].axes
    figures[0].canvas.draw()
    ticks = [t for t in left.get_xticks() if left.get_xlim()[0] <= t <= left.get_xlim()[1]]
    assert ticks == [0.0], ticks
    assert right.get_title() == "parameter importances" and not right.axison
    assert any("too few completed trials" in t.get_text() for t in right.texts)


@pytest.mark.parametrize("path, entry, decides", [
    ("data.horizon", "{int: [7, 14]}", "how many rows each window forecasts"),
    ("data.setting", "{categorical: [M, S]}", "which columns are forecast"),
])
def test_a_space_may_not_search_what_validation_scores(tmp_path, path, entry, decides):
    """A forecaster's space with data.horizon ranked a 7-row horizon's MSE against a 14-row one's: the shortest
    won. Settings that decide what validation scores (Task.scored) are refused before any trial."""
    root = Path(__file__).resolve().parents[2]
    space = tmp_path / "space.yaml"
    space.write_text(f"train.lr: {{float: [1.0e-3, 1.0e-2]}}\n{path}: {entry}\n")
    with pytest.raises(UserError, match=re.escape(f"space.yaml:2:1: {path}: it decides {decides}")):
        tune.load_space(space, root / "configs" / "sines.yaml")
    space.write_text("train.lr: {float: [1.0e-3, 1.0e-2]}\nmodel.hidden_size: {int: [8, 16]}\n")
    assert [p.path for p in tune.load_space(space, root / "configs" / "sines.yaml")] == ["train.lr",
                                                                                      "model.hidden_size"]


def test_threads_without_jobs_hold_the_trials_to_that_budget(setup):
    """`grutool tune ... --threads 1` (no --jobs) trained its trials on torch's default count: the budget counted
    only with --jobs 2+."""
    import torch

    from grutool.training.callbacks import Callback

    class Threads(Callback):
        def __init__(self):
            self.seen = []

        def on_train_begin(self, trainer) -> None:
            self.seen.append(torch.get_num_threads())

    root, config, space = setup
    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the suite runs on one thread; a search's default is more
    try:
        recorder = Threads()
        tune.tune(config, space, 1, tune_dir=root / "threads", pruner="none", callbacks=[recorder], threads=1)
        assert recorder.seen == [1] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
