"""Start-up is a feature: `--help` of the app and of every command imports neither torch nor datasets."""

from __future__ import annotations

import subprocess
import sys

import pytest

HELP = {
    # arguments: what the help text must show
    "grutool": ([], ["train", "eval", "infer", "shapes", "bench"]),
    "train": (["train"], ["--overwrite", "--resume"]),
    "eval": (["eval"], ["--split"]),
    "infer": (["infer"], ["--beam"]),
    "shapes": (["shapes"], ["--cell", "--config"]),
    "bench": (["bench"], ["--hidden-size", "--smoke"]),
    "runs": (["runs"], ["--json"]),
    "compare": (["compare"], ["RUN_DIR"]),
    "plot": (["plot"], ["--output"]),
    "init": (["init"], ["TASK"]),
}


@pytest.mark.parametrize("name", list(HELP))
def test_help_imports_neither_torch_nor_datasets(name):
    args, shown = HELP[name]
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom grutool.cli.app import app\n"
            f"r = CliRunner().invoke(app, {args + ['--help']!r})\nassert r.exit_code == 0, r.output\n"
            "print(r.output)\n"
            "heavy = [m for m in ('torch', 'datasets', 'pandas') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for text in shown:
        assert text in proc.stdout, text
