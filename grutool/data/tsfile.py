"""The UEA/sktime `.ts` format: numeric sequences, multivariate, of any length, with a class label or a target.

    # comment lines
    @problemName JapaneseVowels
    @missing false          values may be '?' (true) or not (false)
    @univariate false
    @dimensions 12          channels per case
    @equalLength false      all cases as long as each other (true) or not
    @classLabel true 1 2 3  the labels after the last ':' of each case (quoted when a label has spaces)
    @targetLabel true       (instead of classLabel) a real-valued target after the last ':'
    @data
    1.8,1.9,1.9:-0.2,-0.1,-0.2:3      channel 1 : channel 2 : label; values of a channel separated by ','

Labels per step (grutool's convention for the tagger, and the regressor with data.per_step; sktime has none):
the field after the last ':' holds one label per step, separated by ',' as the values are, in step order:

    @classLabel true high low         the tags, each declared once
    1.8,1.9,1.9:-0.2,-0.1,-0.2:low,high,high

With `@targetLabel true` they are real numbers (`...:0.5,0.7,0.2`). A case needs exactly as many labels as
steps, and a label then holds no ','.

Every disagreement between the header and the data, and every value that is not a number, is a UserError
naming `file:line`. A missing value ('?' or NaN) is read as NaN; what becomes of it is the caller's rule
(`data.missing`, see `grutool.data.numeric`). Timestamped values (`(t,v)` pairs) are not read.
"""

from __future__ import annotations

import difflib
import math
import shlex
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from grutool.data.tables import is_number, read_number
from grutool.errors import UserError, clipped, counted

MISSING = ("?", "nan", "NaN", "NAN")


@dataclass
class TsHeader:
    """What the `@` lines declare (None: not declared)."""

    dimensions: Optional[int] = None
    equal_length: Optional[bool] = None
    series_length: Optional[int] = None
    missing: Optional[bool] = None
    class_labels: Optional[list[str]] = None  # declared classes; [] with `@classLabel true` and no list
    target: bool = False                      # `@targetLabel true`: a real number after the last ':'
    timestamps: bool = False
    univariate: Optional[bool] = None
    lines: dict[str, int] = field(default_factory=dict)  # header key -> its line number

    @property
    def labelled(self) -> bool:
        return self.class_labels is not None or self.target


@dataclass
class TsFile:
    """The cases of one `.ts` file, in file order."""

    path: str
    values: list[np.ndarray]          # each (T_i, C) float32, NaN where missing
    labels: Optional[list]            # the label (or target, as written) of each case, per_step a list of them per
                                      # case; None when unlabelled
    lines: list[int]                  # each case's line number
    header: TsHeader

    @property
    def ids(self) -> list[str]:
        """Each case's id: its number in the file, from 1."""
        return [str(i + 1) for i in range(len(self.values))]


def _flag(where: str, key: str, value: str) -> bool:
    v = value.strip().lower()
    if v not in ("true", "false"):
        raise UserError(f"{where}: @{key} must be true or false (got {clipped(value, 40)!r}); fix the header")
    return v == "true"


def _header_line(header: TsHeader, where: str, line_no: int, line: str) -> None:
    key, _, rest = line[1:].replace("\t", " ").partition(" ")  # '@classLabel<TAB>true a b' as with a space
    key, rest = key.lower(), rest.strip()
    header.lines[key] = line_no
    if key == "dimensions":
        if not rest.isdigit() or int(rest) < 1:
            raise UserError(f"{where}: @dimensions must be a whole number >= 1 (got {clipped(rest, 40)!r}); fix the header")
        header.dimensions = int(rest)
    elif key == "serieslength":
        if rest.isdigit():
            header.series_length = int(rest)
    elif key == "equallength":
        header.equal_length = _flag(where, key, rest)
    elif key == "missing":
        header.missing = _flag(where, key, rest)
    elif key == "univariate":
        header.univariate = _flag(where, key, rest)
    elif key == "timestamps":
        header.timestamps = _flag(where, key, rest)
    elif key == "classlabel":
        flag, _, labels = rest.partition(" ")
        if _flag(where, key, flag):
            try:
                header.class_labels = shlex.split(labels)  # "big dog" cat: a label with spaces is quoted
            except ValueError as e:
                raise UserError(f"{where}: @classLabel labels: {e}; close the quote") from None
            if len(set(header.class_labels)) < len(header.class_labels):
                raise UserError(f"{where}: @classLabel lists a label twice; list each class once")
    elif key == "targetlabel":
        header.target = _flag(where, key, rest)
    # @problemName and unknown keys carry nothing the reader needs.


