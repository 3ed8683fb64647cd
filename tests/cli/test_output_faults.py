"""Pictures (`plot -o`, `eval --plot`, `infer --attention`) into a read-only folder or onto a full disk, and
learning curves from a metrics.jsonl holding non-finite or huge numbers: one line, exit 2, nothing written,
no traceback; the folder is checked before any work (issue 20)."""

from __future__ import annotations

import errno
import json
import math
import os
from pathlib import Path

import pytest

from conftest import assert_user_error, invoke, tiny_config
from grutool.config_file import parse_config
from grutool.training.loop import train

pytest.importorskip("matplotlib", reason="the plot extra: pip install -e '.[plot]'")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    raw = tiny_config(tmp_path_factory.mktemp("faults"), epochs=2)
    raw["model"].update(embedding_dim=8, hidden_size=8)
    train(parse_config(raw, "faults"), progress=False)
    return Path(raw["output_dir"])


def read_only(monkeypatch, folder: Path) -> None:
    """`folder` refuses writes as os.access sees it (as root, as in CI containers, chmod stops nothing)."""
    access, locked = os.access, folder.resolve()
    monkeypatch.setattr("grutool.atomic.os.access",
                        lambda p, mode, **kw: not (mode & os.W_OK and Path(p).resolve() == locked)
                        and access(p, mode, **kw))


def no_work(monkeypatch, module: str, name: str) -> None:
    """`module.name` fails the test if called (by module object: `grutool.evaluate` is also a function)."""
    import importlib

    def work(*args, **kwargs):
        raise AssertionError(f"{module}.{name} ran before the output folder was checked")

    monkeypatch.setattr(importlib.import_module(module), name, work)


def test_pictures_into_a_read_only_folder_are_refused_before_any_work(run, tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    read_only(monkeypatch, locked)
    no_work(monkeypatch, "grutool.curves", "_rows")
    no_work(monkeypatch, "grutool.evaluate", "evaluate")
    no_work(monkeypatch, "grutool.predict", "Predictor")
    assert_user_error(invoke("plot", run, "-o", locked / "c.png"), "--output", f"folder {locked} is not writable")
    assert_user_error(invoke("eval", run, "--plot", locked / "cm.png"), "--plot", f"folder {locked} is not writable")
    assert_user_error(invoke("infer", run, "123", "--attention", locked / "a.png"),
                      "--attention", f"folder {locked} is not writable")
    assert list(locked.iterdir()) == []


def test_pictures_onto_a_full_disk_are_one_line_and_leave_nothing(run, tmp_path, monkeypatch):
    """Simulated as grutool.atomic's tests do (fsync fails); `eval --plot` fails after evaluating, so its
    metrics are not printed either."""
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("grutool.atomic.os.fsync", full)
    assert_user_error(invoke("plot", run, "-o", tmp_path / "c.png"), "c.png: no space left on", "free some space")
    assert_user_error(invoke("eval", run, "--plot", tmp_path / "cm.png"), "cm.png: no space left on")
    assert list(tmp_path.iterdir()) == []


def drawn_values(monkeypatch) -> list:
    """Every y value `plot` draws, captured as the figure is saved."""
    import grutool.curves

    seen = []
    save = grutool.curves.save_png

    def capture(fig, path, dpi):
        seen.extend(float(y) for ax in fig.axes for line in ax.lines for y in line.get_ydata(orig=False))
        save(fig, path, dpi)

    monkeypatch.setattr(grutool.curves, "save_png", capture)
    return seen


def test_plot_reads_non_finite_metrics_as_gaps(run, tmp_path, monkeypatch):
    """A bare `Infinity` (or NaN) in a hand-edited metrics.jsonl is drawn as a gap, never as a number."""
    import shutil

    copy = Path(shutil.copytree(run, tmp_path / "run"))
    rows = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    rows[0].update(train_loss=math.inf, val_accuracy=-math.inf)
    rows[1].update(val_loss=math.nan)
    text = "".join(json.dumps(r) + "\n" for r in rows)  # Python writes the bare tokens Infinity and NaN
    assert "Infinity" in text
    (copy / "metrics.jsonl").write_text(text)
    (copy / "summary.json").unlink()  # the best value then comes from the rows, an infinite one included
    seen = drawn_values(monkeypatch)
    result = invoke("plot", copy, "-o", tmp_path / "c.png")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen and not any(math.isinf(y) for y in seen)
    assert sum(math.isnan(y) for y in seen) == 3  # the three non-finite values, as gaps


def test_plot_of_values_beyond_what_matplotlib_can_span_is_one_line(run, tmp_path):
    import shutil

    copy = Path(shutil.copytree(run, tmp_path / "run"))
    rows = [json.loads(line) for line in (copy / "metrics.jsonl").read_text().splitlines()]
    rows[0]["val_loss"], rows[-1]["val_loss"] = -1e308, 1e308  # finite, but their span overflows
    (copy / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert_user_error(invoke("plot", copy, "-o", tmp_path / "c.png"), "cannot draw these curves", "run")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
