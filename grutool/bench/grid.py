"""The bench grid: which workloads to time, read from a YAML file and command-line lists.

A grid is a set of axes (lists; every combination is one row) plus run settings.
Values are checked here, before torch is imported, so a bad grid costs no start-up:
errors name the option (`--hidden-size: 0: must be > 0`) or the YAML line and column
(`configs/bench.yaml:7:1: hidden_size: 0: must be > 0`). Checks that need torch
(CUDA present? float16 on CPU?) live in `grutool.bench.runner`.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Optional

import yaml

from grutool.cells import CELL_NAMES, CELLS as CELL_REGISTRY
from grutool.config import SEED_MAX
from grutool.config_file import Place, place_of, yaml_lines
from grutool.errors import UserError

CELLS = CELL_NAMES
MODES = ("infer", "train")
LENGTHS = ("padded", "packed", "bucketed")
KERNELS = ("default", "native", "fused", "compiled")
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class Grid:
    """Every field is optional so that a YAML file and the command line can each set some.

    Axes (lists) multiply into rows; the rest are run settings. None means "not given":
    `resolve()` fills in the defaults (or, with a model config, the config's values).
    """

    cells: Optional[tuple[str, ...]] = None
    """Recurrent cells (`gru`, `lstm`, `rnn`); interleaved A B C A B C while timing."""
    batch_size: Optional[tuple[int, ...]] = None
    """Sequences per batch."""
    seq_len: Optional[tuple[int, ...]] = None
    """Time steps T of the padded batch (its longest sequence)."""
    input_size: Optional[tuple[int, ...]] = None
    """Features per step (with a model config: its `model.embedding_dim`)."""
    hidden_size: Optional[tuple[int, ...]] = None
    """Features in the hidden state, per direction."""
    num_layers: Optional[tuple[int, ...]] = None
    """Stacked recurrent layers."""
    bidirectional: Optional[tuple[bool, ...]] = None
    """Run a second, reversed direction."""
    mode: Optional[tuple[str, ...]] = None
    """`infer`: forward without gradients; `train`: forward + backward (with a model config: the whole train step)."""
    lengths: Optional[tuple[str, ...]] = None
    """`padded`: every sequence T long, fed unpacked; `packed`: lengths uniform in 1..T, packed by the
    production encoder; `bucketed`: a batch of similar lengths from grutool's bucketed sampler, packed."""
    kernels: Optional[tuple[str, ...]] = None
    """`default`: what grutool picks (`model.kernel: auto`, whose rule is `grutool.kernels.AUTO`, or the
    config's own kernel); `native`: PyTorch's modules with oneDNN/cuDNN switched off, so every cell runs
    ATen's own per-step loop; `fused`: grutool's fused kernel (the cells `grutool.cells` gives one);
    `compiled`: its C++ time loop (GRU; built on first use, the fused kernel where it cannot be, which the
    row's `kernel` then says). Rows of a cell without the asked kernel are left out."""
    dtype: Optional[tuple[str, ...]] = None
    """Parameter and input dtype of layer workloads (float16 needs CUDA)."""
    device: Optional[str] = None
    """`auto` (CUDA when present), `cpu` or `cuda`."""
    threads: Optional[int] = None
    """torch.set_num_threads for the run (default: torch's own choice, or train.num_threads)."""
    repeats: Optional[int] = None
    """Timed samples per row; the median is reported."""
    warmup: Optional[int] = None
    """Untimed calls per row before timing (the first call builds kernels and caches)."""
    min_sample_ms: Optional[float] = None
    """A sample repeats the call until it lasts at least this long, so timer resolution and
    per-call jitter stay small against it; ms/batch is the sample divided by its call count."""
    config: Optional[str] = None
    """A model config (YAML): time its real train step and inference instead of bare layers."""
    vocab_size: Optional[int] = None
    """With a model config whose data cannot be read: vocabulary size of the synthetic model."""
    num_classes: Optional[int] = None
    """With a model config whose data cannot be read: number of classes."""
    seed: Optional[int] = None
    """Seed for weights and synthetic batches."""


AXES = ("cells", "batch_size", "seq_len", "input_size", "hidden_size", "num_layers",
        "bidirectional", "mode", "lengths", "kernels", "dtype")

# How each field is spelled on the command line (error messages name what the user typed).
OPTION = {f.name: "--" + f.name.replace("_", "-") for f in fields(Grid)}
OPTION.update(batch_size="--batch", num_layers="--layers")

# The default grid, also written out in configs/bench.yaml: 3 cells x 2 batch sizes x 3 hidden
# sizes x 2 modes x 2 length schemes x 2 kernel paths = 144 rows, about 5 minutes on 2 CPU cores
# (most of it in the batch-128, hidden-512 rows). Small hidden sizes show per-step overhead,
# where the fused oneDNN LSTM gains most; large ones the matmuls, where 3 gates vs 4 shows.
DEFAULT = Grid(
    cells=CELLS, batch_size=(32, 128), seq_len=(100,), input_size=(128,), hidden_size=(64, 256, 512),
    num_layers=(1,), bidirectional=(False,), mode=MODES, lengths=("padded", "packed"),
    kernels=("default", "native"), dtype=("float32",), device="auto", threads=None, repeats=10, warmup=2,
    min_sample_ms=50.0, config=None, vocab_size=None, num_classes=None, seed=0,
)

# `--smoke`: every code path on tiny sizes, a few seconds in all. One thread: on a shared CI
# runner, a second OpenMP thread waiting for a busy core can make a 0.2 ms call take 50 ms.
SMOKE = replace(DEFAULT, batch_size=(4,), seq_len=(6,), input_size=(8,), hidden_size=(8,),
                threads=1, repeats=3, warmup=1, min_sample_ms=1.0)


def has_kernel(cell: str, kernels: str) -> bool:
    """Whether a row of this cell exists for this kernels value (`fused`, `compiled` only where the cell has one)."""
    return kernels in ("default", "native") or kernels in CELL_REGISTRY[cell].kernels


def model_kernel(kernels: str, configured: str, cell: str) -> str:
    """The `model.kernel` a row runs with: the config's own for `default` (if the row's cell has it)."""
    if kernels == "default":
        return configured if configured in CELL_REGISTRY[cell].kernels else "auto"
    return kernels


@dataclass(frozen=True)
class Spec:
    """One point of a grid: everything that identifies a report row, nothing measured."""

    workload: str        # "layer" or "model"
    cell: str            # gru | lstm | rnn
    mode: str            # infer | train
    lengths: str         # padded | packed | bucketed
    kernels: str         # default | native | fused | compiled: what was asked for (the row's `kernel` says what ran)
    device: str          # cpu | cuda
    dtype: str           # float32 | bfloat16 | float16 | float16-amp (model rows on CUDA with train.amp)
    batch_size: int
    seq_len: int         # T: the batch's longest sequence
    input_size: int      # embedding_dim for model rows
    hidden_size: int
    num_layers: int
    bidirectional: bool
    config: Optional[str] = None       # model rows: the config file
    vocab_size: Optional[int] = None   # model rows
    num_classes: Optional[int] = None  # model rows

    def key(self) -> dict:
        return asdict(self)


# --- checking single values -------------------------------------------------------


def _int(value: Any, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise UserError(f"{where}: {value!r} is not an integer") from None
        else:
            raise UserError(f"{where}: {value!r} is not an integer")
    if value < minimum:
        raise UserError(f"{where}: {value}: must be >= {minimum}" if minimum != 1 else f"{where}: {value}: must be > 0")
    return value


def _float(value: Any, where: str) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        number = None
    if number is None:
        raise UserError(f"{where}: {value!r} is not a number")
    if not number > 0:
        raise UserError(f"{where}: {value}: must be > 0")
    return number


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise UserError(f"{where}: {value!r} is not true or false")


def _choice(value: Any, where: str, choices: tuple[str, ...]) -> str:
    text = str(value).strip().lower()
    if text in choices:
        return text
    close = difflib.get_close_matches(text, choices, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise UserError(f"{where}: {value!r} is not one of {', '.join(choices)}{hint}")


_CHOICES = {"cells": CELLS, "mode": MODES, "lengths": LENGTHS, "kernels": KERNELS,
            "dtype": DTYPES, "device": DEVICES}


def _check_item(name: str, value: Any, where: str):
    if name in _CHOICES:
        return _choice(value, where, _CHOICES[name])
    if name == "bidirectional":
        return _bool(value, where)
    if name == "min_sample_ms":
        return _float(value, where)
    if name == "config":
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{where}: expected a path to a model config, got {value!r}")
        return value
    if name == "seed":
        seed = _int(value, where, minimum=0)
        if seed > SEED_MAX:
            raise UserError(f"{where}: {seed}: must be <= {SEED_MAX}, the largest seed torch.manual_seed accepts")
        return seed
    if name == "warmup":
        return _int(value, where, minimum=0)
    return _int(value, where)  # sizes, threads, repeats, vocab_size, num_classes


def check_value(name: str, value: Any, where: str):
    """One field's value, checked: a tuple (without duplicates) for axes, a scalar otherwise."""
    if name not in AXES:
        if isinstance(value, (list, tuple)):
            raise UserError(f"{where}: expected a single value, got a list")
        return _check_item(name, value, where)
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items:
        raise UserError(f"{where}: empty list; give at least one value")
    checked = [_check_item(name, v, where) for v in items]
    return tuple(dict.fromkeys(checked))  # keep the order, drop repeats


def parse_list(text: Optional[str], name: str) -> Optional[tuple]:
    """A comma-separated command-line list (`--hidden-size 64,256`), checked; None when not given."""
    if text is None:
        return None
    where = OPTION[name]
    items = [part.strip() for part in text.split(",")]
    if not any(items):
        raise UserError(f"{where}: empty list; give at least one value, e.g. {where} {_example(name)}")
    if "" in items:
        raise UserError(f"{where}: empty item in {text!r}; separate values with single commas")
    return check_value(name, items, where)


def _example(name: str) -> str:
    return {"cells": "gru,lstm", "mode": "infer,train", "lengths": "padded,packed", "kernels": "native,fused",
            "dtype": "float32"}.get(name, "64,256")


def from_options(**options: Any) -> Grid:
    """A grid from command-line values (strings for lists, already-typed scalars); None = not given."""
    values = {}
    for name, value in options.items():
        if value is None:
            continue
        if name in AXES and isinstance(value, str):
            values[name] = parse_list(value, name)
        else:
            values[name] = check_value(name, value, OPTION[name])
    return Grid(**values)


# --- YAML grid files --------------------------------------------------------------


def _key_lines(text: str) -> dict[str, Place]:
    return {path[0]: line for path, line in yaml_lines(text).items() if len(path) == 1}


def load_grid(path: str | Path) -> Grid:
    """Read and check a YAML grid file (see configs/bench.yaml); unknown keys are errors."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: grid file not found")
    try:
        data = path.read_bytes()
        text = data.decode("utf-8")
        raw = yaml.safe_load(text)
        lines = _key_lines(text)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}:{place_of(data, e.start)}: not UTF-8 text (byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f":{Place.of(mark)}" if mark else ""
        raise UserError(f"{path}{at}: YAML syntax error: {getattr(e, 'problem', None) or e}") from None
    if raw is None:
        return Grid()
    if not isinstance(raw, dict):
        raise UserError(f"{path}: the top level must be a mapping of grid keys (see configs/bench.yaml)")
    if {"data", "model", "train"} & set(raw):
        raise UserError(f"{path}: this is a model config, not a bench grid; "
                        f"time its model with: grutool bench --config {path}")
    names = [f.name for f in fields(Grid)]
    values = {}
    for key, value in raw.items():
        where = f"{path}:{lines.get(str(key), '?')}: {key}"
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else f"; expected one of: {', '.join(names)}"
            raise UserError(f"{where}: unknown key{hint}")
        if value is None:
            continue
        values[key] = check_value(key, value, where)
    if "config" in values and not Path(values["config"]).is_absolute():
        # A config named in a grid file is found next to it, or else from the working directory.
        beside = path.parent / values["config"]
        if beside.is_file() and not Path(values["config"]).is_file():
            values["config"] = str(beside)
    return Grid(**values)


# --- combining --------------------------------------------------------------------


def merge(*grids: Grid) -> Grid:
    """Later grids win, field by field, where they give a value."""
    out = Grid()
    for g in grids:
        out = replace(out, **{f.name: getattr(g, f.name) for f in fields(Grid) if getattr(g, f.name) is not None})
    return out


def resolve(grid: Grid, smoke: bool = False) -> Grid:
    """A layer grid with every field filled: the given values over the defaults (or the smoke grid)."""
    return merge(SMOKE if smoke else DEFAULT, grid)