def _values_not_label(text: str, header: TsHeader, per_step: bool) -> bool:
    """Whether the field after a case's last ':' is a channel's values rather than its label: numbers (or '?')
    that no label could be (a declared class it is not; more than one number where one target belongs)."""
    parts = [p.strip() for p in text.split(",")]
    try:
        [read_number(p) for p in parts if p not in MISSING]
    except ValueError:
        return False
    if header.target:
        return not per_step and len(parts) > 1
    if header.class_labels:
        return any(p not in header.class_labels for p in parts) if per_step else text.strip() not in header.class_labels
    return not per_step and len(parts) > 1


FLOAT32_MAX = float(np.finfo(np.float32).max)


def parse_channels(fields: list[str], where: str) -> np.ndarray:
    """Channel strings ('1.5,2,?') of one case -> (T, C) float32, NaN for '?'; errors name `where`."""
    columns = []
    for c, text in enumerate(fields, start=1):
        if text.strip().startswith("("):  # sktime's timestamped form '(t,v),(t,v)', under @timeStamps false too
            raise UserError(f"{where}: channel {c} holds timestamped values ({clipped(text.strip(), 30)!r}), which "
                            f"are not read; write the values alone, separated by ',' (and @timeStamps false)")
        parts = [p.strip() for p in text.split(",")] if text.strip() else []
        if not parts:
            raise UserError(f"{where}: channel {c} is empty (an empty sequence); give every channel at least one "
                            f"value, or remove the case")
        values = []
        for t, p in enumerate(parts, start=1):
            if p in MISSING:
                values.append(math.nan)
                continue
            try:
                values.append(read_number(p))
            except ValueError:
                raise UserError(f"{where}: channel {c} value {t} is not a number ({clipped(p, 40)!r}); "
                                f"write a number, or '?' for a missing value") from None
            if not math.isfinite(values[-1]):
                raise UserError(f"{where}: channel {c} value {t} is {p}; write a finite number or '?'")
            if abs(values[-1]) > FLOAT32_MAX:  # finite here, inf once read as float32 (1e39)
                raise UserError(f"{where}: channel {c} value {t} is {p}, beyond what float32 holds (about "
                                f"±3.4e38); write a smaller number")
        columns.append(values)
    lengths = {len(v) for v in columns}
    if len(lengths) > 1:
        first = len(columns[0])
        odd = next(c for c, v in enumerate(columns, start=1) if len(v) != first)
        n = len(columns[odd - 1])
        raise UserError(f"{where}: channel {odd} has {n} value{'' if n == 1 else 's'} but channel 1 has {first} "
                        f"(ragged steps); every channel of a case needs one value per step")
    return np.asarray(columns, dtype=np.float32).T.copy()  # (T, C)


