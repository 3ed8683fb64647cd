"""Gradient tracking (grad_norm in metrics.jsonl, the explosion warning) and TensorBoard event files."""

from __future__ import annotations

import json
import logging

import pytest
import yaml

from conftest import invoke, tiny_config
from grutool.config_file import parse_config
from grutool.training.tracking import EXPLODE_FACTOR, MIN_STEPS, GradientMonitor


def test_grad_norm_per_epoch_goes_to_metrics_jsonl(tmp_path):
    from grutool.training.loop import train

    cfg = parse_config(tiny_config(tmp_path, epochs=2, device="cpu"))
    train(cfg)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(0 < r["grad_norm"] <= r["grad_norm_max"] for r in rows)


class _Trainer:
    """The few Trainer attributes GradientMonitor reads."""

    def __init__(self):
        self.cfg = parse_config({"data": {"train": "x.tsv"}})
        self.state = type("S", (), {"epoch": 0, "step": 0})()
        self.last_grad_norm = None


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_an_exploding_gradient_is_warned_once_per_epoch():
    monitor, tr, records = GradientMonitor(), _Trainer(), _Records()
    monitor.on_epoch_begin(tr)
    logger = logging.getLogger("grutool")
    saved = logger.handlers, logger.level
    logger.handlers, logger.level = [records], logging.WARNING  # whatever an earlier CLI test left there
    try:
        for i, norm in enumerate([1.0] * MIN_STEPS + [1.5, EXPLODE_FACTOR * 2, EXPLODE_FACTOR * 3, 1.0]):
            tr.state.step, tr.last_grad_norm = i + 1, norm
            monitor.on_step_end(tr, 0.5, 10)
    finally:
        logger.handlers, logger.level = saved
    warnings = [m for m in records.messages if "exploding gradients" in m]
    assert len(warnings) == 1 and "step 22: gradient norm 20" in warnings[0] and "clipped to 5" in warnings[0]
    metrics = {}
    monitor.on_epoch_end(tr, metrics)
    assert metrics["grad_norm_max"] == EXPLODE_FACTOR * 3


def test_tensorboard_option_writes_losses_metrics_lr_and_grad_norms(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    raw = tiny_config(tmp_path, epochs=2, device="cpu", log_every=2)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = invoke("train", tmp_path / "tiny.yaml", "-q", "--tensorboard", tmp_path / "tb")
    assert result.exit_code == 0, result.output
    events = EventAccumulator(str(tmp_path / "tb")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "grad_norm/global", "val/accuracy", "val/loss", "epoch/grad_norm"} <= tags
    assert any(t.startswith("grad_norm/encoder") or t.startswith("grad_norm/") and "weight_hh" in t for t in tags)
    assert len(events.Scalars("val/accuracy")) == 2
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["train"]["tensorboard"] == str(tmp_path / "tb")


def test_tensorboard_true_writes_into_the_run_directory(tmp_path):
    pytest.importorskip("tensorboard")
    from grutool.training.loop import train

    train(parse_config(tiny_config(tmp_path, epochs=1, device="cpu", tensorboard=True)))
    assert list((tmp_path / "run" / "tensorboard").glob("events.out.tfevents.*"))
