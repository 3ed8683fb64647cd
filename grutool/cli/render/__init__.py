"""How the CLI shows results: one module per kind of output, named by a task's `renderer` (the family
folder whose `render` module it is: `grutool.families.<renderer>.render`).

Each module has `summary_line(metrics)` (after `train`), `tables(metrics)` (`eval`) and `line(result)`
(`infer`); `plot(metrics, path, title)` where `eval --plot` draws something for the family (classifier and
tagger: confusion matrices, regressor: predicted against true, forecast: windows); seq2seq adds `plot_attention`.
rich is imported, torch never.
"""

from __future__ import annotations

import importlib


def renderer(task):
    """The render module a task names (grutool.families.base.Task.renderer): a family folder's `render`."""
    name = f"grutool.families.{task.renderer}.render"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
            raise
        raise ValueError(f"task {task.name}: unknown renderer {task.renderer!r} (no module {name})") from None