def read_ts(path: str, text: str, need_labels: bool = True, per_step: bool = False) -> TsFile:
    """The cases of a `.ts` file's text (read by the caller); see the module docstring for the checks.
    `per_step`: each case's label field holds a label per step (TsFile.labels: a list of str per case).
    Without `need_labels` (inference) the labels are dropped unread: TsFile.labels is None."""
    header = TsHeader()
    values: list[np.ndarray] = []
    labels: list[str] = []
    lines: list[int] = []
    in_data = False
    for line_no, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        where = f"{path}:{line_no}"
        if not in_data:
            if not line.startswith("@"):
                typo = next((f" (line {n}: @{key}, meant as @data?)" for key, n in header.lines.items()
                             if key != "data" and difflib.get_close_matches(key, ["data"], cutoff=0.6)), "")
                raise UserError(f"{where}: data before the @data line{typo}; a .ts file lists its @ header, then "
                                f"@data")
            if line.lower().startswith("@data"):
                in_data = True
                if header.univariate and header.dimensions not in (None, 1):
                    raise UserError(f"{path}:{header.lines['univariate']}: @univariate true, but @dimensions is "
                                    f"{header.dimensions} (line {header.lines['dimensions']}); fix the header")
                if header.univariate and header.dimensions is None:
                    header.dimensions = 1
                if header.timestamps:
                    raise UserError(f"{path}:{header.lines['timestamps']}: @timeStamps true: timestamped "
                                    f"values are not read; write plain values and set @timeStamps false")
            else:
                _header_line(header, where, line_no, line)
            continue
        fields = line.split(":")
        # The channels a case has (the header's, else the first case's): a case of that many fields whose last
        # one reads as values, not as a label, has no label (cut short, or an unlabelled case read by infer).
        expected = header.dimensions if header.dimensions is not None else values[0].shape[1] if values else None
        unlabelled = header.labelled and len(fields) == expected and _values_not_label(fields[-1], header, per_step)
        if unlabelled and need_labels:
            said = (f"@dimensions is {expected}" if header.dimensions is not None
                    else f"the case on line {lines[0]} has {expected}")
            raise UserError(f"{where}: {counted(len(fields), 'channel')} and no label after them ({said}), but the header "
                            f"declares {'@targetLabel' if header.target else '@classLabel'} true; add ':<label>' "
                            f"(a case cut short?) or fix the header")
        if header.labelled and not unlabelled:  # inference reads a case without its label as it is
            if len(fields) < 2:
                raise UserError(f"{where}: no label after the values, but the header declares "
                                f"{'@targetLabel' if header.target else '@classLabel'} true; add ':<label>' "
                                f"or fix the header")
            label = fields.pop().strip()
            if not need_labels:  # read for inference: the labels are ignored, so are their mistakes
                label = None
            elif not label:
                raise UserError(f"{where}: the label after the last ':' is empty; write the case's label")
            case = [] if label is None else [part.strip() for part in label.split(",")] if per_step else [label]
            for k, one in enumerate(case, start=1):
                step = f" (step {k})" if per_step else ""
                if not one:
                    raise UserError(f"{where}: step {k}'s label is empty; write one label per step, separated "
                                    f"by ','")
                if header.target:
                    try:
                        read_number(one)
                    except ValueError:
                        raise UserError(f"{where}: target {clipped(one, 40)!r}{step} is not a number, but the "
                                        f"header declares @targetLabel true; write a number") from None
                elif header.class_labels and one not in header.class_labels:
                    raise UserError(f"{where}: label {clipped(one, 40)!r}{step} is not among @classLabel's "
                                    f"({', '.join(header.class_labels[:10])}); add it to the header or fix the case")
            labels.append(None if label is None else case if per_step else label)
        if header.dimensions is not None and len(fields) != header.dimensions:
            # One field too many and no label declared: most likely a label the header does not announce.
            fix = (f"a label after the last ':' needs @classLabel true (or @targetLabel true) in the header; else "
                   f"give every case {counted(header.dimensions, 'channel')}"
                   if len(fields) == header.dimensions + 1 and not header.labelled
                   else f"give every case {counted(header.dimensions, 'channel')} or fix the header")
            raise UserError(f"{where}: {counted(len(fields), 'channel')}, but @dimensions is {header.dimensions} "
                            f"(line {header.lines.get('dimensions', header.lines.get('univariate'))}); {fix}")
        if values and len(fields) != values[0].shape[1]:
            raise UserError(f"{where}: {counted(len(fields), 'channel')}, but the case on line {lines[0]} has "
                            f"{values[0].shape[1]} (ragged channel counts); give every case the same channels")
        x = parse_channels(fields, where)
        if per_step and labels and labels[-1] is not None and len(labels[-1]) != len(x):
            raise UserError(f"{where}: {len(labels[-1])} step label(s) after the last ':', but the case has {len(x)} "
                            f"steps; write one label per step, separated by ','")
        if header.missing is False and np.isnan(x).any():
            raise UserError(f"{where}: a missing value ('?'), but the header declares @missing false "
                            f"(line {header.lines['missing']}); set @missing true or fill the value")
        if header.equal_length and values and len(x) != len(values[0]):
            raise UserError(f"{where}: {len(x)} steps, but the case on line {lines[0]} has {len(values[0])} and "
                            f"the header declares @equalLength true; set @equalLength false or fix the case")
        if header.equal_length and header.series_length is not None and len(x) != header.series_length:
            raise UserError(f"{where}: {len(x)} steps, but @seriesLength is {header.series_length}; "
                            f"fix the header or the case")
        values.append(x)
        lines.append(line_no)
    if not in_data:
        raise UserError(f"{path}: no @data line; a .ts file lists its @ header, then @data and one case per line")
    if not values:
        raise UserError(f"{path}: no cases after @data; write one case a line after it, its channels separated by "
                        f"':' and the values of each by ','")
    if need_labels and not header.labelled:
        raise UserError(f"{path}: no labels (the header declares neither @classLabel true nor @targetLabel true); "
                        f"a labelled split needs them")
    return TsFile(path, values, labels if header.labelled and need_labels else None, lines, header)


