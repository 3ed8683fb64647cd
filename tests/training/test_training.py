"""The training loop: learning happens, resume is exact, artifacts round-trip, events are ordered."""

import json
import os

import pytest
import torch

from grutool import rundir
from grutool.checkpoint import load_checkpoint, save_atomic
from grutool.config_file import parse_config
from grutool.errors import TrainingInterrupted
from grutool.predict import Predictor
from grutool.training.callbacks import Callback
from grutool.training.loop import train

from conftest import InterruptAt, tiny_config


class Recorder(Callback):
    def __init__(self):
        self.events, self.losses = [], []

    def on_train_begin(self, tr): self.events.append("train_begin")
    def on_epoch_begin(self, tr): self.events.append("epoch_begin")
    def on_step_end(self, tr, loss, tokens): self.events.append("step"); self.losses.append(loss)
    def on_evaluate(self, tr, metrics): self.events.append("evaluate")
    def on_epoch_end(self, tr, metrics): self.events.append("epoch_end")
    def on_interrupt(self, tr): self.events.append("interrupt")
    def on_train_end(self, tr): self.events.append("train_end")


def test_loss_falls_and_task_is_learned(tmp_path):
    rec = Recorder()
    summary = train(parse_config(tiny_config(tmp_path, epochs=15)), callbacks=[rec])
    first, last = sum(rec.losses[:8]) / 8, sum(rec.losses[-8:]) / 8
    assert last < 0.5 * first
    assert summary["validation"]["accuracy"] >= 0.9
    rows = [json.loads(l) for l in (tmp_path / "run" / rundir.METRICS).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, 16))
    assert {"train_loss", "val_loss", "val_accuracy", "val_macro_f1", "tokens_per_s"} <= set(rows[0])


def test_event_order(tmp_path):
    rec = Recorder()
    train(parse_config(tiny_config(tmp_path, epochs=2, batch_size=32)), callbacks=[rec])
    epoch = ["epoch_begin", "step", "step", "evaluate", "epoch_end"]
    assert rec.events == ["train_begin"] + epoch + epoch + ["train_end"]


@pytest.mark.parametrize("stop_at,chars", [(3, False), (8, False), (5, True)])  # mid-epoch, at an epoch boundary
def test_resume_equals_uninterrupted(tmp_path, stop_at, chars):
    raw = tiny_config(tmp_path / "a", epochs=3, schedule="linear", warmup_steps=2, ema_decay=0.9)
    raw["model"].update(embedding_dropout=0.3, head_dropout=0.3)  # dropout consumes RNG: resume must restore it
    raw["model"]["char_features"] = chars  # resume must reuse the saved char vocabulary
    train(parse_config(raw))
    reference = load_checkpoint(tmp_path / "a" / "run" / rundir.LAST)["model"]

    raw["output_dir"] = str(tmp_path / "b")
    rec = Recorder()
    with pytest.raises(TrainingInterrupted):
        train(parse_config(raw), callbacks=[InterruptAt(stop_at), rec])
    assert rec.events[-1] == "interrupt"
    assert load_checkpoint(tmp_path / "b" / rundir.LAST)["meta"]["state"]["step"] == stop_at
    train(parse_config(raw), resume=True)
    resumed = load_checkpoint(tmp_path / "b" / rundir.LAST)["model"]
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert torch.equal(resumed[k], reference[k]), k
    # The metrics rows too: the epoch stopped by Ctrl-C reported only its steps after the resume (train_loss,
    # grad_norm, grad_norm_max). Timings differ between any two runs.
    timing = {"tokens_per_s", "epoch_time_s"}
    rows = {name: [{k: v for k, v in json.loads(line).items() if k not in timing}
                   for line in (run / rundir.METRICS).read_text().splitlines()]
            for name, run in (("reference", tmp_path / "a" / "run"), ("resumed", tmp_path / "b"))}
    assert rows["resumed"] == rows["reference"]


