"""The README's Python API block, run as written (from the repository root, in a fresh interpreter)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def readme_python_block(which: int = 0) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)[which]


def test_readme_python_api_runs_as_written(tmp_path):
    # Run in a copy of the configs and data so the repository's own runs/ is never touched; first the
    # README's CLI step (runs/sentiment exists, as for a reader who followed it), then the block twice
    # (a reader runs an example again).
    for name in ("configs", "data/sentiment"):
        shutil.copytree(ROOT / name, tmp_path / name)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    cli = subprocess.run([sys.executable, "-m", "grutool", "train", "configs/sentiment.yaml", "-q",
                          "--set", "train.epochs=1"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert cli.returncode == 0, cli.stderr
    code = readme_python_block().replace("train.epochs=5", "train.epochs=1")
    assert "train.epochs=1" in code
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stdout.strip().splitlines()
        assert 0.0 <= float(lines[0]) <= 1.0           # evaluate(...)["accuracy"]
        assert "'label'" in lines[1]                    # Predictor(...).predict(...)
    assert (tmp_path / "runs" / "sentiment" / "summary.json").exists(), "the CLI's run is left alone"


def _fresh_python(code: str) -> None:
    """`code` run by a fresh interpreter with this checkout on its path; it must exit 0."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr


def test_top_level_names_are_the_functions_whatever_was_imported_first():
    _fresh_python("import grutool.evaluate, grutool.predict\n"
                  "from grutool import load_config, train, evaluate, Predictor\n"
                  "assert callable(evaluate) and evaluate.__name__ == 'evaluate', evaluate\n"
                  "assert isinstance(Predictor, type) and callable(train) and callable(load_config)\n")


def test_readme_streaming_block_runs_and_ends_where_the_whole_text_does(tmp_path):
    for name in ("configs", "data/sentiment"):
        shutil.copytree(ROOT / name, tmp_path / name)
    code = readme_python_block(1).replace("train.epochs=5", "train.epochs=1")
    assert "train.epochs=1" in code and ".stream()" in code
    code += ("whole = Predictor('runs/sentiment-stream').predict(['the plot was slow but the ending was wonderful'])[0]\n"
             "last = s.feed('')\n"
             "assert last['label'] == whole['label'] and last['text'] == whole['text'], (last, whole)\n"
             "assert all(abs(last['probs'][k] - p) < 1e-5 for k, p in whole['probs'].items()), (last, whole)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "'label'" in proc.stdout


def test_dir_lists_the_api_before_its_first_use():
    # a fresh interpreter: no lazy name imported yet (dir() listed submodules, never load_config, train, Predictor)
    _fresh_python("import sys, grutool\n"
                  "names = set(dir(grutool))\n"
                  "assert {'load_config', 'train', 'evaluate', 'Predictor', '__version__'} <= names, sorted(names)\n"
                  "assert 'torch' not in sys.modules\n")
