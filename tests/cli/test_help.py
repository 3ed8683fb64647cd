"""Start-up is a feature: `--help` of the app and of every command imports neither torch nor datasets."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from grutool.cli.app import app

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
    "export": (["export"], ["--int8"]),
    "serve": (["serve"], ["--port"]),
    "study": (["study"], ["--cells", "--seeds", "--resume"]),
    "tune": (["tune"], ["--space", "--trials", "--pruner", "--storage"]),
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


# Typer's own placeholders: `<path>`, `<int range>`, `<list[str]>` beside a name; `{RUN_DIR}` on the usage line.
TYPE_LEAK = re.compile(r"<(?:int|float|str|bool|path|file|list\[[^\]]*\]|[a-z]+ range)>|\{[A-Z_.a-z]+\}|\[\[")


@pytest.mark.parametrize("name", [n for n in HELP if n != "grutool"])
def test_help_placeholders_are_clean_and_fit_80_columns(name):
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert not TYPE_LEAK.findall(result.output), (TYPE_LEAK.findall(result.output), result.output)
    assert "VALUE " not in result.output.replace("KEY=VALUE", ""), "an option without a metavar"
    wide = [line for line in result.output.splitlines() if len(line) > 80]
    assert not wide, wide
    assert "Examples:" in result.output, "every command ends its help with examples"
    before = result.output.splitlines()[result.output.splitlines().index("  Examples:") - 1]
    assert before.strip() == "", f"no blank line before Examples: ({before!r}; `runs` ran them on)"


def test_every_command_is_checked():
    import typer.main

    assert set(typer.main.get_command(app).commands) == set(HELP) - {"grutool"}


@pytest.mark.parametrize("args", [["--help"], ["init", "classifier"], ["runs", "tests/fixtures/runs_v1", "--json"]],
                         ids=["help", "init", "runs"])
def test_commands_that_run_no_gru_compile_nothing(args, tmp_path):
    # kernel auto builds the compiled GRU on a GRU's first call (grutool.kernels.AUTO); these never make one.
    root = Path(__file__).resolve().parents[2]
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom grutool.cli.app import app\n"
            f"r = CliRunner().invoke(app, {args!r})\nassert r.exit_code == 0, r.output\n"
            "assert 'torch.utils.cpp_extension' not in sys.modules\n"
            "c = sys.modules.get('grutool.modules.rnn.compiled')\n"
            "assert c is None or (c._EXT is None and c._FAILED is None), 'the build was tried'\n")
    env = {**os.environ, "GRUTOOL_CACHE": str(tmp_path / "cache"), "CXX": "no-such-compiler-here"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "cache").exists()
