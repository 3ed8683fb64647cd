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
    """A table printed whole where it fits the width rich renders at, as `Whole` prints a table (its title, where
    wider than the table, above it on lines that fit: rich wrapped `confusion (rows: gold, columns: predicted)` to
    the table's width, `columns:` / `predicted)`), else one line (`note`) in its place."""

    def __init__(self, table, note: str):
        self.table, self.note = table, note

    def __rich_console__(self, console, options):
        from rich.measure import Measurement
        from rich.text import Text

        needed = Measurement.get(console, options.update_width(10_000), self.table).maximum
        yield Whole(self.table) if needed <= options.max_width else Text(self.note)  # Text: never markup


class Whole:
    """A table rendered no narrower than its narrowest whole rendering: on a terminal narrower than that (a
    40-column pane) rich cut figures to fit (`0.6375` as `0.637`, `0.73…`, a header `precis…`), wrapped labels
    onto a second row (`sine` / `wave`) and dropped columns (`runs` lost its run names); now every cell is on one
    line (`whole_cells`), the lines run past the edge, where the terminal wraps them, and nothing is lost. The
    title of such a table, or one wider than its table, is printed above it on lines of its own that fit the
    terminal (`title_lines`): rich wrapped it to the table's width, mid-path and between a figure and its name
    (`…/test.t` / `sv: n=80,`, `macro-F1 0.50` / `31`), on lines wider than a 40-column pane."""

    def __init__(self, table):
        self.table = table

    def __rich_console__(self, console, options):
        import copy

        from rich.measure import Measurement
        from rich.segment import Segment

        untitled = copy.copy(self.table)
        untitled.title = None
        fits = Measurement.get(console, options.update_width(10_000), untitled).minimum <= options.max_width
        table = self.table
        if table.title:
            title = console.render_str(table.title, style="table.title")
            room = min(Measurement.get(console, options, untitled).maximum, options.max_width)
            if not fits or max(line.cell_len for line in title.split("\n")) > room:
                # into a pipe or file (soft wrap: no_wrap), each of the title's lines stays one, as rich printed it
                for line in title_lines(title, 10_000 if options.no_wrap else options.max_width):
                    yield from line.render(console)
                    yield Segment.line()
                table = untitled
        if fits:
            yield from console.render(table, options)
            return
        untitled.columns = [copy.copy(column) for column in untitled.columns]  # whole_cells sets their widths
        table = whole_cells(untitled)
        needed = Measurement.get(console, options.update_width(10_000), table).minimum
        # Past the terminal's edge the spaces that pad a line to the table's width were wrapped onto a line of
        # their own, a blank line after each short line (a title, a block's label).
        yield from unpadded(console, table, options.update_width(needed))


def unpadded(console, renderable, options):
    """`renderable`'s lines without the spaces that pad each to its width (a block's label, `data.horizon`, ran
    on in spaces to the width of its longest value), as segments, each line ended."""
    from rich.segment import Segment

    for line in console.render_lines(renderable, options, pad=False):
        while line and not line[-1].text.rstrip() and not line[-1].control:
            line = line[:-1]
        if line:
            line = [*line[:-1], Segment(line[-1].text.rstrip(), line[-1].style)]
        yield from line
        yield Segment.line()


def title_lines(title, width: int) -> list:
    """A title (rich Text) as lines of at most `width` columns, each of its own lines broken after a figure's
    `, `, `; ` or `: ` outside parentheses (`span F1 0.7479 (P 0.9780, R 0.6054)` stays whole), else after a `, `
    or `; ` inside them, else after a `: ` (`(rows: gold,` / `columns: predicted)`, never `columns:` / `predicted)`),
    else between words; a word longer than `width` (a path) stays whole, running long."""
    import re

    from rich.cells import cell_len

    lines, start = [], 0
    for own in title.plain.split("\n"):
        # break points, the preferred first; each ends a line at the end of its match, the space left out
        kinds = [[m.end() for m in re.finditer(pattern, own)] + [len(own)]
                 for pattern in (r"[,;:] (?![^(]*\))", r"[,;] ", r"[,;:] ", r" (?=\S)")]
        at = 0
        while at < len(own):
            fits = [[e for e in ends if at < e and cell_len(own[at:e].rstrip()) <= width] for ends in kinds]
            end = next((f[-1] for f in fits if f), None) or next(e for e in kinds[-1] if e > at)
            lines.append(title[start + at:start + len(own[:end].rstrip())])
            at = end
        if not own:
            lines.append(title[start:start])
        start += len(own) + 1
    return lines


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
    """The first of `choices` whose narrowest rendering (every word whole) fits the width, its lines without the
    spaces that pad them (`unpadded`); where none does, the narrowest of them (the first of equals), `Whole`: no
    cell is cut."""

    def __init__(self, *choices):
        self.choices = choices

    def __rich_console__(self, console, options):
        from rich.measure import Measurement

        needed = [Measurement.get(console, options.update_width(10_000), choice).minimum for choice in self.choices]
        fits = [choice for choice, width in zip(self.choices, needed) if width <= options.max_width]
        if fits:
            yield from unpadded(console, fits[0], options)
        else:
            yield Whole(self.choices[needed.index(min(needed))])
