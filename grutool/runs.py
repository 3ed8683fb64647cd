"""Run directories as a list and side by side (`grutool runs`, `grutool compare`).

Read from what `train` leaves (config.yaml, metrics.jsonl, summary.json, last.pt, the lock), never
from the weights: no torch. A run's status:

    finished     summary.json written (the run ended: all epochs, early stopping or max_steps)
    diverged     finished, but training stopped on non-finite values (summary.json's `diverged`)
    pruned       finished early: `grutool tune`'s pruner stopped the trial (summary.json's `pruned_at`)
    running      a training holds the run's lock now
    interrupted  last.pt but no summary.json: Ctrl-C or a kill; `train ... --resume` continues it
    failed       no checkpoint at all: it stopped before its first epoch ended
    unreadable   its folder cannot be listed, or config.yaml, summary.json or metrics.jsonl cannot be read
                 (another user's run, say), or config.yaml or summary.json is damaged (not YAML, not JSON): what
                 a status would be read from is not known (`reason` says why).
                 A folder that cannot be listed is listed only when it is known to be a run, or cannot be
                 told apart from one (the reason then says so)
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

import yaml

from grutool import jsonsafe, rundir
from grutool.config import MINIMIZED_METRICS
from grutool.errors import UserError

MAX_DEPTH = 4  # studies/<study>/runs/<run> and tuning/<tune>/trials/<trial> from the project folder; deeper
# trees are named directly


def find_runs(root: str | Path) -> list[Path]:
    """Run directories (holding config.yaml) at or under `root`, symbolic links to them included, sorted by path."""
    root = Path(root)
    if not root.is_dir():
        what = "a file, not a directory" if root.exists() else "directory not found"
        raise UserError(f"{root}: {what}; give the folder your runs are in (default: runs)")
    found: list[Path] = []
    closed: dict[Path, OSError] = {}  # folders under root that cannot be listed, and why

    def cannot_list(error: OSError) -> None:
        if error.filename is not None:
            closed[Path(error.filename)] = error

    for here, dirs, files in os.walk(root, onerror=cannot_list, followlinks=True):  # a linked run too
        depth = len(Path(here).relative_to(root).parts)
        if _holds_run(files.__contains__, depth == 0):
            found.append(Path(here))
            dirs.clear()  # a run's own folders are not runs
        elif depth >= MAX_DEPTH:
            dirs.clear()
        # A link back to a folder above (runs/all -> runs) would list every run again under its name.
        real = Path(os.path.realpath(here))
        dirs[:] = sorted(d for d in dirs if Path(os.path.realpath(Path(here) / d)) not in (real, *real.parents))
    if root in closed:
        why = closed[root].strerror or type(closed[root]).__name__
        raise UserError(f"{root}: cannot list the folder ({why}); check its permissions")
    # A folder that cannot be listed is a run only when its marker (or an older run's files) is found by name;
    # one known not to be (a user's folder, a group of runs) is left out; one that cannot be told stays listed.
    return sorted(found + [p for p in closed if closed_is_run(p) is not False])


def _holds_run(has, top: bool) -> bool:
    """Whether a folder whose file names `has` answers holds a run: its marker, or (runs of earlier versions)
    config.yaml beside what training writes next (config.yaml alone at the top: the folder named is the run)."""
    return has(rundir.MARKER) or (has(rundir.CONFIG) and (
        top or any(has(name) for name in (rundir.METRICS, rundir.LAST, rundir.BEST, rundir.SUMMARY))))


def closed_is_run(path: Path) -> Optional[bool]:
    """Whether folder `path`, which cannot be listed, is a run, from the names `_holds_run` asks for, looked up
    one by one (a folder with search but no read permission, `chmod 711`, answers that); None when that too is
    refused (`chmod 700` of another user's): it cannot be told."""
    def has(name: str) -> bool:
        try:
            os.stat(path / name)
        except FileNotFoundError:
            return False
        return True

    try:
        return _holds_run(has, False)
    except OSError:
        return None


def unreadable(path: str | Path) -> Optional[str]:
    """Why run directory `path` cannot be read (`the folder: Permission denied`, `summary.json: not JSON (line 1,
    column 2)`): its folder cannot be listed, or one of the files its status and figures come from is there but
    cannot be opened (`closed`) or is damaged (`damaged`); None when it can. Those files' readers take such a file
    for a missing one, which misstated the run (`interrupted`, task `?`) or, for a folder, left it out."""
    return closed(path) or damaged(path)


def closed(path: str | Path) -> Optional[str]:
    """Why run directory `path`, or one of its config.yaml, summary.json and metrics.jsonl, cannot be opened
    (`the folder: Permission denied`); None when they can."""
    path = Path(path)
    try:
        names = set(os.listdir(path))
    except OSError as e:
        return f"the folder: {e.strerror or type(e).__name__}"
    for name in (rundir.CONFIG, rundir.SUMMARY, rundir.METRICS):
        if name in names:
            try:
                with open(path / name, "rb"):
                    pass
            except OSError as e:
                return f"{name}: {e.strerror or type(e).__name__}"
    return None


def damaged(path: str | Path) -> Optional[str]:
    """What is wrong with run `path`'s config.yaml, summary.json or metrics.jsonl where one is there but is not
    what training writes (`summary.json: not JSON (line 1, column 2)`, `config.yaml: not a mapping of settings`,
    `metrics.jsonl: line 3 is not JSON`); None when none is. The first two are written atomically, so a damaged
    one was cut or edited afterwards: a damaged summary.json listed the finished run as `interrupted`, a damaged
    config.yaml as task `?`, every setting null in `compare`. metrics.jsonl's last line, cut by a kill mid-write,
    is no damage (`parse_metrics`)."""
    path = Path(path)
    # A damaged metrics.jsonl line matters only where the figures come from it: a finished run's summary.json
    # holds its status and best figures (a bad line there left the run `?`, and compare refused it)
    if not (path / rundir.SUMMARY).is_file():
        try:
            text = (path / rundir.METRICS).read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            pass
        except OSError as e:
            return f"{rundir.METRICS}: {e.strerror or type(e).__name__}"
        else:
            bad = parse_metrics(text)[1]
            if bad is not None:
                return f"{rundir.METRICS}: line {bad} is not JSON"
    try:
        text = (path / rundir.CONFIG).read_text(encoding="utf-8")
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as e:  # ValueError: not UTF-8
        return f"{rundir.CONFIG}: {getattr(e, 'strerror', None) or 'not UTF-8 text'}"
    else:
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            return f"{rundir.CONFIG}: not YAML" + (f" (line {mark.line + 1})" if mark is not None else "")
        if not isinstance(raw, dict):
            return f"{rundir.CONFIG}: not a mapping of settings"
    try:
        text = (path / rundir.SUMMARY).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        return f"{rundir.SUMMARY}: {getattr(e, 'strerror', None) or 'not UTF-8 text'}"
    try:
        summary = json.loads(text)
    except ValueError as e:
        return f"{rundir.SUMMARY}: not JSON" + (f" (line {e.lineno}, column {e.colno})" if hasattr(e, "lineno") else "")
    if not isinstance(summary, dict):
        return f"{rundir.SUMMARY}: not a JSON object"
    return None


def _read_json(path: Path) -> Optional[dict]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_metrics(path: str | Path) -> list[dict]:
    """metrics.jsonl's rows, one per epoch (a cut last line, a damaged line and foreign lines skipped: `damaged`
    says whether there is a damaged one)."""
    try:
        text = (Path(path) / rundir.METRICS).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return parse_metrics(text)[0]


def parse_metrics(text: str) -> tuple[list[dict], Optional[int], bool]:
    """metrics.jsonl's text as (its rows, one per epoch; the number of its first line that is not JSON, None when
    none is; whether its last line is cut short). A last line that is not JSON and has no line break is a row a
    kill or a full disk cut mid-write: left out, the rows before it read (training itself drops it on --resume).
    Any other line that is not JSON is damage; a JSON line that is no epoch row is skipped."""
    rows, bad = [], None
    lines = text.split("\n")  # the last item: what follows the last line break ("" for a whole last line)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if number == len(lines):
                return rows, bad, True
            bad = bad or number
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            rows.append(row)
    return rows, bad, False


def best_of(rows: list[dict], monitor: str) -> tuple[Optional[float], Optional[int]]:
    """The best validation `monitor` among metrics.jsonl's rows and its epoch, by training's own rule
    (`Trainer._end_epoch`): an epoch is the new best only when strictly better, so of tied epochs the first
    is, as in best.pt; a non-finite value never is. (None, None) when no row has the figure. `max((value,
    epoch))` gave a tie to the latest epoch: `compare` named an epoch best.pt does not hold, and `plot` put
    its star there."""
    key, minimized = f"val_{monitor}", monitor in MINIMIZED_METRICS
    best, best_epoch = None, None
    for row in rows:
        value = row.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            continue
        if best is None or (value < best if minimized else value > best):
            best, best_epoch = value, row["epoch"]
    return best, best_epoch


def read_config(path: str | Path) -> dict:
    """A run's saved config.yaml as a plain mapping (not validated: listing must work on any run)."""
    try:
        raw = yaml.safe_load((Path(path) / rundir.CONFIG).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return {}
    return raw if isinstance(raw, dict) else {}


def status(path: str | Path, summary: Optional[dict] = None) -> str:
    """finished, diverged, pruned, running, interrupted or failed (see the module docstring)."""
    path = Path(path)
    summary = summary if summary is not None else _read_json(path / rundir.SUMMARY)
    if rundir.is_locked(path):
        return "running"
    if summary is not None and "epochs" in summary:
        if summary.get("diverged"):
            return "diverged"
        return "pruned" if summary.get("pruned_at") is not None else "finished"
    return "interrupted" if (path / rundir.LAST).is_file() else "failed"


def describe(path: str | Path) -> dict:
    """One run as `grutool runs` lists it: task, monitored metric and its best value, epochs, time, status."""
    path = Path(path)
    reason = unreadable(path)
    if reason is not None:
        if closed_is_run(path) is None:  # listed by `runs` as it may be one: say that it may not be
            reason += "; cannot tell whether it is a run"
        return {"run": str(path), "task": "?", "monitor": None, "best": None, "best_epoch": None, "epochs": None,
                "max_epochs": None, "time_s": None, "status": "unreadable", "reason": reason}
    cfg = read_config(path)
    summary = _read_json(path / rundir.SUMMARY) or {}
    rows = read_metrics(path)
    monitor = summary.get("monitor") or (cfg.get("train") or {}).get("monitor")
    best, best_epoch = summary.get("best"), summary.get("best_epoch")
    if best is None and rows and monitor:
        best, best_epoch = best_of(rows, monitor)
    time_s = summary.get("wall_time_s")
    if time_s is None and rows:
        time_s = sum(r.get("epoch_time_s") or 0 for r in rows)
    cut = rundir.cut_epoch(summary)  # a last epoch that train.max_steps cut short
    return {"run": str(path), "task": cfg.get("task", "?"), "monitor": monitor, "best": best,
            "best_epoch": best_epoch, "epochs": summary.get("epochs", rows[-1]["epoch"] if rows else 0),
            "max_epochs": (cfg.get("train") or {}).get("epochs"), "partial_epoch": list(cut) if cut else None, "time_s": time_s,
            # training processes (`train --nproc`: each took train.batch_size examples a step); None until
            # summary.json says (a run still training, or stopped before it wrote one)
            "processes": summary.get("world_size", 1) if "epochs" in summary else None,
            "status": status(path, summary or None)}


def nouns(path: str | Path) -> dict[str, str]:
    """The run's `Task.nouns`, by which `runs` and `compare` label its figures (a numeric tagger's
    `token_accuracy` reads `step_accuracy`); {} (the keys' own words) when its config cannot be read."""
    from grutool.config_file import load_config
    from grutool.families import get_task

    try:
        cfg = load_config(Path(path) / rundir.CONFIG, saved=True)
        return get_task(cfg.task).nouns(cfg)
    except (UserError, ValueError, OSError):
        return {}


def list_runs(root: str | Path = "runs") -> list[dict]:
    return [describe(p) for p in find_runs(root)]


def flatten(tree: dict, prefix: str = "") -> dict:
    """A nested config dict as dotted paths: {"train.lr": 0.003, ...}."""
    flat = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _with_defaults(raw: dict) -> dict:
    """A saved config with the fields its grutool did not have yet at their defaults: a run trained before a
    field existed differs from a newer one only where a value does, not by the field's absence. (A setting its
    family never reads, which older versions accepted, is not compared at all: `compare`, `unread_fields`.)"""
    from grutool import config as schema

    sections = {"data": schema.DataConfig, "model": schema.ModelConfig, "train": schema.TrainConfig,
                "decoding": schema.DecodingConfig}
    out = dict(raw)
    for name, cls in sections.items():
        part = raw.get(name)
        if isinstance(part, dict):
            defaults = cls.model_validate({}).model_dump(mode="json")  # every field has a default
            out[name] = {**defaults, **{k: {**defaults[k], **v} if isinstance(v, dict) and isinstance(
                defaults.get(k), dict) else v for k, v in part.items()}}  # data.covariates: its own fields
    return out


def figure(value) -> str:
    """A figure as `runs`, `compare` and `study` show it (settings are `compare`'s `_setting`): counts with
    separators, floats to 4 significant digits, trailing zeros kept, scientific below 1e-3 (an lr of 3e-05 or an
    mse of 0.001234 never reads as 0.0000)."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0 or value != value or abs(value) == float("inf"):
        return str(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) < 1e-3:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{exponent}"
    return f"{value:#.4g}"  # trailing zeros kept: 0.9000 beside 0.8925, as `train` and `eval` print it; 1.000


def figure_pm(value: Optional[float], spread: Optional[float]) -> str:
    """`value ± spread` (a mean and its sd, a difference and its 95 % interval): the value as `figure` writes it,
    the spread to the same decimals (0.9865 ± 0.0027; 0.0008123 ± 0.0000412), or as `figure` where the value is
    written with an exponent or none."""
    if spread is None or value is None:
        return figure(value)
    return f"{figure(value)} ± {spread_figure(value, spread)}"


def spread_figure(value: float, spread: float) -> str:
    """`spread` to the decimals `figure` gives `value` (see `figure_pm`)."""
    shown = figure(value)
    if isinstance(value, float) and "e" not in shown and spread == spread and abs(spread) != float("inf"):
        return f"{spread:,.{len(shown.split('.')[1]) if '.' in shown else 0}f}"
    return figure(spread)


# Numbers of an eval result that restate a setting it was scored with (a forecast's horizon, input_length and season,
# a seq2seq run's beam_size: `compare`'s config block shows them where they differ) or repeat `n` (a forecast's
# windows): not figures of the model, so not among `compare`'s
NOT_FIGURES = frozenset({"windows", "horizon", "input_length", "season", "beam_size"})


def _figures(validation: dict) -> dict:
    """A run's validation numbers (less NOT_FIGURES), per-class F1 (by the run's label names) as `f1[label]`."""
    out = {k: v for k, v in validation.items()
           if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in NOT_FIGURES}
    for label, m in (validation.get("per_class") or {}).items():
        if isinstance(m, dict) and "f1" in m:
            out[f"f1[{label}]"] = m["f1"]
    return out


NOT_READ = {"not_read": True}  # compare's entry for a run whose family does not read the field; never a setting's
# value (a config's leaves are scalars and lists), so never taken for a setting of null


def runs_in(path: Path) -> list[Path]:
    """`path` itself, or, for a folder that holds runs but is none (a study's, a tune's, runs/), the runs under it."""
    if path.is_dir() and unreadable(path) is None and not (path / rundir.CONFIG).is_file():  # a closed one: below
        return find_runs(path) or [path]
    return [path]


def past_shared_folder(paths: list[Path]) -> tuple[Optional[Path], list[str]]:
    """The folder every path lies in (None when they share none, or only the root) and each path below it: how
    `runs`, `compare` and `plot` name runs (a study's runs by their own names, the study's folder said once)."""
    parts = [Path(p).parts for p in paths]
    depth = 0
    while depth < min(len(x) for x in parts) - 1 and len({x[depth] for x in parts}) == 1:
        depth += 1
    if depth == 0 or parts[0][:depth] == (Path(parts[0][0]).anchor,):
        return None, [str(p) for p in paths]
    return Path(*parts[0][:depth]), [str(Path(*x[depth:])) for x in parts]


def compare(paths: list[str | Path]) -> dict:
    """Configs side by side (only the fields that differ among the runs whose family reads them, `NOT_READ` for a
    run whose family does not; output_dir left out) and each run's figures."""
    paths = [run for p in map(Path, paths) for run in runs_in(p)]
    if len(paths) < 2:
        raise UserError("compare: give two run directories or more, or a folder holding them (a study's, say)")
    runs = []
    for p in paths:
        p = Path(p)
        if not p.exists():  # was `not a run directory (no config.yaml)`, as if a folder were there
            raise UserError(f"{p}: does not exist; list runs with `grutool runs`")
        if not p.is_dir():
            raise UserError(f"{p}: is a file, not a run directory; give the directory `grutool train` wrote")
        reason = closed(p)
        if reason is not None:
            raise UserError(f"{p}: cannot read the run ({reason}); check its permissions, or leave it out")
        reason = damaged(p)
        if reason is not None:
            raise UserError(f"{p}: cannot read the run ({reason}); restore the file as training wrote it, or leave "
                            f"the run out")
        if not (p / rundir.CONFIG).is_file():
            raise UserError(f"{p}: not a run directory (no {rundir.CONFIG}); list runs with `grutool runs`")
        runs.append(p)
    from grutool.config_file import unread_fields

    full = [_with_defaults(read_config(p)) for p in runs]
    configs = [flatten(c) for c in full]
    unread = [unread_fields(c) for c in full]

    def read(i: int, key: str) -> bool:  # whether run i's family reads the field (data.horizon: a forecaster's)
        return not any(key == u or key.startswith(u + ".") for u in unread[i])

    # A field is compared among the runs whose family reads it; a run that does not read it says so (NOT_READ).
    keys = sorted(set().union(*configs) - {"output_dir"})
    differs = {}
    for k in keys:
        readers = [i for i in range(len(runs)) if read(i, k)]
        if len({jsonsafe.dumps(configs[i].get(k)) for i in readers}) > 1:
            differs[k] = [c.get(k) if i in readers else dict(NOT_READ) for i, c in enumerate(configs)]
    described = [describe(p) for p in runs]
    figures = [_figures(_best_validation(p, d)) for p, d in zip(runs, described)]
    metric_names: list[str] = []
    for f in figures:
        metric_names += [k for k in f if k not in metric_names]
    metrics = {k: [f.get(k) for f in figures] for k in metric_names}
    return {"runs": [str(p) for p in runs], "config": differs, "validation": metrics,
            "summary": described}


def _best_validation(path: Path, described: dict) -> dict:
    """A run's validation figures at its best epoch: summary.json's; a run still training or interrupted has
    none yet, so its best epoch's row of metrics.jsonl (the `val_` figures; per-class F1 is in summary.json only).
    `compare` showed such a run's best epoch beside '-' for every figure."""
    validation = (_read_json(path / rundir.SUMMARY) or {}).get("validation")
    if validation:
        return validation
    row = next((r for r in read_metrics(path) if r["epoch"] == described["best_epoch"]), {})
    return {k[len("val_"):]: v for k, v in row.items() if k.startswith("val_")}
