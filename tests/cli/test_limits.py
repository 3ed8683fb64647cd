"""Sizes and values past what torch can take (issue 20): one error line before any work, or handled.

The exit-2-and-nothing-written cases are files in tests/cli/cases/ (bench_absurd_*, shapes_absurd_*,
seed_*, tensorboard_*); what needs more than one command is here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from conftest import assert_user_error, invoke, shipped_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory) -> Path:
    """A tiny character LM trained for one epoch on the shipped toy data."""
    root = tmp_path_factory.mktemp("lm")
    raw = shipped_config("lm.yaml", root / "run", model={"embedding_dim": 8, "hidden_size": 8, "condition_dim": 4},
                         train={"epochs": 1, "device": "cpu"})
    (root / "lm.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = invoke("train", root / "lm.yaml", "-q")
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.mark.parametrize("seed", ["1000000000000000000000000000000", "-9223372036854775809"])
def test_infer_seed_outside_torchs_range_is_a_usage_error(lm_run, seed):
    result = invoke("infer", str(lm_run), "--condition", "zuri", "--seed", seed)
    assert_user_error(result, "--seed", "torch.manual_seed", seed)


@pytest.mark.parametrize("seed", ["18446744073709551615", "-9223372036854775808"])
def test_infer_seed_at_the_ends_of_torchs_range_samples(lm_run, seed):
    result = invoke("infer", str(lm_run), "--condition", "zuri", "--seed", seed)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip()


def test_seeds_derived_from_the_largest_train_seed_stay_valid():
    """Each epoch's order and each rank's dropout stream come from train.seed times a constant: taken
    modulo 2**64 as torch takes a seed, so the largest seed trains and small seeds draw what they did."""
    import torch

    from grutool.data.batching import epoch_batches
    from grutool.training import distributed

    lengths = [3] * 10
    assert sorted(sum(epoch_batches(lengths, 4, "random", 2**64 - 1, 7), [])) == list(range(10))
    g = torch.Generator().manual_seed(13 * 100_003 + 2)
    expected = torch.randperm(10, generator=g).tolist()
    assert sum(epoch_batches(lengths, 4, "random", 13, 2), []) == expected
    with torch.random.fork_rng(devices=[]):
        distributed.seed_rank(distributed.Dist(rank=1, world_size=2), 2**64 - 1)  # no overflow


def _files(*roots: Path) -> set[Path]:
    return {p for root in roots if root.exists() for p in root.rglob("*")}


def test_dry_run_writes_no_datasets_cache(tmp_path):
    """`train --dry-run` writes nothing: the datasets cache of a local file goes to a temporary folder, removed
    after. A run that reads the same data for real (shapes --config) fills the cache: the test can see it."""
    import os
    import subprocess
    import sys

    from conftest import tiny_config

    raw = tiny_config(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    cache, home = tmp_path / "hf-datasets", tmp_path / "hf-home"
    env = {**os.environ, "HF_DATASETS_CACHE": str(cache), "HF_HOME": str(home), "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    before = _files(tmp_path)

    def grutool(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "grutool", *args], cwd=tmp_path, env=env, text=True,
                              capture_output=True, timeout=300)

    result = grutool("train", str(config), "--dry-run", "-q")
    assert result.returncode == 0, result.stderr
    assert _files(tmp_path) == before, "a dry run wrote files"
    result = grutool("shapes", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    assert _files(cache), "the datasets cache was not where the test looks"
