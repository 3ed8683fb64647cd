"""Rich tables shared by the task renderers, and the one rule for every string handed to rich.

rich reads `[...]` in a string as markup: a label `[negative]` printed as is vanishes (and `[/x]` is an
error). So every piece of user text in a rich table, title or printed line (labels, tags, paths, config
values, sources and outputs) goes through `plain` first; grutool's own markup (`[red]`) stays markup.
"""

from __future__ import annotations


def plain(value) -> str:
    """`value` as rich markup that prints exactly as `str(value)` reads."""
    from rich.markup import escape

    return escape(str(value))


def confusion_table(title: str, labels: list[str], matrix: list[list[int]]):
    """Rows: gold labels, columns: predicted labels."""
    from rich.table import Table

    cm = Table(title=f"{plain(title)} (rows: gold, columns: predicted)")
    cm.add_column("gold \\ pred")
    for name in labels:
        cm.add_column(plain(name), justify="right")
    for name, row in zip(labels, matrix):
        cm.add_row(plain(name), *[str(x) for x in row])
    return cm
