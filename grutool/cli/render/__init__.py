"""How the CLI shows results: one module per kind of output, named by a task's `renderer` (the family
folder whose `render` module it is: `grutool.families.<renderer>.render`).

Each module has `summary_line(metrics)` (after `train`), `tables(metrics)` (`eval`) and `line(result)`
(`infer`); seq2seq adds `plot_attention`. rich is imported, torch never.
"""

from __future__ import annotations

import importlib

RENDERERS = ("classifier", "tagger", "seq2seq", "lm")


def renderer(task):
    """The render module a task names (grutool.families.base.Task.renderer)."""
    if task.renderer not in RENDERERS:
        raise ValueError(f"task {task.name}: unknown renderer {task.renderer!r}; known: {', '.join(RENDERERS)}")
    return importlib.import_module(f"grutool.families.{task.renderer}.render")
