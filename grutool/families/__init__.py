"""The model families, by name: one folder each (`classifier/`, `tagger/` with the joint task, `seq2seq/`, `lm/`,
`regressor/`, `forecast/`) holding what differs for it, with its `Task` (see base.py) in `task.py`.

The training loop, run directory, evaluation, prediction, `shapes`, `bench`, config validation
and the CLI are shared; they talk to a task object. A new family is one folder plus one line below.
"""

from __future__ import annotations

from grutool.families.base import Prepared, Task
from grutool.families.classifier.task import ClassifierTask
from grutool.families.forecast.task import ForecastTask
from grutool.families.lm.task import LMTask
from grutool.families.regressor.task import RegressorTask
from grutool.families.seq2seq.task import Seq2SeqTask
from grutool.families.tagger.task import JointTask, TaggerTask

TASKS: dict[str, type[Task]] = {
    "classifier": ClassifierTask,
    "tagger": TaggerTask,
    "joint": JointTask,
    "seq2seq": Seq2SeqTask,
    "lm": LMTask,
    "regressor": RegressorTask,
    "forecast": ForecastTask,
}

__all__ = ["TASKS", "Prepared", "Task", "accepting", "get_task"]


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        raise ValueError(f"unknown task {name!r}; known: {', '.join(TASKS)}") from None


def accepting(*options: str) -> list[str]:
    """Names of the tasks whose `predict` takes all these options (for messages)."""
    return [name for name, task in TASKS.items() if set(options) <= set(task.predict_options)]
