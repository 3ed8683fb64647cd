"""Rich tables shared by the task renderers."""

from __future__ import annotations


def confusion_table(title: str, labels: list[str], matrix: list[list[int]]):
    """Rows: gold labels, columns: predicted labels."""
    from rich.table import Table

    cm = Table(title=f"{title} (rows: gold, columns: predicted)")
    cm.add_column("gold \\ pred")
    for name in labels:
        cm.add_column(name, justify="right")
    for name, row in zip(labels, matrix):
        cm.add_row(name, *[str(x) for x in row])
    return cm
