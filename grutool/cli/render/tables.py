"""Rich tables shared by the task renderers, and the one rule for every string handed to rich.

rich reads `[...]` in a string as markup: a label `[negative]` printed as is vanishes (and `[/x]` is an
error). So every piece of user text in a rich table, title or printed line (labels, tags, paths, config
values, sources and outputs) goes through `plain` first; grutool's own markup (`[red]`) stays markup.
"""

from __future__ import annotations

from grutool.errors import counted  # `2,077 sentences`: the renderers' counts, as messages write them


def plain(value) -> str:
    """`value` as rich markup that prints exactly as `str(value)` reads."""
    from rich.markup import escape

    return escape(str(value))


def one_cell(text) -> str:
    """A text as one cell of an `infer` line: tabs and line ends written `\\t`, `\\n`, `\\r`, so the line stays
    one input's with its columns in place (a quoted csv field holding a line break printed as two lines);
    `--jsonl` keeps the text as it is."""
    return str(text).replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def confusion_table(title: str, labels: list[str], matrix: list[list[int]]):
    """Rows: gold labels, columns: predicted labels. Every label whole: where the matrix is wider than the
    terminal (or, into a pipe, 80 columns), one line saying where it is instead (labels cut to `B-c…` would
    read alike)."""
    from rich.table import Table

    cm = Table(title=f"{plain(title)} (rows: gold, columns: predicted)")
    cm.add_column("gold \\ pred", no_wrap=True)
    for name in labels:
        cm.add_column(plain(name), justify="right", no_wrap=True)
    for name, row in zip(labels, matrix):
        cm.add_row(plain(name), *[str(x) for x in row])
    n = len(labels)
    return FitsOrSays(cm, f"{title}: {n} x {n}, wider than the terminal; `grutool eval --json` has it, "
                          f"`--plot PATH.png` draws it")


class FitsOrSays:
    """A table printed whole where it fits the width rich renders at, else one line (`note`) in its place."""

    def __init__(self, table, note: str):
        self.table, self.note = table, note

    def __rich_console__(self, console, options):
        from rich.measure import Measurement
        from rich.text import Text

        needed = Measurement.get(console, options.update_width(10_000), self.table).maximum
        yield self.table if needed <= options.max_width else Text(self.note)  # Text: the note is never markup


class Whole:
    """A table rendered no narrower than its narrowest whole rendering: on a terminal narrower than that (a
    40-column pane) rich cut figures to fit (`0.6375` as `0.637`, `0.73…`) and dropped columns (`runs` lost
    its run names); now the lines run past the edge, where the terminal wraps them, and nothing is lost."""

    def __init__(self, table):
        self.table = table

    def __rich_console__(self, console, options):
        from rich.measure import Measurement

        needed = Measurement.get(console, options.update_width(10_000), self.table).minimum
        if needed <= options.max_width:
            yield from console.render(self.table, options)
            return
        # Each line without the spaces that pad it to the table's width: past the terminal's edge they were
        # wrapped onto a line of their own, a blank line after each short line (a title, a block's label).
        from rich.segment import Segment

        for line in console.render_lines(self.table, options.update_width(needed), pad=False):
            while line and not line[-1].text.rstrip() and not line[-1].control:
                line = line[:-1]
            if line:
                line = [*line[:-1], Segment(line[-1].text.rstrip(), line[-1].style)]
            yield from line
            yield Segment.line()


def whole_cells(table):
    """`table` with every cell on one line, whole: each column as wide as its longest cell (header included) and
    never wrapped. rich measures a cell by its longest word and, on a narrow terminal, folded a column below that
    (a run name as `sentiment/runs/gru-see` / `d13`) or wrapped a figure from its name (`accuracy` / `0.6375`);
    now a table too wide for the terminal keeps its lines long (`Whole`) and the terminal wraps them."""
    from rich.text import Text

    def width(cell) -> int:
        text = cell if isinstance(cell, Text) else Text.from_markup(str(cell))
        return max((Text(line).cell_len for line in text.plain.splitlines()), default=0)

    for column in table.columns:
        column.no_wrap = True
        column.min_width = max(width(cell) for cell in (column.header, *column.cells))
    return table


class FirstThatFits:
    """The first of `choices` whose narrowest rendering (every word whole) fits the width; where none does, the
    narrowest of them (the first of equals), `Whole`: no cell is cut."""

    def __init__(self, *choices):
        self.choices = choices

    def __rich_console__(self, console, options):
        from rich.measure import Measurement

        needed = [Measurement.get(console, options.update_width(10_000), choice).minimum for choice in self.choices]
        fits = [choice for choice, width in zip(self.choices, needed) if width <= options.max_width]
        yield fits[0] if fits else Whole(self.choices[needed.index(min(needed))])
