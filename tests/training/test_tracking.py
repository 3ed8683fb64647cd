"""Gradient tracking (grad_norm in metrics.jsonl, the explosion warning) and TensorBoard event files."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from conftest import invoke, tiny_config
from grutool.config_file import parse_config
from grutool.training.tracking import EXPLODE_FACTOR, FLOOR, MIN_STEPS, GradientMonitor


def test_grad_norm_per_epoch_goes_to_metrics_jsonl(tmp_path):
    from grutool.training.loop import train

    cfg = parse_config(tiny_config(tmp_path, epochs=2, device="cpu"))
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < r["grad_norm"] <= r["grad_norm_max"] for r in rows)


class _Trainer:
    """The few Trainer attributes GradientMonitor reads."""

    def __init__(self, clip_grad_norm: float | None = 5.0, train: str = "x.tsv"):
        self.cfg = parse_config({"data": {"train": train}, "train": {"clip_grad_norm": clip_grad_norm}})
        from grutool.families import get_task
        from grutool.training.trainer import TrainState

        self.task = get_task(self.cfg.task)  # its word for an optimizer step (`Task.update_name`)

        self.state = TrainState()  # the epoch's norms are summed in it (last.pt keeps them for --resume)
        self.last_grad_norm = None


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def _warnings(norms: list[float], clip_grad_norm: float | None = 5.0,
              train: str = "x.tsv") -> tuple[list[str], GradientMonitor]:
    """The explosion warnings a GradientMonitor logs over these steps' norms (one epoch) of a run reading `train`."""
    monitor, tr, records = GradientMonitor(), _Trainer(clip_grad_norm, train), _Records()
    monitor.on_epoch_begin(tr)
    logger = logging.getLogger("grutool")
    saved = logger.handlers, logger.level
    logger.handlers, logger.level = [records], logging.WARNING  # whatever an earlier CLI test left there
    try:
        for i, norm in enumerate(norms):
            tr.state.step, tr.last_grad_norm = i + 1, norm
            monitor.on_step_end(tr, 0.5, 10)
    finally:
        logger.handlers, logger.level = saved
    monitor.epoch_metrics = {}
    monitor.on_epoch_end(tr, monitor.epoch_metrics)
    return [m for m in records.messages if "exploding gradients" in m], monitor


def test_an_exploding_gradient_is_warned_once_per_epoch():
    warnings, monitor = _warnings([1.0] * MIN_STEPS + [1.5, EXPLODE_FACTOR * 2, EXPLODE_FACTOR * 3, 1.0])
    assert len(warnings) == 1 and "step 22: gradient norm 20" in warnings[0] and "clipped to 5" in warnings[0]
    assert monitor.epoch_metrics["grad_norm_max"] == EXPLODE_FACTOR * 3


@pytest.mark.parametrize("train, word", [("x.tsv", "step"), ("x.ts", "update")])
def test_the_warning_names_an_optimizer_step_as_the_run_s_other_lines_do(train, word):
    # A numeric run's speed counts time steps (`steps/s`) and its other lines say `update 22/40`: the warning
    # said `step 22` of the same optimizer step
    warnings, _ = _warnings([1.0] * MIN_STEPS + [1.5, EXPLODE_FACTOR * 2], train=train)
    assert len(warnings) == 1 and warnings[0].startswith(f"{word} 22: gradient norm 20"), warnings


@pytest.mark.parametrize("clip", [5.0, None])
def test_a_big_ratio_on_tiny_norms_is_no_explosion(clip):
    # the case near convergence: 0.04828 against a median of 0.004389 is 11x, and nothing to worry about
    warnings, _ = _warnings([0.004389] * MIN_STEPS + [0.04828, 0.5, 0.004389], clip)
    assert warnings == []


def test_a_spike_between_the_ratio_and_the_clip_value_is_not_called_clipped():
    # 40x the median but under train.clip_grad_norm: clipping did nothing, so neither warning nor "clipped"
    warnings, _ = _warnings([0.1] * MIN_STEPS + [4.0], clip_grad_norm=5.0)
    assert warnings == []
    warnings, _ = _warnings([0.1] * MIN_STEPS + [6.0], clip_grad_norm=5.0)
    assert len(warnings) == 1 and "gradient norm 6 is 60x" in warnings[0] and "clipped to 5" in warnings[0]