@pytest.mark.parametrize("stop_at", [8, 3], ids=["after_the_epochs_last_step", "mid_epoch"])
def test_resume_of_an_older_last_pt_writes_no_figure_it_cannot_know(tmp_path, stop_at):
    """A last.pt saved within an epoch by grutool before d46eeb0 lacks the epoch's running figures: resumed after
    the epoch's last step, that epoch said `loss 0.0000 ... | 0 tok/s` (train_loss 0.0 in metrics.jsonl); mid-epoch,
    figures of the steps after the resume only. Now one warning, and the epoch's line and row leave them out."""
    import yaml

    from conftest import invoke

    raw = tiny_config(tmp_path, epochs=2)  # 8 batches an epoch
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(TrainingInterrupted):
        train(parse_config(raw), callbacks=[InterruptAt(stop_at)])
    last = tmp_path / "run" / rundir.LAST
    ckpt = load_checkpoint(last)
    for key in [k for k in ckpt["meta"]["state"] if k.startswith("epoch_") and k != "epoch"]:
        del ckpt["meta"]["state"][key]  # as the older code wrote it
    save_atomic(ckpt, last)
    result = invoke("train", tmp_path / "c.yaml", "--resume")
    assert result.exit_code == 0, result.output
    assert result.output.count("does not hold epoch 1's training loss") == 1, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("epoch ")]
    assert lines[0].startswith("epoch 1/2: val loss ") and "tok/s" not in lines[0], lines
    assert lines[1].startswith("epoch 2/2: loss ") and "tok/s" in lines[1], lines
    rows = [json.loads(line) for line in (tmp_path / "run" / rundir.METRICS).read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    unknown = {"train_loss", "tokens_per_s", "epoch_time_s", "grad_norm", "grad_norm_max"}
    assert not unknown & set(rows[0]) and "val_loss" in rows[0], rows[0]
    assert unknown <= set(rows[1]), rows[1]


class BestPredictions(Callback):
    """Logits of the in-memory model whenever best.pt is written (Checkpointer runs first)."""

    def __init__(self, texts):
        self.texts, self.probs = texts, None

    def on_epoch_end(self, tr, metrics):
        if tr.state.improved:
            split = tr.task.encode(tr.cfg, tr.data.vocab, tr.data.labels, self.texts, None, chars=tr.data.extra.get("chars"))
            tr.model.eval()
            with torch.no_grad():
                from grutool.data.batching import collate
                b = collate(split, list(range(len(self.texts))))
                self.probs = torch.softmax(tr.model(b.ids, b.lengths, **b.extra_inputs())[0], -1)
            tr.model.train()


@pytest.mark.parametrize("chars", [False, True])
def test_save_load_gives_identical_predictions(tmp_path, chars):
    texts = ["the food was great", "awful film", "", "quite dull and boring service", "zzz unknown words"]
    cb = BestPredictions(texts)
    raw = tiny_config(tmp_path, epochs=3)
    raw["model"]["char_features"] = chars
    train(parse_config(raw), callbacks=[cb])
    assert (tmp_path / "run" / rundir.CHARS).is_file() == chars
    got = Predictor(tmp_path / "run", "cpu").predict(texts, batch_size=2)
    labels = rundir.open_run(tmp_path / "run").labels.itos
    for row, r in zip(cb.probs, got):
        assert r["label"] == labels[int(row.argmax())]
        assert [r["probs"][l] for l in labels] == pytest.approx(row.tolist(), abs=1e-6)


def test_atomic_save_keeps_previous_file_on_crash(tmp_path, monkeypatch):
    path = tmp_path / "ck.pt"
    save_atomic({"model": {"w": torch.ones(3)}}, path)

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        save_atomic({"model": {"w": torch.zeros(3)}}, path)
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"], "no temporary file left behind"


def test_max_steps_stops_training(tmp_path):
    summary = train(parse_config(tiny_config(tmp_path, epochs=5, max_steps=3)))
    assert summary["steps"] == 3


def test_early_stopping_respects_patience(tmp_path):
    raw = tiny_config(tmp_path, epochs=30, patience=1, lr=1e-6)  # lr too small to improve
    summary = train(parse_config(raw))
    assert summary["epochs"] < 30


def test_ema_averages_and_restores_raw_weights():
    from grutool.training.ema import EMA

    model = torch.nn.Linear(2, 1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.75)
    ema.updates = 100  # past the ramp-up: the decay is the configured one
    with torch.no_grad():
        model.weight.fill_(5.0)
    ema.update()
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 0.75 * 1 + 0.25 * 5))
    with ema.applied(model):
        assert torch.allclose(model.weight, torch.full((1, 2), 2.0))
    assert torch.allclose(model.weight, torch.full((1, 2), 5.0))


@pytest.mark.parametrize("scale", [0.01, 1.0, 100.0])
def test_clip_grad_norm_gives_torchs_gradients_bit_for_bit(scale):
    from grutool.training.optim import clip_grad_norm

    torch.manual_seed(0)
    a, b = torch.nn.GRU(4, 8), torch.nn.GRU(4, 8)
    b.load_state_dict(a.state_dict())
    x = torch.randn(5, 3, 4)
    for m in (a, b):
        (m(x)[0].sum() * scale).backward()
    torch.nn.utils.clip_grad_norm_(a.parameters(), 1.0)
    clip_grad_norm(b.parameters(), 1.0)
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(a.parameters(), b.parameters()))
    norm = float(torch.stack([p.grad.norm() for p in b.parameters()]).norm())
    assert norm <= 1.0 + 1e-5 and (scale < 1 or norm > 0.99)  # big gradients were clipped to the bound


def test_ema_tracks_float_buffers_and_copies_integer_ones():
    from grutool.training.ema import EMA

    model = torch.nn.BatchNorm1d(3)
    ema = EMA(model, decay=0.5)
    ema.updates = 100
    model.train()
    model(torch.randn(8, 3) + 4.0)  # moves running_mean towards 4, counts one batch
    ema.update()
    assert torch.allclose(ema.shadow["running_mean"], 0.5 * model.running_mean)  # averaged with the initial 0
    assert int(ema.shadow["num_batches_tracked"]) == 1  # integers are copied, not averaged


