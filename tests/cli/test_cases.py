"""Bad inputs kept as data: every file in tests/cli/cases/ is one case (see its README.md).

Invariant: exit code 2, one line `error: ...` naming what, where and the fix, no traceback, and nothing
written (every file under the case's folder, a copy of a trained run included, is unchanged).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import assert_user_error, invoke, tiny_config

CASES = sorted((Path(__file__).parent / "cases").glob("*.yaml"))


def snapshot(root: Path) -> dict:
    return {str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trained")
    raw = tiny_config(root, epochs=1)
    raw["model"].update(embedding_dim=8, hidden_size=8)
    raw["train"]["device"] = "cpu"
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = invoke("train", root / "tiny.yaml", "-q")
    assert result.exit_code == 0, result.output
    return root


def test_there_are_cases():
    assert len(CASES) >= 20


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_bad_input_case(path, trained, tmp_path, monkeypatch):
    import torch

    case = yaml.safe_load(path.read_text(encoding="utf-8"))
    monkeypatch.chdir(tmp_path)
    shutil.copytree(trained / "run", tmp_path / "run")
    raw = yaml.safe_load((trained / "tiny.yaml").read_text(encoding="utf-8"))
    raw["output_dir"] = str(tmp_path / "new")
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    for name, content in (case.get("files") or {}).items():
        target = tmp_path / name
        if content is None:
            target.unlink()
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    for name, obj in (case.get("checkpoint") or {}).items():
        torch.save(obj, tmp_path / name)
    values = {"tmp": str(tmp_path), "run": str(tmp_path / "run"), "config": str(tmp_path / "tiny.yaml")}
    before = snapshot(tmp_path)
    result = invoke(*[str(a).format(**values) for a in case["command"]])
    assert_user_error(result, *case["expect"])
    for wrong in case.get("absent") or []:
        assert wrong not in result.output, f"{wrong!r} in {result.output!r}"
    assert snapshot(tmp_path) == before, "a failing command wrote something"