def test_without_clipping_the_floor_is_fixed_and_nothing_is_said_to_be_clipped():
    assert _warnings([0.05] * MIN_STEPS + [0.9 * FLOOR], clip_grad_norm=None)[0] == []
    warnings, _ = _warnings([0.05] * MIN_STEPS + [2 * FLOOR], clip_grad_norm=None)
    assert len(warnings) == 1 and "clipped" not in warnings[0] and "set train.clip_grad_norm" in warnings[0]


def test_tensorboard_option_writes_losses_metrics_lr_and_grad_norms(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    raw = tiny_config(tmp_path, epochs=2, device="cpu", log_every=2)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = invoke("train", tmp_path / "tiny.yaml", "-q", "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 0, result.output
    assert [p.name for p in (tmp_path / "tb").iterdir()] == ["run"], "one folder per run under DIR"
    events = EventAccumulator(str(tmp_path / "tb" / "run")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "grad_norm/global", "val/accuracy", "val/loss", "epoch/grad_norm"} <= tags
    assert any(t.startswith("grad_norm/encoder") or t.startswith("grad_norm/") and "weight_hh" in t for t in tags)
    assert len(events.Scalars("val/accuracy")) == 2
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["tensorboard"] == str(tmp_path / "tb")
    # A second run into the same DIR gets its own folder: TensorBoard draws them as two runs, not one.
    raw["output_dir"] = str(tmp_path / "run2")
    (tmp_path / "tiny2.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    assert invoke("train", tmp_path / "tiny2.yaml", "-q", "--tensorboard", tmp_path / "tb").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["run", "run2"]
    assert len(EventAccumulator(str(tmp_path / "tb" / "run")).Reload().Scalars("val/accuracy")) == 2


def test_tensorboard_true_writes_into_the_run_directory(tmp_path):
    pytest.importorskip("tensorboard")
    from grutool.training.loop import train

    train(parse_config(tiny_config(tmp_path, epochs=1, device="cpu", tensorboard=True)))
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))


def _scalar_steps(log_dir) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"scalars": 0}).Reload()
    return {tag: [e.step for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_per_parameter_norms_are_computed_and_written_every_log_every_steps_only(tmp_path, monkeypatch):
    # They were written on steps 1, 3, 4, 6, 7, ... (two of every log_every) and computed on every step.
    pytest.importorskip("tensorboard")
    from grutool.training import trainer as trainer_module
    from grutool.training.loop import train

    computed = []
    real = trainer_module.param_grad_norm
    monkeypatch.setattr(trainer_module, "param_grad_norm", lambda p: computed.append(1) or real(p))
    train(parse_config(tiny_config(tmp_path, epochs=2, device="cpu", log_every=3, tensorboard=True)))
    steps = _scalar_steps(tmp_path / "run" / "tensorboard")
    assert steps["train/loss"] == list(range(1, 17))  # 8 steps an epoch
    expected = [1, 3, 6, 9, 12, 15]
    per_parameter = {tag: s for tag, s in steps.items() if tag.startswith("grad_norm/") and tag != "grad_norm/global"}
    assert per_parameter and all(s == expected for s in per_parameter.values()), per_parameter
    assert len(computed) == len(expected) * len(per_parameter)


def test_a_resumed_run_appends_to_its_event_files_without_repeating_a_step(tmp_path):
    pytest.importorskip("tensorboard")
    from grutool.errors import TrainingInterrupted
    from grutool.training.callbacks import Callback
    from grutool.training.loop import train

    class CtrlC(Callback):
        def on_step_end(self, trainer, loss, tokens):
            if trainer.state.step == 11:  # mid epoch 2
                trainer._interrupt_requested = True

    raw = tiny_config(tmp_path, epochs=3, device="cpu", tensorboard=True)
    with pytest.raises(TrainingInterrupted):
        train(parse_config(raw), callbacks=[CtrlC()])
    train(parse_config(raw), resume=True)
    steps = _scalar_steps(tmp_path / "run" / "tensorboard")
    assert steps["train/loss"] == list(range(1, 25))
    assert steps["val/accuracy"] == [1, 2, 3]


def test_tensorboard_without_the_extra_is_one_line_before_any_work(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # its import fails
    raw = tiny_config(tmp_path, epochs=1, device="cpu")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = invoke("train", tmp_path / "tiny.yaml", "-q", "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "--tensorboard" in line and "-e '.[tensorboard]'" in line
    assert not (tmp_path / "run").exists()