def test_ema_decay_ramps_up_so_short_runs_forget_the_initial_weights():
    from grutool.training.ema import EMA

    model = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(model, decay=0.999)
    assert ema.current_decay() == pytest.approx(0.1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    for _ in range(1000):
        ema.update()
    initial_share = abs(1.0 - float(ema.shadow["weight"]))
    assert initial_share < 0.02  # without the ramp it would be 0.999**1000 = 0.37
    ema.updates = 20_000
    assert ema.current_decay() == pytest.approx(0.999)


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    import os
    from grutool.atomic import write_text_atomic

    mask = os.umask(0o022)
    try:
        save_atomic({"model": {}}, tmp_path / "a.pt")
        write_text_atomic("x", tmp_path / "b.txt")
    finally:
        os.umask(mask)
    for name in ("a.pt", "b.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644


class SeesSettings(Callback):
    """Records the process settings in effect while training runs."""

    def on_train_begin(self, tr):
        self.during = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled())


class SeesTheBuild(Callback):
    """Whether the compiled kernel's build had been tried (built or failed) when training's clock started."""

    def on_train_begin(self, tr):
        from grutool.modules.rnn import compiled

        self.tried = compiled._EXT is not None or compiled._FAILED is not None


def test_the_compiled_kernel_is_built_before_the_training_clock_starts(tmp_path, fresh):
    # kernel auto runs the compiled GRU once built; its first-use build (20-60 s) used to land in the first step,
    # which the progress then showed as the training's speed (21 tok/s, ~33:37 left for a 0.3 s training).
    fresh.setenv("CXX", "no-such-compiler-here")  # the build is tried, and fails at once, without compiling
    cfg = parse_config(tiny_config(tmp_path, epochs=1))
    train(cfg, dry_run=True)
    from grutool.modules.rnn import compiled

    assert compiled._FAILED is None, "a dry run runs no layer: nothing to build"
    seen = SeesTheBuild()
    train(cfg, callbacks=[seen])
    assert seen.tried


@pytest.mark.parametrize("fails", [False, True], ids=["returns", "raises"])
def test_train_restores_the_process_settings_it_changes(tmp_path, fails):
    """train.num_threads and train.deterministic hold during the run only: the caller's settings after it,
    also when the run ends in an exception."""
    before = (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled())
    wanted = 2 if before[0] != 2 else 1
    workspace = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    seen = SeesSettings()
    cbs = [seen] + ([InterruptAt(1)] if fails else [])
    cfg = parse_config(tiny_config(tmp_path, epochs=1, num_threads=wanted, deterministic=True))
    try:
        torch.use_deterministic_algorithms(False, warn_only=True)  # a caller's own choice, kept as it was
        expected = (before[0], False, True)
        if fails:
            with pytest.raises(TrainingInterrupted):
                train(cfg, callbacks=cbs)
        else:
            train(cfg, callbacks=cbs)
        assert seen.during == (wanted, True)
        assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled()) == expected
        assert os.environ.get("CUBLAS_WORKSPACE_CONFIG") == workspace  # was left at ':4096:8'
    finally:
        torch.set_num_threads(before[0])
        torch.use_deterministic_algorithms(before[1], warn_only=before[2])


def test_a_run_without_train_deterministic_leaves_determinism_alone(tmp_path, monkeypatch):
    """The caller's deterministic setting was set back after every run, changed or not; in torch 2.13 that call
    imports torch._dynamo (~0.9 s, most of a --dry-run). Without train.deterministic it is never called, and the
    caller's setting (warn_only too) is what it was."""
    calls = []
    real = torch.use_deterministic_algorithms
    monkeypatch.setattr(torch, "use_deterministic_algorithms", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    cfg = parse_config(tiny_config(tmp_path, epochs=1))
    train(cfg, dry_run=True)
    train(cfg, overwrite=True)
    assert calls == []
    assert (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()) == before


def test_api_misuse_is_a_user_error_saying_what_to_pass(tmp_path):
    """A path given to train() failed with AttributeError ('str' object has no attribute 'train'); one string
    given to predict() was read as one input per character, silently."""
    from grutool.errors import UserError

    with pytest.raises(UserError, match=r"^train: takes a Config, not str .*grutool.load_config\(path\)"):
        train(str(tmp_path / "c.yaml"))
    summary = train(parse_config(tiny_config(tmp_path, epochs=1)))
    predictor = Predictor(summary["run_dir"])
    with pytest.raises(UserError, match=r"^texts: a list of inputs, not one str; write predict\(\['a good day'\]\)"):
        predictor.predict("a good day")
    assert len(predictor.predict(["a good day"])) == 1
