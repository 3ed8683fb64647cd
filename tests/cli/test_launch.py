"""`grutool train --nproc N` re-runs the same command under torchrun, less its own option."""

from grutool.cli.launch import without_nproc


def test_workers_get_the_command_without_nproc():
    args = ["train", "c.yaml", "--nproc", "2", "--set", "train.lr=0.1", "--nproc=3", "-q"]
    assert without_nproc(args) == ["train", "c.yaml", "--set", "train.lr=0.1", "-q"]
