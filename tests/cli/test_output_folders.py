"""An output folder that passes the checks before any work but that the system then refuses to create (a virtual
or read-only file system such as /proc or /sys, where even root's `os.access` says yes; a parent removed
meanwhile): `train -o`, `study -o` and `tune -o` say so in one line, exit 2, and write nothing; no OSError
traceback."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import yaml

from conftest import assert_user_error, invoke, tiny_config
from grutool.atomic import make_folder
from grutool.errors import UserError


def refused(monkeypatch, folder: Path, code: int = errno.EPERM) -> None:
    """Creating `folder` (or anything under it) fails with `code`, as /sys refuses root."""
    mkdir = Path.mkdir

    def guarded(self, *args, **kwargs):
        if self == folder or folder in self.parents:
            raise OSError(code, "refused here")
        return mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", guarded)


def test_make_folder_turns_the_systems_refusal_into_one_line(tmp_path):
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match=r"afile/sub: cannot create the folder \(.*\); choose another --output-dir"):
        make_folder(tmp_path / "afile" / "sub", "--output-dir")
    make_folder(tmp_path / "a" / "b", "--output-dir")  # parents made, and an existing folder is fine
    make_folder(tmp_path / "a" / "b", "--output-dir")
    assert (tmp_path / "a" / "b").is_dir()


@pytest.fixture
def config(tmp_path) -> Path:
    raw = tiny_config(tmp_path, epochs=1)
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_train_study_and_tune_into_a_folder_the_system_refuses(config, tmp_path, monkeypatch):
    out = tmp_path / "sys" / "out"
    refused(monkeypatch, out)
    assert_user_error(invoke("train", config, "-o", out), f"{out}: cannot create the folder (refused here)",
                      "choose another --output-dir")
    assert_user_error(invoke("study", config, "--cells", "gru,lstm", "--seeds", "1", "-o", out),
                      f"{out}: cannot create the folder (refused here)", "choose another --output-dir")
    space = tmp_path / "space.yaml"
    space.write_text("model.hidden_size: {int: [8, 16]}\n")
    assert_user_error(invoke("tune", config, "--space", space, "--trials", "1", "-o", out),
                      f"{out}: cannot create the folder (refused here)", "choose another --output-dir")
    assert not out.exists()
