"""Issue 16: divergence, strict JSON, full disks, one owner per run directory, kills and Ctrl-C.

A full disk is simulated: os.fsync inside grutool.atomic raises OSError(ENOSPC), as a real full disk does
at the latest when the data is flushed.
"""

from __future__ import annotations

import errno
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import invoke, tiny_config
from grutool import jsonsafe, rundir
from grutool.checkpoint import load_checkpoint
from grutool.config_file import parse_config
from grutool.errors import TrainingDiverged, UserError
from grutool.training.callbacks import Callback, Checkpointer, MetricsWriter
from grutool.training.loop import train

ROOT = Path(__file__).resolve().parents[2]


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity, as jq or JavaScript would."""
    def refuse(token):
        raise ValueError(f"not JSON: {token}")
    return json.loads(text, parse_constant=refuse)


def all_json_parses(run: Path) -> None:
    for p in run.glob("*.json"):
        strict_json(p.read_text(encoding="utf-8"))
    if (run / rundir.METRICS).exists():
        for line in (run / rundir.METRICS).read_text(encoding="utf-8").splitlines():
            strict_json(line)


# --- divergence ------------------------------------------------------------------------


def test_lr_1e38_stops_and_leaves_nothing_usable(tmp_path):
    with pytest.raises(TrainingDiverged, match="nothing usable was saved.*training diverged at epoch 1, step 2"):
        train(parse_config(tiny_config(tmp_path, lr=1e38, clip_grad_norm=None)))
    assert not (tmp_path / "run" / rundir.BEST).exists() and not (tmp_path / "run" / rundir.LAST).exists()
    assert not (tmp_path / "run" / rundir.LOCK).exists()


def test_lr_1e38_in_the_cli_exits_2_in_one_line(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tmp_path, lr=1e38)))
    r = invoke("train", cfg, "-q")
    assert r.exit_code == 2 and "Traceback" not in r.output
    errors = [l for l in r.output.splitlines() if l.startswith("error:")]
    assert len(errors) == 1 and "nothing usable" in errors[0] and "lower train.lr" in errors[0]


def test_skip_drops_bad_batches_then_gives_up(tmp_path):
    raw = tiny_config(tmp_path, lr=1e38, nonfinite="skip", max_skipped_steps=3, monitor="loss")
    with pytest.raises(TrainingDiverged, match="3 batches in a row"):
        train(parse_config(raw))


class BlowUpAt(Callback):
    """From epoch `epoch` on, an absurd learning rate: a run that was fine, then diverges."""

    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_begin(self, tr):
        if tr.state.epoch + 1 == self.epoch:
            for g in tr.optimizer.param_groups:
                g["lr"] = 1e38


@pytest.mark.parametrize("monitor", ["loss", "accuracy"])
def test_divergence_after_a_good_epoch_keeps_the_finite_best(tmp_path, monitor):
    raw = tiny_config(tmp_path, epochs=4, monitor=monitor, clip_grad_norm=None)
    summary = train(parse_config(raw), callbacks=[BlowUpAt(2)])
    assert summary["diverged"].startswith("training diverged at epoch 2")
    assert summary["best_epoch"] == 1 and math.isfinite(summary["best"])
    for name in (rundir.BEST, rundir.LAST):
        weights = load_checkpoint(tmp_path / "run" / name)["model"]
        assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    all_json_parses(tmp_path / "run")


def test_nan_validation_metric_never_becomes_best(tmp_path):
    tr = _trainer(tmp_path, monitor="loss")
    for value, improved in [(float("nan"), False), (0.5, True), (float("nan"), False), (0.7, False), (0.4, True)]:
        tr.state.improved = None
        _fake_epoch(tr, value)
        assert tr.state.improved is improved
        assert tr.state.best is None or math.isfinite(tr.state.best)


def _trainer(tmp_path, **train_fields):
    from grutool.families import get_task
    from grutool.training.loop import Trainer

    cfg = parse_config(tiny_config(tmp_path, **train_fields))
    task = get_task(cfg.task)
    prepared = task.prepare(cfg, None)
    return Trainer(cfg, task, prepared, task.build_model(cfg, prepared), tmp_path, torch.device("cpu"), [])


def _fake_epoch(tr, value):
    import grutool.training.trainer as trainer

    real = trainer.evaluate_split
    trainer.evaluate_split = lambda *a, **k: {"loss": value, "accuracy": 0.5}
    try:
        tr._end_epoch(1.0, 10, 1.0)
    finally:
        trainer.evaluate_split = real


def test_non_finite_weights_are_never_saved(tmp_path):
    from grutool.checkpoint import save_atomic

    with pytest.raises(TrainingDiverged, match="not saved, the weights are not finite"):
        save_atomic({"model": {"w": torch.tensor([1.0, float("inf")])}}, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []


# --- strict JSON -----------------------------------------------------------------------


def test_jsonsafe_writes_null_for_nan_and_infinity():
    text = jsonsafe.dumps({"a": float("nan"), "b": [1.0, float("inf"), (float("-inf"),)], "c": "NaN"})
    assert strict_json(text) == {"a": None, "b": [1.0, None, [None]], "c": "NaN"}


def test_no_json_is_written_around_jsonsafe():
    """The class of defect, not the instance: every json.dump(s) in grutool is grutool.jsonsafe's."""
    offenders = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "grutool").rglob("*.py") if p.name != "jsonsafe.py"
                 for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
                 if re.search(r"\bjson\.dumps?\(", line)]
    assert offenders == [], "write JSON with grutool.jsonsafe.dumps (NaN -> null)"


