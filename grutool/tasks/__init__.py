"""What differs between model families: how examples are read, encoded, scored and shown.

The training loop, run directory and CLI are shared; they talk to a task object.
"""

from __future__ import annotations


def get_task(name: str):
    if name == "classifier":
        from grutool.tasks.classifier import ClassifierTask

        return ClassifierTask()
    if name in ("tagger", "joint"):
        from grutool.tasks.tagger import TaggerTask

        return TaggerTask(name)
    if name == "seq2seq":
        from grutool.tasks.seq2seq import Seq2SeqTask

        return Seq2SeqTask()
    raise ValueError(f"unknown task {name!r}")