def parse_case(text: str, channels: int, where: str = "input") -> np.ndarray:
    """One unlabelled case written as a `.ts` data line ('1,2,3:4,5,6': channels separated by ':') -> (T, C)."""
    if not text.strip():  # not "1 channel": an empty text has none
        if channels == 1:
            raise UserError(f"{where}: empty; write the sequence's values separated by ',' (e.g. '0.1,0.2,0.3')")
        raise UserError(f"{where}: empty; write the sequence's {channels} channels separated by ':' and the values "
                        f"of each by ',' (e.g. '0.1,0.2,0.3' per channel)")
    fields = text.strip().split(":")
    file_line = _file_line(text.strip())
    if file_line:  # a data file piped in (`cat test.ts | grutool infer RUN --file -`): said as that, not as channels
        raise UserError(f"{where}: {clipped(text.strip(), 40)!r} is {file_line}; typed and piped inputs are one "
                        f"sequence a line, '1,2,3:4,5,6' (channels separated by ':'): give a .ts or .csv data file "
                        f"by name, --file PATH")
    if len(fields) != channels:
        # One field more, not a number list: a .ts data line pasted with its label ('1,2:3,4:sine')
        label = len(fields) == channels + 1 and not _numbers(fields[-1])
        hint = (f"; its last field {clipped(fields[-1].strip(), 20)!r} reads as a .ts line's class label: leave it "
                f"out" if label else "")
        raise UserError(f"{where}: {counted(len(fields), 'channel')}, but the model reads {channels}{hint}; write the "
                        f"channels separated by ':' and the values of each by ','")
    return parse_channels(fields, where)


def _numbers(field: str) -> bool:
    """Whether a field reads as a channel: comma-separated numbers (or ?, a .ts missing value)."""
    return all(v.strip() == "?" or is_number(v.strip()) for v in field.split(","))


def _file_line(text: str) -> str:
    """What a line of a data file reads as, where a typed sequence would be none of these: a .ts header or comment
    (`@dimensions 2`, `# ...`), or a table's header row (`id,step,a,b` : names, no ':'); '' otherwise."""
    if text.startswith(("@", "#")):
        return "a .ts file's header or comment line"
    if ":" not in text and "," in text:  # names only: a value mistyped among numbers stays a value's error
        words = [w.strip() for w in text.split(",") if w.strip()]
        if len(words) >= 2 and not any(w == "?" or is_number(w) for w in words):
            return "a table's header row"
    return ""


def format_case(x: np.ndarray) -> str:
    """(T, C) values as a `.ts` data line, the text `parse_case` reads back ('?' for NaN)."""
    return ":".join(",".join("?" if v != v else f"{float(v):.9g}" for v in column) for column in np.asarray(x).T)