def test_float32_values_are_written_with_the_digits_float32_holds():
    # eval --json wrote a regressor's target 0.724 as 0.7240000003922312: its float32 z-score turned back into
    # units in float64. Each value is the shortest decimal whose z-score rounds to the same float32.
    import numpy as np

    for value, mean, std in [(0.724, 0.5, 0.2), (11.6249, 12.1, 3.3), (1234.567, 1000.3, 412.7),
                             (1e6 + 0.05, 1e6, 0.1), (3.2e-7, 1e-7, 2e-7), (-48.59, 0.4, 70.0)]:
        z = np.float32((value - mean) / std)  # as Standardizer.transform, then the float32 tensor
        assert jsonsafe.float32_values(z, mean, std) == value
    gen = np.random.default_rng(0)
    z = gen.standard_normal((3, 4)).astype(np.float32)  # a model's outputs
    mean, std = np.array([10.0, -3.0, 0.5, 7e4]), np.array([2.0, 0.01, 0.2, 300.0])  # one per column
    out = np.array(jsonsafe.float32_values(z, mean, std))
    assert out.shape == (3, 4)
    assert (((out - mean) / std).astype(np.float32) == z).all()  # exact: the same float32 z-scores
    assert all(len(repr(float(v))) <= len(repr(float(x))) for v, x in zip(out.ravel(), (z * std + mean).ravel()))
    plain = np.float32([0.1, 1 / 3, 2.5e-8, -7.0])
    assert jsonsafe.float32_values(plain) == [float(np.format_float_positional(x)) for x in plain]
    assert jsonsafe.dumps(jsonsafe.float32_values([np.nan, np.inf])) == "[null, null]"


def test_float32_values_are_the_shortest_decimals_a_digit_by_digit_string_search_finds():
    # The digits are searched with arrays (a served forecast paid ~5 ms of string formatting for 96 x 7 values);
    # the reference here formats every value with 1, 2, ... 17 significant digits and keeps the first that maps
    # back to the same float32 z-score. Sizes from 1e-9 to 1e9, zeros among them.
    import numpy as np

    gen = np.random.default_rng(1)
    z = gen.standard_normal((50, 6)).astype(np.float32)
    z[0, :] = 0.0
    mean = np.array([0.0, 1e-9, -3.0, 5e4, 1e9, 0.7])
    std = np.array([1.0, 3e-9, 0.01, 300.0, 2e7, 0.2])
    got = jsonsafe.float32_values(z, mean, std)
    for i in range(z.shape[0]):
        for j in range(z.shape[1]):
            value = float(z[i, j]) * std[j] + mean[j]
            ref = next((c for c in (float(f"{value:.{d}g}") for d in range(1, 18))
                        if np.float32((c - mean[j]) / std[j]) == z[i, j]), value)
            assert got[i][j] == ref, (i, j, got[i][j], ref)


def test_json_values_are_named_in_json_s_words_by_one_function():
    # serve said "array" where data loading said "list", vocab.json errors "int", JSONL rows "got dict".
    from grutool.jsonsafe import json_type

    values = [[1], (1,), {"a": 1}, "s", 1, 1.5, True, None]
    assert [json_type(v) for v in values] == ["array", "array", "object", "string", "number", "number", "boolean",
                                              "null"]
    assert [json_type(v, article=True) for v in ([], {}, "")] == ["an array", "an object", "a string"]
    tables = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "grutool").rglob("*.py") if p.name != "jsonsafe.py"
              for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
              if re.search(r"\blist: \"", line)]  # a table of type names with lists in it (YAML's aside)
    assert tables == [], "name a JSON value's type with grutool.jsonsafe.json_type"


def test_eval_json_and_infer_jsonl_are_strict_json(tmp_path, monkeypatch):
    train(parse_config(tiny_config(tmp_path, epochs=1)))
    import grutool.training.evaluation as ev

    real = ev.evaluate_split

    def with_nan(*a, **k):
        out = real(*a, **k)
        out["accuracy"] = float("nan")
        return out

    monkeypatch.setattr(ev, "evaluate_split", with_nan)
    r = invoke("eval", tmp_path / "run", "--json", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert strict_json(r.stdout)["accuracy"] is None
    r = invoke("infer", tmp_path / "run", "good film", "", "--jsonl", "--device", "cpu")
    assert r.exit_code == 0, r.output
    assert [strict_json(l)["text"] for l in r.stdout.splitlines()] == ["good film", ""]


# --- full disk -------------------------------------------------------------------------


def test_disk_full_during_a_checkpoint_is_one_line_and_keeps_the_previous(tmp_path, monkeypatch):
    raw = tiny_config(tmp_path, epochs=1)
    train(parse_config(raw))
    last = tmp_path / "run" / rundir.LAST
    before = last.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("grutool.atomic.os.fsync", full)
    raw["train"]["epochs"] = 2
    with pytest.raises(UserError) as caught:
        train(parse_config(raw), resume=True)
    message = str(caught.value)
    # A resume with a new train.epochs writes config.yaml first (the settings it goes on with).
    assert re.search(r"(config\.yaml|metrics\.jsonl|best\.pt|last\.pt): no space left on .+ \(needed ~[0-9.]+ MB", message), message
    assert "\n" not in message and "is kept" in message
    assert last.read_bytes() == before
    assert not list((tmp_path / "run").glob(".*.tmp"))


# --- one owner per run directory ----------------------------------------------------------


def test_a_run_directory_in_use_is_refused_with_its_owner(tmp_path):
    raw = tiny_config(tmp_path, epochs=1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert invoke("train", cfg, "-q").exit_code == 0
    before = (tmp_path / "run" / rundir.LAST).read_bytes()
    with rundir.RunLock(tmp_path / "run"):
        for extra in (["--overwrite"], ["--resume", "--set", "train.epochs=2"]):
            r = invoke("train", cfg, "-q", *extra)
            assert r.exit_code == 2, r.output
            assert re.search(rf"in use by pid {os.getpid()} since \d{{4}}-", r.output), r.output
            assert "--output-dir" in r.output
    assert (tmp_path / "run" / rundir.LAST).read_bytes() == before
    assert not (tmp_path / "run" / rundir.LOCK).exists(), "released and removed"
    # A lock file left by a killed process (no OS lock held) blocks nothing.
    (tmp_path / "run" / rundir.LOCK).write_text("pid 999999 since 2020-01-01T00:00:00\n")
    assert invoke("train", cfg, "-q", "--resume", "--set", "train.epochs=2").exit_code == 0


def test_a_lock_held_under_nproc_names_the_launcher_to_stop(tmp_path, monkeypatch):
    # Rank 0 holds it for the launcher the user started; the message named rank 0's pid alone.
    monkeypatch.setenv("GRUTOOL_LAUNCHER_PID", "4242")
    with rundir.RunLock(tmp_path):
        monkeypatch.delenv("GRUTOOL_LAUNCHER_PID")
        with pytest.raises(UserError, match=rf"in use by pid 4242 \(train --nproc; its rank 0 is pid "
                                            rf"{os.getpid()}\) since \d{{4}}-"):
            rundir.RunLock(tmp_path).acquire()


def test_a_lock_held_by_a_process_killed_with_sigkill_is_released_by_the_kernel(tmp_path):
    """The lock is the OS's (portalocker over flock): kill -9 leaves the file, never the lock."""
    from grutool import runs

    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from grutool import rundir; "
         f"rundir.RunLock({str(run)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))})
    try:
        assert holder.stdout.readline().strip() == "held"
        assert rundir.is_locked(run) and runs.status(run) == "running"
        with pytest.raises(UserError, match=rf"in use by pid {holder.pid} since \d{{4}}-"):
            rundir.RunLock(run).acquire()
    finally:
        holder.kill()
        holder.wait()
    assert (run / rundir.LOCK).is_file() and not rundir.is_locked(run)
    with rundir.RunLock(run):
        assert (run / rundir.LOCK).read_text().startswith(f"pid {os.getpid()} since ")
    assert not (run / rundir.LOCK).exists()


@pytest.mark.parametrize("flags", [[], ["--resume"]])
def test_a_run_killed_before_its_first_checkpoint_starts_over(tmp_path, flags):
    raw = tiny_config(tmp_path, epochs=1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    assert invoke("train", cfg, "-q").exit_code == 0
    run = tmp_path / "run"
    for name in (rundir.LAST, rundir.BEST, rundir.SUMMARY):
        (run / name).unlink()
    (run / ".last.pt.x1y2.tmp").write_bytes(b"half a checkpoint")
    r = invoke("train", cfg, *flags)
    assert r.exit_code == 0, r.output
    assert (run / rundir.BEST).is_file() and not list(run.glob(".*.tmp"))


def test_resume_removes_temporaries_of_killed_writes(tmp_path):
    raw = tiny_config(tmp_path, epochs=1)
    train(parse_config(raw))
    (tmp_path / "run" / ".last.pt.abc123.tmp").write_bytes(b"\0" * 1000)
    raw["train"]["epochs"] = 2
    train(parse_config(raw), resume=True)
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_metrics_row_is_written_before_the_checkpoints_and_resume_rewrites_it(tmp_path):
    raw = tiny_config(tmp_path, epochs=2)
    train(parse_config(raw))
    metrics = tmp_path / "run" / rundir.METRICS
    # A kill after the epoch-3 row but before last.pt, plus a torn line.
    rows = metrics.read_text().splitlines()
    metrics.write_text("\n".join(rows + [rows[-1].replace('"epoch": 2', '"epoch": 3'), '{"epoch": 4, "st']) + "\n")
    raw["train"]["epochs"] = 3
    train(parse_config(raw), resume=True)
    assert [strict_json(l)["epoch"] for l in metrics.read_text().splitlines()] == [1, 2, 3]


def test_metrics_writer_runs_before_the_checkpointer(tmp_path):
    order = []
    import grutool.training.loop as loop

    real = loop.Trainer.__init__

    def spy(self, *a, **k):
        real(self, *a, **k)
        order.extend(type(c).__name__ for c in self.callbacks)

    loop.Trainer.__init__ = spy
    try:
        train(parse_config(tiny_config(tmp_path, epochs=1)))
    finally:
        loop.Trainer.__init__ = real
    assert order.index(MetricsWriter.__name__) < order.index(Checkpointer.__name__)


# --- processes: Ctrl-C twice, kill -9 --------------------------------------------------------


def _start(cfg: Path, *flags) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "grutool", "train", str(cfg), "-q", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_epochs(path: Path, n: int, proc, timeout=60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if path.exists() and path.read_text().count("\n") >= n:
            return
        time.sleep(0.02)


def test_double_ctrl_c_exits_fast_without_a_traceback(tmp_path):
    raw = tiny_config(tmp_path, epochs=500, batch_size=4)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    proc = _start(cfg)
    _wait_for_epochs(tmp_path / "run" / rundir.METRICS, 1, proc)
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert seconds < 1.0, f"took {seconds:.2f}s to exit"
    load_checkpoint(tmp_path / "run" / rundir.LAST)  # still a loadable checkpoint


def test_kill_9_at_random_points_then_resume_equals_uninterrupted(tmp_path):
    raw = tiny_config(tmp_path / "a", epochs=12, batch_size=4, patience=None)
    train(parse_config(raw))
    reference = load_checkpoint(tmp_path / "a" / "run" / rundir.LAST)["model"]

    raw["output_dir"] = str(tmp_path / "b")
    cfg = tmp_path / "b.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    rng, kills = random.Random(16), 0
    for attempt in range(3):
        proc = _start(cfg, *(["--resume"] if (tmp_path / "b").exists() else []))
        _wait_for_epochs(tmp_path / "b" / rundir.METRICS, attempt + 1, proc)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.communicate(timeout=30)
    assert kills >= 2
    # The kills need processes; the resume that finishes the run does not (a fourth start-up, ~3 s, saved).
    train(parse_config(raw), resume=True)
    resumed = load_checkpoint(tmp_path / "b" / rundir.LAST)["model"]
    assert all(torch.equal(resumed[k], reference[k]) for k in reference)
    epochs = [strict_json(l)["epoch"] for l in (tmp_path / "b" / rundir.METRICS).read_text().splitlines()]
    assert epochs == list(range(1, 13)), "one row per epoch, none lost, none repeated"
    all_json_parses(tmp_path / "b")


def test_disk_full_in_save_atomic_names_the_size_needed(tmp_path, monkeypatch):
    from grutool.checkpoint import save_atomic

    save_atomic({"model": {"w": torch.ones(3)}}, tmp_path / "last.pt")
    monkeypatch.setattr("grutool.atomic.os.fsync", lambda fd: (_ for _ in ()).throw(OSError(errno.ENOSPC, "full")))
    with pytest.raises(UserError, match=r"last\.pt: no space left on .*needed ~1\.0 MB.*previous last\.pt"):
        save_atomic({"model": {"w": torch.zeros(250_000)}}, tmp_path / "last.pt")
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(tmp_path / "last.pt")["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_refused_pickle_payload_is_not_called_corrupt(tmp_path):
    from collections import OrderedDict as NotAllowed  # noqa: F401  (any class outside the allow-list)

    class Payload:
        def __reduce__(self):
            return (print, ("this would run",))

    torch.save({"model": {}, "x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(UserError, match="refused: the file holds pickled code") as caught:
        load_checkpoint(tmp_path / "evil.pt")
    assert "corrupt" not in str(caught.value)


@pytest.mark.parametrize("after_epoch", [False, True], ids=["first-epoch", "later-epoch"])
def test_a_second_ctrl_c_during_the_save_says_which_checkpoint_is_left(tmp_path, monkeypatch, after_epoch):
    """The second Ctrl-C of a double Ctrl-C often lands in last.pt's write (its fsync): the process exited 130
    after 'Ctrl-C: stopping after this step, ...' with nothing more said. Simulated: the first Ctrl-C after a
    step, the second raised from fsync while last.pt is written for it."""
    import grutool.training.trainer as trainer_module

    raw = tiny_config(tmp_path, epochs=3, batch_size=8)  # 8 steps an epoch
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    stop_at = 11 if after_epoch else 3
    stopping = []

    def check_interrupt(self):
        if self.state.step == stop_at:
            stopping.append(True)
            raise KeyboardInterrupt

    real_fsync = os.fsync

    def fsync(fd):
        if stopping:
            raise KeyboardInterrupt
        real_fsync(fd)

    monkeypatch.setattr(trainer_module.Trainer, "_check_interrupt", check_interrupt)
    monkeypatch.setattr("grutool.atomic.os.fsync", fsync)
    r = invoke("train", cfg, "-q")
    assert r.exit_code == 130, r.output
    last = tmp_path / "run" / rundir.LAST
    lines = [line for line in r.output.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1, r.output
    assert str(last) in lines[0] and "saved" not in lines[0].split(":")[0], lines
    assert not list((tmp_path / "run").glob(".*.tmp"))
    if after_epoch:  # epoch 1's last.pt is kept, and named as the one to resume from
        assert load_checkpoint(last)["meta"]["state"]["step"] == 8
        assert "previous complete checkpoint" in lines[0] and "same command plus --resume" in lines[0]
        # a run started with --overwrite: "plus --resume" led to `--resume: contradicts --overwrite`
        monkeypatch.setattr(sys, "argv", ["grutool", "train", str(cfg), "-q", "--overwrite"])
        stopping.clear()
        r = invoke("train", cfg, "-q", "--overwrite")
        lines = [line for line in r.output.splitlines() if line.startswith("interrupted")]
        assert r.exit_code == 130 and len(lines) == 1, r.output
        assert "previous complete checkpoint" in lines[0] and "with --resume in place of --overwrite" in lines[0]
        # a command that has --resume already: "plus --resume" read as a second one
        monkeypatch.setattr(sys, "argv", ["grutool", "train", str(cfg), "-q", "--resume"])
        stopping.clear()
        r = invoke("train", cfg, "-q", "--resume")
        lines = [line for line in r.output.splitlines() if line.startswith("interrupted")]
        assert r.exit_code == 130 and len(lines) == 1 and lines[0].endswith("same command (it has --resume)"), r.output
    else:
        assert not last.exists() and "starts the run over" in lines[0]
        assert "stopped in epoch 1 of 3; no epoch has ended, so no best.pt yet" in r.output, r.output


def test_ctrl_c_before_training_says_interrupted(tmp_path):
    """Ctrl-C while `reading data …` (here: while the config loads) exited 130 with nothing said: typer turns
    KeyboardInterrupt into exit 130 before grutool's own handler saw it."""
    raw = tiny_config(tmp_path, epochs=1)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    code = ("import sys, grutool.config_file as cf\n"
            "def load(*a, **k):\n    raise KeyboardInterrupt\n"
            "cf.load_config = load\n"
            "from grutool.cli.app import main\n"
            f"sys.argv = ['grutool', 'train', {str(cfg)!r}]\n"
            "main()\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "interrupted", proc.stderr
    assert not (tmp_path / "run").exists()
