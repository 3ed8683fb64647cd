"""`grutool tune`: search a config's settings with Optuna; every trial a normal run directory.

Why Optuna: a small, well-kept library that already has what this needs and nothing heavier — TPE, random
and grid samplers, median and Hyperband pruners fed one value per epoch, a `timeout`, and storage in SQLite
(or any RDB URL) that makes a search resumable and lets several processes or machines share it. Ray Tune
(Ludwig's choice) brings a cluster scheduler; hyperopt (flair's) has no pruning or storage of its own.
Optuna is an optional extra (`pip install 'grutool[tune]'`), imported only when a tune runs.

    TUNE/tune.json              what the search is: config, --set overrides, the space, seeds per trial
    TUNE/optuna.db              the Optuna storage (SQLite) unless --storage names another
    TUNE/trials/<NNNN>-seed<S>/ one run directory per trial and seed (`grutool runs TUNE` lists them)
    TUNE/trials.jsonl           one line per finished trial: number, state, params, value, seconds, runs
    TUNE/best.yaml              the full config with the best trial's params, ready for `grutool train`
    TUNE/tune.png               `--plot`: the optimisation history and the parameter importances

The space file maps dotted config paths to one entry each, checked against the config schema before the
first trial (an unknown path with a did-you-mean, a field the config's family has no setting for, an empty or
inverted range, a value the schema refuses; train.monitor, the objective, and what tune sets itself: OWNED):

    train.lr: {float: [1.0e-4, 1.0e-2], log: true}
    model.hidden_size: {int: [32, 256], step: 32}
    model.dropout: {float: [0.0, 0.5]}
    model.cell: {categorical: [gru, lstm]}

The objective is the config's `train.monitor` on validation (never test), its direction from the metric
(`MINIMIZED_METRICS`): the run's best epoch, averaged over the trial's seeds. The pruner sees every epoch
through the training loop's `Pruning` callback and stops a trial that falls behind; that run ends as an
early-stopped one (its files complete), its summary.json says `pruned_at` (`grutool runs`: pruned) and the trial
is recorded as pruned.

Resuming: the same command with `--resume` continues the study in its storage (another --set, space or --seeds
is refused: `_check_same_search`). Several processes (in more
terminals, or on more machines with an RDB `--storage`) share one study by running the same command with
`--resume`: each takes the next trial, and together they stop at `--trials` (a trial or so more when several
finish at once). SQLite serves a few processes on one machine; for more, an RDB URL. A trial left running by a
process of this machine that is gone (a kill), or stopped by Ctrl-C, is marked failed and its parameters run
again in a new trial that continues the old run directories from their last.pt.

`--jobs N`: N trials at once on this machine, each trained in its own process (`python -m grutool.tune`; torch
training is CPU-bound, so threads would share one interpreter) with `--threads` ÷ N threads (grutool.jobs, the
rule of `study --jobs`). This process asks and tells (Optuna's `n_jobs` threads, each waiting on one trial
process), so `--trials`, `--timeout`, the sampler (TPE with its constant liar) and the trial lines stay here;
the trial processes read their values from the storage and report their epochs to the pruner through it. The
SQLite file is opened with a 60 s busy timeout and write-locking transactions (`open_storage`), so processes
wait for its lock rather than fail, and never take one enqueued trial twice.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import logging
import math
import os
import socket
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from grutool import jsonsafe
from grutool.atomic import check_output_folder, make_folder, write_text_atomic
from grutool.config import MINIMIZED_METRICS, Config
from grutool.config_file import yaml_value  # a value as a space file writes it: true, null, 1.0e-05
from grutool.errors import UserError, install
from grutool.jobs import child_env, in_process_threads, stop_when_orphaned, thread_share

log = logging.getLogger("grutool")

PLAN, DB, TRIALS, TRIALS_DIR, BEST, PLOT = "tune.json", "optuna.db", "trials.jsonl", "trials", "best.yaml", "tune.png"
SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
KINDS = ("int", "float", "categorical")
OWNED = {"train.seed": "tune sets it (train.seed, +1, ... for --seeds N)",
         "output_dir": "tune sets it (a run directory per trial under DIR/trials/)",
         # Every trial's value is its train.monitor: trials searching it would rank an mae against an rmse.
         "train.monitor": "the objective, one for the whole search (trials scored on different metrics "
                          "cannot be ranked); set it in the config or with --set"}


@dataclasses.dataclass
class Param:
    path: str                         # dotted config path, e.g. train.lr
    kind: str                         # int, float or categorical
    low: Any = None
    high: Any = None
    step: Any = None
    log: bool = False
    choices: Optional[list] = None
    line: Optional[str] = None        # `line:column` of its key in the space file, for errors found later (the grid's)

    def values(self) -> list:
        """The values to check against the schema: both ends of a range, or every choice."""
        return list(self.choices) if self.kind == "categorical" else [self.low, self.high]

    def grid(self, where: str) -> list:
        if self.kind == "categorical":
            return list(self.choices)
        if self.step is None:
            if self.kind == "int":
                return list(range(self.low, self.high + 1))
            where = f"{where}:{self.line}" if self.line else where
            raise UserError(f"{where}: {self.path}: grid needs a finite set of values; give this float range a "
                            f"step, or choices (categorical)")
        n = int(math.floor((self.high - self.low) / self.step + 1e-9))
        return [round(self.low + i * self.step, 12) for i in range(n + 1)]  # 0.30000000000000004 as 0.3

    def suggest(self, trial):
        if self.kind == "categorical":
            return trial.suggest_categorical(self.path, self.choices)
        if self.kind == "int":
            return trial.suggest_int(self.path, self.low, self.high, step=self.step or 1, log=self.log)
        return trial.suggest_float(self.path, self.low, self.high, step=self.step, log=self.log)

    def contains(self, value) -> bool:
        """Whether `value` is a point of this entry (a choice, or inside the range and on its step)."""
        if self.kind == "categorical":
            return any(value == c and type(value) is type(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not self.low <= value <= self.high:
            return False
        if self.kind == "int" and value != int(value):
            return False
        if self.step:
            k = (value - self.low) / self.step
            return abs(k - round(k)) < 1e-9
        return True


def config_paths(model=None, prefix: str = "") -> list[str]:
    """Every leaf field of the config schema as a dotted path."""
    from pydantic import BaseModel

    model = model or Config
    paths = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            paths += config_paths(ann, f"{prefix}{name}.")
        else:
            paths.append(f"{prefix}{name}")
    return paths


def _number(value, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind == "int" else isinstance(value, (int, float)) and math.isfinite(value)


def parse_space(raw: Any, source: str, lines: dict) -> list[Param]:
    """A space file's mapping to Params; every mistake one UserError naming file:line:column and the dotted path."""
    if not isinstance(raw, dict) or not raw:
        raise UserError(f"{source}: a space file maps dotted config paths to entries, e.g. "
                        f"`train.lr: {{float: [1.0e-4, 1.0e-2], log: true}}`")
    known = config_paths()
    params = []
    for path, entry in raw.items():
        line = str(lines[(str(path),)]) if (str(path),) in lines else None  # `line:column`
        where = f"{source}:{line or '?'}"
        path = str(path)
        inside = [k for k in known if k.startswith(f"{path}.")]
        if inside:  # `model:` or `data.covariates:`, a section: its fields are searched one by one
            raise UserError(f"{where}: {path}: a section of the config, not a field; give each of its fields to "
                            f"search, e.g. {inside[0]}")
        if path not in known:
            close = difflib.get_close_matches(path, known, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else "give a field as `grutool train --print-config` shows it"
            raise UserError(f"{where}: {path}: not a config field; {hint}")
        if path in OWNED:
            raise UserError(f"{where}: {path}: {OWNED[path]}; remove it from the space")
        if not isinstance(entry, dict):
            raise UserError(f"{where}: {path}: give one entry, e.g. {{float: [0.0, 0.5]}}, {{int: [32, 256], "
                            f"step: 32}} or {{categorical: [gru, lstm]}}")
        kinds = [k for k in KINDS if k in entry]
        extra = sorted(set(map(str, entry)) - set(KINDS) - {"log", "step"})
        if len(kinds) != 1 or extra:
            what = f"unknown key '{extra[0]}'" if extra else "needs exactly one of int, float, categorical"
            raise UserError(f"{where}: {path}: {what}; an entry is {{int|float: [low, high], log: bool, "
                            f"step: number}} or {{categorical: [value, ...]}}")
        kind = kinds[0]
        value = entry[kind]
        if kind == "categorical":
            if not isinstance(value, list) or not value:
                raise UserError(f"{where}: {path}: categorical needs a non-empty list of values")
            odd = next((v for v in value if not isinstance(v, (str, int, float, bool, type(None)))), None)
            if odd is not None:
                raise UserError(f"{where}: {path}: a categorical value is a string, number, true/false or null "
                                f"(got {yaml_value(odd)})")
            if "log" in entry or "step" in entry:
                raise UserError(f"{where}: {path}: log and step are for int and float ranges; remove them")
            params.append(Param(path, kind, choices=value, line=line))
            continue
        if not (isinstance(value, list) and len(value) == 2 and all(_number(v, kind) for v in value)):
            raise UserError(f"{where}: {path}: {kind} needs [low, high], two {kind} numbers (got {yaml_value(value)})")
        low, high = value
        if low > high:
            raise UserError(f"{where}: {path}: inverted range [{low}, {high}]; write [{high}, {low}]")
        if low == high:
            raise UserError(f"{where}: {path}: empty range [{low}, {high}]; widen it, or fix the value with --set "
                            f"{path}={low}")
        log_scale = entry.get("log", False)
        if not isinstance(log_scale, bool):
            raise UserError(f"{where}: {path}: log is true or false (got {yaml_value(log_scale)})")
        if log_scale and low <= 0:
            raise UserError(f"{where}: {path}: a log range must be above 0 (got low {low})")
        step = entry.get("step")
        if step is not None:
            if not _number(step, kind) or step <= 0 or step > high - low:
                raise UserError(f"{where}: {path}: step must be {'an int' if kind == 'int' else 'a float'} in "
                                f"(0, {high - low}] (got {yaml_value(step)})")
            if log_scale:
                raise UserError(f"{where}: {path}: step and log do not go together; remove one")
        params.append(Param(path, kind, low, high, step, log_scale, line=line))
    return params


def config_values(cfg, params: list[Param]) -> dict:
    """The config's own value at each entry's dotted path."""
    values = {}
    for p in params:
        node = cfg
        for part in p.path.split("."):
            node = getattr(node, part)
        values[p.path] = getattr(node, "value", node) if isinstance(node, enum.Enum) else node
    return values


def pinned_monitor(monitor: str) -> tuple[str, str]:
    """The `--set` every trial (and best.yaml) gets: the search's one metric, whatever the trial's data settings
    would default it to; said as the search's where a trial's values rule it out."""
    return f"train.monitor={monitor}", f"the search's train.monitor={monitor}"


def _override(path: str, value) -> str:
    return f"{path}={jsonsafe.dumps(value)}"  # JSON is YAML: strings stay strings, numbers numbers


def load_space(space: str | Path, config: str | Path, overrides: Sequence[str] = ()) -> list[Param]:
    """Read and check a space file against `config`: every range end and every choice must be a value the
    config (schema and task rules, with `overrides`) accepts; refused before the first trial."""
    from grutool.config_file import load_config, read_yaml

    from grutool.families import get_task

    raw, lines = read_yaml(Path(space), "search space")
    params = parse_space(raw, str(space), lines)
    task = get_task(load_config(config, list(overrides)).task)
    for p in params:
        where = f"{space}:{lines.get((p.path,), '?')}"
        lacks = task.lacks(p.path)
        if lacks:  # said before any value: every value, the config's default too, would be refused for it
            raise UserError(f"{where}: {p.path}: task {task.name} has no such setting ({lacks}); remove it "
                            f"from the space")
        if p.path in task.scored:  # trials scored on different things cannot be ranked against each other
            raise UserError(f"{where}: {p.path}: it decides {task.scored[p.path]}, so trials with different values "
                            f"could not be ranked; remove it from the space (search each value with its own tune, "
                            f"`--set {p.path}=...`)")
        for value in p.values():
            try:
                load_config(config, list(overrides) + [_override(p.path, value)])
            except UserError as exc:
                reason = str(exc)
                reason = reason.split(": ", 1)[1] if reason.startswith("--set ") else reason
                raise UserError(f"{where}: {p.path}: the config refuses {yaml_value(value)} ({reason}); change the "
                                f"space") from None
    return params


# --- the search ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrialRecord:
    number: int
    state: str                # complete, pruned, fail, running
    params: dict
    value: Optional[float]
    seconds: Optional[float]
    runs: list
    error: Optional[str] = None
    baseline: bool = False    # the config's own values (the first trial of a new study)


def _optuna():
    try:
        import optuna
    except ImportError:
        raise UserError(f"tune needs Optuna, an optional extra: {install('tune')}") from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # grutool prints its own line per trial
    return optuna


def make_sampler(name: str, params: list[Param], seed: int, where: str, parallel: bool = False):
    """`parallel`: trials run at once (--jobs); TPE then counts the running ones as bad (its constant liar, which
    Optuna recommends for parallel runs), so trials started together do not all propose the same point."""
    optuna = _optuna()
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constant_liar=parallel)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "grid":
        return optuna.samplers.GridSampler({p.path: p.grid(where) for p in params}, seed=seed)
    raise UserError(f"sampler: '{name}' is not one of {', '.join(SAMPLERS)}", option="sampler")


def make_pruner(name, max_resource: int, prune_after: int = 1):
    """The pruner called `name`, which lets every trial report `prune_after` epochs before it may stop it (the
    epochs are the steps it reports: 1, 2, ... and, with --seeds, on through the next seed's runs)."""
    optuna = _optuna()
    if not isinstance(name, str):
        return name  # an Optuna pruner object (tests force pruning with a ThresholdPruner)
    if prune_after < 1:
        raise UserError(f"prune-after: must be at least 1 epoch (got {prune_after})", option="prune-after")
    if name == "median":
        # A trial stops when an epoch's value is worse than the median of earlier trials at that epoch, from
        # the third trial on (Optuna's default, 5 trials, suits longer searches) and from epoch `prune_after`.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=prune_after)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=prune_after,
                                              max_resource=max(max_resource, prune_after))
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UserError(f"pruner: '{name}' is not one of {', '.join(PRUNERS)}", option="pruner")


SQLITE_TIMEOUT = 60.0  # seconds a process waits for the SQLite file's write lock before "database is locked"


def open_storage(url: str):
    """Optuna's storage for `url`; for SQLite, one that processes (--jobs, or more terminals with --resume)
    and threads can share:

    - a busy timeout: a process waits for the file's lock, held for milliseconds per write, instead of failing
      with "database is locked" (SQLite's own default wait is 5 s);
    - every transaction `BEGIN IMMEDIATE` (SQLAlchemy's recipe for pysqlite): SQLite has no SELECT ... FOR
      UPDATE, so without it two askers can both read an enqueued trial as waiting and both run it (the second
      then fails with "Cannot tell a COMPLETE trial"); Optuna's FAQ counts this among SQLite's limits."""
    optuna = _optuna()
    if not url.startswith("sqlite:"):
        return url
    from sqlalchemy import event

    # isolation_level None: pysqlite emits no BEGIN of its own, the listener below does
    storage = optuna.storages.RDBStorage(url, engine_kwargs={
        "connect_args": {"timeout": SQLITE_TIMEOUT, "isolation_level": None}})

    @event.listens_for(storage.engine, "begin")
    def _write_lock_first(conn) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    storage.engine.dispose()  # connections opened before the listener (schema checks) are not reused
    return storage


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(trial, continued: set) -> bool:
    """A trial of this machine whose process is gone (killed), or one stopped by Ctrl-C, that no later trial
    continues yet (`continued`: the numbers later trials continue)."""
    optuna = _optuna()
    attrs = trial.user_attrs
    if trial.number in continued:
        return False
    if trial.state == optuna.trial.TrialState.FAIL:
        return bool(attrs.get("interrupted"))
    return (trial.state == optuna.trial.TrialState.RUNNING and attrs.get("host") == socket.gethostname()
            and isinstance(attrs.get("pid"), int) and attrs["pid"] != os.getpid() and not _alive(attrs["pid"]))


def record(trial) -> TrialRecord:
    start, end = trial.datetime_start, trial.datetime_complete
    return TrialRecord(trial.number, trial.state.name.lower(), dict(trial.params), trial.value,
                       (end - start).total_seconds() if start and end else None,
                       list(trial.user_attrs.get("runs", [])), trial.user_attrs.get("error") or _stopped(trial),
                       bool(trial.user_attrs.get("baseline")))


def _stopped(trial) -> Optional[str]:
    """Why a failed trial without an error failed: Ctrl-C, or a process that is gone (its runs continue)."""
    if trial.state.name != "FAIL":
        return None
    how = "interrupted (Ctrl-C)" if trial.user_attrs.get("interrupted") else "its process stopped (a kill)"
    return f"{how}; its parameters run again in a later trial (--resume) that continues its runs"


def tune(config: str | Path, space: str | Path, trials: int, overrides: Sequence[str] = (),
         tune_dir: Optional[str | Path] = None, *, sampler: str = "tpe", pruner: Any = "median",
         seeds: int = 1, timeout: Optional[float] = None, storage: Optional[str] = None,
         study_name: Optional[str] = None, resume: bool = False, progress: bool | str = False,
         callbacks: Sequence = (), on_trial: Optional[Callable[[TrialRecord, Optional[TrialRecord]], None]] = None,
         jobs: int = 1, threads: Optional[int] = None, baseline: bool = True, prune_after: int = 1) -> dict:
    """Run `trials` trials in all (completed and pruned ones of a resumed study count) within `timeout` seconds;
    returns {"best": TrialRecord as a dict, "trials": [...], "best_yaml": path, "storage": url}.

    `on_trial(record, best)` is called after each trial (the CLI prints a line). `jobs` > 1 trains that many
    trials at once, each in its own process with `threads // jobs` threads (`threads`: the budget, default
    every core; the rule of `grutool study --jobs`, grutool.jobs); see `_in_processes`. `baseline`: a new study's
    first trial runs the config's own values when they all lie inside the space (not with the grid sampler).
    `prune_after`: epochs a trial trains before the pruner may stop it (a cosine schedule's early epochs
    rank settings by their learning rate more than by where they end)."""
    from grutool.config_file import load_config

    if trials < 1:
        raise UserError(f"trials: must be at least 1 (got {trials})", option="trials")
    if seeds < 1:
        raise UserError(f"seeds: must be at least 1 (got {seeds})", option="seeds")
    if any(item.partition("=")[0].strip() == "output_dir" for item in overrides):  # trials would not go there
        raise UserError(f"set: output_dir: {OWNED['output_dir']}; choose the tune directory with --output-dir",
                        option="set")
    base = load_config(config, list(overrides))
    per_trial = thread_share(jobs, threads, base.train.num_threads, unit="trials")
    if jobs > 1 and not isinstance(pruner, str):
        raise UserError(f"pruner: with jobs > 1 give the pruner by name ({', '.join(PRUNERS)}): each trial's "
                        f"process builds its own", option="pruner")
    if jobs > 1 and callbacks:
        raise UserError("callbacks: training callbacks run in the trial's process, so only with jobs 1",
                        option="callbacks")
    if base.data.validation is None and base.data.dataset is None:
        raise UserError(f"{config}: data.validation is not set; tune scores trials on validation (never test), "
                        f"so give the config a validation split")
    # Every trial is scored on the base config's monitor: one left out is the family's default, which may depend on
    # a data setting the space varies (seq2seq: exact_match on characters, bleu on words), and the trials would be
    # ranked on two metrics. Pinned, a value that rules the monitor out is refused before the first trial.
    params = load_space(space, config, [*overrides, pinned_monitor(base.train.monitor)])
    tune_dir = Path(tune_dir) if tune_dir is not None else Path("tuning") / Path(config).stem
    # optuna.db alone: a tune stopped before it wrote its tune.json
    check_output_folder(tune_dir, "--output-dir", own=(PLAN, DB), what="tune")
    optuna = _optuna()
    the_sampler = make_sampler(sampler, params, base.train.seed, str(space), parallel=jobs > 1)
    if isinstance(pruner, str) and pruner != "none" and prune_after > base.train.epochs * seeds:
        raise UserError(f"prune-after: {prune_after} epochs is more than a trial trains "
                        f"({base.train.epochs * seeds}: train.epochs x --seeds); nothing could be pruned, "
                        f"use --pruner none", option="prune-after")
    the_pruner = make_pruner(pruner, base.train.epochs * seeds, prune_after)
    monitor = base.train.monitor
    direction = "minimize" if monitor in MINIMIZED_METRICS else "maximize"
    plan_path = tune_dir / PLAN
    if plan_path.is_file() and not resume:
        raise UserError(f"{tune_dir}: a tune is already there; add --resume to continue it, or choose another "
                        f"--output-dir")
    if plan_path.is_file():
        _check_same_search(plan_path, overrides, params, seeds, base)
    if not plan_path.is_file():  # a new tune: a missing data file is one error, not a failed trial each
        from grutool.training.startup import read_data

        read_data(base)
        if resume and storage is None and not (tune_dir / DB).exists():  # a mistyped -o, say: said, not silent
            log.warning("%s: no tune there to resume; starting a new one", tune_dir)
    make_folder(tune_dir, "--output-dir")
    url = storage or f"sqlite:///{(tune_dir / DB).resolve()}"
    known = storage is not None or (tune_dir / DB).exists()  # before opening: that creates the file
    store = open_storage(url)
    name = study_name or Path(config).stem
    existing = [s.study_name for s in optuna.study.get_all_study_summaries(store)] if known else []
    if name in existing and not resume:
        raise UserError(f"{url}: holds a study '{name}' already; add --resume to continue it, or --study-name NEW")
    study = optuna.create_study(storage=store, study_name=name, sampler=the_sampler, pruner=the_pruner,
                                direction=direction, load_if_exists=True)
    earlier = len(study.get_trials(deepcopy=False))
    if earlier:  # resumed or shared: a sampler seeded as before proposes the same points again, so does
        # one seeded alike in another process sharing the study (its pid tells them apart)
        study.sampler = make_sampler(sampler, params, (base.train.seed + earlier * 7919 + os.getpid()) % 2**32,
                                     str(space), parallel=jobs > 1)
    if study.direction.name.lower() != direction:
        raise UserError(f"{url}: study '{name}' was created to {study.direction.name.lower()}, but "
                        f"train.monitor {monitor} should {direction}; use another --study-name")
    write_text_atomic(jsonsafe.dumps({"config": str(config), "overrides": list(overrides), "space": str(space),
                                      "params": [dataclasses.asdict(p) for p in params], "seeds": seeds,
                                      "monitor": monitor, "direction": direction, "storage": url,
                                      "study_name": name, "sampler": sampler,
                                      "pruner": pruner if isinstance(pruner, str) else None,
                                      "prune_after": prune_after}, indent=2), plan_path)
    everything = study.get_trials(deepcopy=False)
    continued = {t.user_attrs.get("continues") for t in everything}
    for old in everything:
        if _stale(old, continued):
            log.info("trial %d was interrupted; its parameters run again, continuing its runs", old.number)
            if old.state == optuna.trial.TrialState.RUNNING:
                study.tell(old.number, state=optuna.trial.TrialState.FAIL)
            carried = {"baseline": True} if old.user_attrs.get("baseline") else {}  # still the config as given
            study.enqueue_trial(old.params, user_attrs={"continues": old.number, **carried}, skip_if_exists=False)

    if baseline and sampler != "grid" and not everything:  # a new study only
        # The first trial is the config as given, so the best trial can only match or beat it on validation
        # and the sampler starts from a known point.
        own = config_values(base, params)
        outside = [f"{p.path}={yaml_value(own[p.path])}" for p in params if not p.contains(own[p.path])]
        if outside:
            log.warning("the config's own %s %s outside the space, so no trial runs the config as given",
                        ", ".join(outside), "is" if len(outside) == 1 else "are")
        else:
            study.enqueue_trial(own, user_attrs={"baseline": True}, skip_if_exists=False)

    seeds_list = list(range(base.train.seed, base.train.seed + seeds))
    objective = make_objective(config, overrides, params, seeds_list, tune_dir, monitor, progress, callbacks)
    lock = threading.Lock()  # with jobs > 1, Optuna's threads finish trials: one writes the files at a time

    def after(study, frozen) -> None:
        with lock:
            _write_outputs(study, tune_dir, config, overrides, seeds_list[0], monitor)
            if on_trial is not None:
                on_trial(record(frozen), _best(study))

    # Failed trials do not count: an interrupted one runs again, continued, in a new trial.
    done = sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    remaining = max(0, trials - done)
    from grutool.errors import TrainingDiverged, TrainingInterrupted, WorkerFailed

    if remaining:
        # MaxTrialsCallback counts the storage's trials, so processes sharing a study stop at `trials` in all.
        counted = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        stop_at = [after, optuna.study.MaxTrialsCallback(trials, states=counted)]
        try:
            if jobs == 1:
                with in_process_threads(jobs, threads):  # --threads without --jobs: this process's trials
                    study.optimize(objective, n_trials=remaining, timeout=timeout,
                                   catch=(UserError, TrainingDiverged), callbacks=stop_at)
            else:
                if sampler == "grid":  # the grid stops the search only once a trial ends, too late for trials
                    # started beside it (they would repeat a point): start no more than the points left
                    remaining = min(remaining, _grid_left(study, params, str(space)))
                _in_processes(study, params, tune_dir, jobs, per_trial, remaining, timeout, stop_at)
        except (TrainingInterrupted, WorkerFailed):
            _write_outputs(study, tune_dir, config, overrides, seeds_list[0], monitor)  # the stopped trials too
            raise
    best_path = _write_outputs(study, tune_dir, config, overrides, seeds_list[0], monitor)
    best = _best(study)
    from grutool.families import get_task

    return {"best": dataclasses.asdict(best) if best else None, "best_yaml": str(best_path) if best_path else None,
            "trials": [dataclasses.asdict(record(t)) for t in study.get_trials(deepcopy=False)],
            "storage": url, "study_name": name, "monitor": monitor, "direction": direction, "dir": str(tune_dir),
            # the monitor as lines and plots name it (Task.label: a numeric tagger's token_accuracy is step_accuracy)
            "monitor_label": get_task(base.task).label(base, monitor),
            # a grid search ends with its points, whatever `trials` asked: its size, to say so
            "grid_points": _grid_size(params, str(space)) if sampler == "grid" else None}


def _check_same_search(plan_path: Path, overrides: Sequence[str], params: list[Param], seeds: int,
                       base: Config) -> None:
    """--resume: the search goes on as it started (its --set, space entries and --seeds, as tune.json has them;
    the config file as its first trial read it, but for what the search sets), refused before any write. A
    trial trained otherwise (train.epochs=2 beside trials of 3) has a value the others cannot be ranked
    against, and best.yaml, written with the new --set, was not the best trial's config."""
    import json

    try:
        plan = json.loads(plan_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # unreadable: nothing to hold the command to
    entry = lambda p: {k: v for k, v in p.items() if k != "line"}  # where it sits in the file is no change
    changed = []
    if sorted(plan.get("overrides") or []) != sorted(overrides):
        said = lambda items: " ".join(f"--set {o}" for o in items) or "no --set"
        changed.append(f"{said(plan.get('overrides') or [])} (now {said(overrides)})")
    before = sorted((entry(p) for p in plan.get("params") or []), key=lambda p: p["path"])
    keys = set().union(*before) if before else set()  # what an older tune.json recorded of each entry
    current = [{k: v for k, v in entry(dataclasses.asdict(p)).items() if k in keys or not keys} for p in params]
    if before != sorted(current, key=lambda p: p["path"]):
        paths = ", ".join(p["path"] for p in before)
        changed.append(f"other space entries ({paths} as {plan.get('space')} had them)")
    if plan.get("seeds", seeds) != seeds:
        changed.append(f"--seeds {plan['seeds']} (now {seeds})")
    if not changed:  # the same command: the config file itself may have been edited since
        edited = _edited_since(plan_path.parent, base, {p.path for p in params})
        if edited:
            changed.append("another config (" + ", ".join(f"{key} {yaml_value(was)} in its trials, "
                                                          f"{yaml_value(now)} now" for key, was, now in edited) + ")")
    if changed:
        raise UserError(f"resume: {plan_path.parent} was searched with {'; '.join(changed)}; resume with the "
                        f"same settings (trials trained otherwise cannot be ranked with its trials), or give "
                        f"another --output-dir for a new search")


def _edited_since(tune_dir: Path, base: Config, searched: set[str]) -> list[tuple[str, Any, Any]]:
    """The settings (path, then, now) where `base` (the config and --set now) differs from the tune's first
    trial run, less what the search sets there (the space's paths, train.seed, output_dir); compared as
    `grutool study` compares a run with its config (`rundir.read_from_run`: relative data paths as the run
    read them)."""
    from grutool import rundir
    from grutool.runs import flatten

    first = next(iter(sorted((tune_dir / TRIALS_DIR).glob(f"*/{rundir.CONFIG}"))), None)
    if first is None:
        return []
    try:
        saved = rundir.open_run(first.parent).config
    except UserError:
        return []  # a damaged run: its own resume says what is wrong with it

    before = flatten(saved.model_dump(mode="json"))
    now = flatten(rundir.read_from_run(base, first.parent).model_dump(mode="json"))
    skip = searched | {"train.seed", "output_dir"}
    return [(key, before.get(key), now.get(key)) for key in sorted(set(before) | set(now))
            if key not in skip and not any(key.startswith(f"{s}.") for s in skip) and before.get(key) != now.get(key)]


def make_objective(config, overrides: Sequence[str], params: list[Param], seeds_list: list[int], tune_dir: Path,
                   monitor: str, progress: bool | str = False, callbacks: Sequence = ()) -> Callable:
    """Optuna's objective: the trial's runs (one per seed) trained, the mean of their best validation `monitor`.
    Run in this process (jobs 1) or in a trial's own process (`_trial_process`), alike."""
    from grutool.config_file import load_config

    def objective(trial) -> float:
        from grutool.errors import TrainingDiverged, TrainingInterrupted
        from grutool.runs import read_metrics
        from grutool.training.callbacks import Pruning
        from grutool.training.loop import train

        optuna = _optuna()
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        chosen = {p.path: p.suggest(trial) for p in params}
        number = trial.user_attrs.get("continues", trial.number)
        continuing = "continues" in trial.user_attrs
        runs, values = [], []
        try:
            for k, seed in enumerate(seeds_list):
                run_dir = tune_dir / TRIALS_DIR / f"{number:04d}-seed{seed}"
                runs.append(str(run_dir))
                trial.set_user_attr("runs", runs)
                # a value the config refuses with the trial's others is said as the trial's, never as a --set
                cfg = load_config(config, [*overrides, pinned_monitor(monitor)]
                                  + [(_override(p, v), f"the trial's {p}={yaml_value(v)}")
                                                             for p, v in chosen.items()]
                                  + [f"train.seed={seed}", f"output_dir={jsonsafe.dumps(str(run_dir))}"])
                offset = k * cfg.train.epochs
                if continuing:  # the epochs the interrupted trial saw, for the pruner's record
                    for row in read_metrics(run_dir):
                        value = row.get(f"val_{monitor}")
                        if isinstance(value, (int, float)):
                            trial.report(float(value), offset + row["epoch"])

                last = len(seeds_list) * cfg.train.epochs  # the trial's last epoch: nothing left to save

                def should_stop(step: int, value: float) -> bool:
                    trial.report(value, step)
                    return step < last and trial.should_prune()

                pruning = Pruning(should_stop, offset)
                summary = train(cfg, resume=continuing, overwrite=not continuing, progress=progress,
                                callbacks=[pruning, *callbacks])
                if pruning.pruned_at is not None:  # its summary.json says so (`Pruning.summary_fields`)
                    raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
                if summary.get("best") is None:
                    raise TrainingDiverged(f"{run_dir}: no finite validation {monitor}")
                values.append(float(summary["best"]))
        except TrainingInterrupted:
            trial.set_user_attr("interrupted", True)
            raise
        except (UserError, TrainingDiverged) as exc:
            trial.set_user_attr("error", str(exc))
            raise
        return sum(values) / len(values)

    return objective


# --- --jobs: trials in their own processes ----------------------------------------------------------


def _grid_size(params: list[Param], where: str) -> int:
    """The points of a grid search: every combination of the entries' values."""
    return math.prod(len(p.grid(where)) for p in params)


def _grid_left(study, params: list[Param], where: str) -> int:
    """Trials a grid search still has to run: its points no finished trial took, and the enqueued trials."""
    optuna = _optuna()
    size = _grid_size(params, where)
    trials = study.get_trials(deepcopy=False)
    taken = {t.system_attrs["grid_id"] for t in trials if t.state.is_finished() and "grid_id" in t.system_attrs}
    waiting = sum(t.state == optuna.trial.TrialState.WAITING for t in trials)
    return max(size - len(taken), 0) + waiting


class _ProcessDied(Exception):
    """A trial's process ended without an answer (killed, out of memory, a bug): not a failed trial that the
    search goes on past, but the end of the search (raised as WorkerFailed once every trial has stopped)."""


def _in_processes(study, params: list[Param], tune_dir: Path, jobs: int, threads: int, n_trials: int,
                  timeout: Optional[float], callbacks: list) -> None:
    """`n_trials` trials, `jobs` at a time, each trained by a `python -m grutool.tune` process with `threads`
    threads (OMP_NUM_THREADS and torch's own count).

    Optuna's own threads (`optimize(n_jobs=jobs)`) ask and tell here, so the sampler, `timeout`, the
    MaxTrialsCallback count and the grid's end stay this process's, and the trial lines come from here, one
    at a time. This process suggests a trial's values; its process reads them back from the storage, trains,
    reports each epoch to the pruner through the storage and answers one JSON line. The trial processes
    run in their own sessions, so Ctrl-C reaches this process alone, which passes one SIGINT to each: every
    run saves its last.pt, its trial is marked interrupted (`--resume` continues it), and the search ends
    with TrainingInterrupted. A process that dies without answering ends the search with WorkerFailed, after
    the others were stopped the same way."""
    import signal
    import sys

    from grutool.errors import TrainingDiverged, TrainingInterrupted, WorkerFailed
    from grutool.jobs import Processes

    optuna = _optuna()
    procs = Processes()
    stop_all = procs.stop_all
    state = {"died": None}

    def objective(trial) -> float:
        for p in params:
            p.suggest(trial)  # this process's sampler chooses; the trial's process reads the values back
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())  # until the trial's process records its own
        try:
            code, stdout, stderr, pid = procs.run([sys.executable, "-m", "grutool.tune", str(tune_dir),
                                                   str(trial._trial_id), str(threads)], child_env(threads),
                                                  str(tune_dir))
        except TrainingInterrupted:  # asked as the search stopped, never started: its values run on --resume,
            trial.set_user_attr("interrupted", True)  # as its record says
            raise
        answer = _answer(stdout)
        if code == 0 and answer is not None:
            for line in stderr.splitlines():  # the warnings its training logged, marked with the trial
                if line.strip():
                    log.warning("trial %d: %s", trial.number, line.strip())
            if answer.get("state") == "complete":
                return float(answer["value"])
            if answer.get("state") == "pruned":
                raise optuna.TrialPruned(answer.get("why"))
            raise (TrainingDiverged if answer.get("diverged") else UserError)(str(answer.get("error")))
        # Stopped by us, or by a SIGINT of its own: the search stops, and the trial is marked interrupted so that
        # --resume runs its parameters again, continuing its runs (unmarked, a trial stopped before its training
        # loop began, the baseline too, was left failed and never run again). -SIGINT: a trial process our
        # SIGINT reached while it was still starting, before grutool's handler; any other end without an answer
        # once we are stopping (an abort of C++ code the interrupt went through, -6) is that too.
        if code in (130, -signal.SIGINT) or procs.stopping:
            trial.set_user_attr("interrupted", True)
            study.stop()
            stop_all()
            raise TrainingInterrupted(str(tune_dir))
        why = next((line.strip() for line in reversed(stderr.splitlines()) if line.strip()), "no output")
        message = (f"trial {trial.number}: its process (pid {pid}) ended with exit code {code} "
                   f"and no result: {why}")
        trial.set_user_attr("error", message)
        with procs.guard:
            state["died"] = state["died"] or message
        study.stop()
        stop_all()
        raise _ProcessDied(message)

    def interrupt(signum, frame) -> None:
        if not procs.stopping:  # the first Ctrl-C: stop the trials, then the search
            stop_all()
            raise KeyboardInterrupt
        log.warning("tune: stopping; waiting for the running trials to save their last.pt")

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, interrupt) if main else None
    try:
        study.optimize(objective, n_trials=n_trials, timeout=timeout, n_jobs=jobs,
                       catch=(UserError, TrainingDiverged), callbacks=callbacks)
    except (KeyboardInterrupt, TrainingInterrupted, _ProcessDied):
        if state["died"]:
            raise WorkerFailed(state["died"]) from None
        raise TrainingInterrupted(str(tune_dir)) from None
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    if state["died"]:
        raise WorkerFailed(state["died"])


def _answer(stdout: str) -> Optional[dict]:
    """The JSON line a trial's process ends its output with, or None."""
    import json

    lines = stdout.strip().splitlines()
    try:
        answer = json.loads(lines[-1]) if lines else None
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def _trial_process(argv: list[str]) -> int:
    """`python -m grutool.tune TUNE_DIR TRIAL_ID THREADS`: train one trial of a `--jobs` tune, asked by the
    process that started this one, and print its outcome as one JSON line: {"state": "complete", "value"},
    {"state": "pruned"} or {"state": "fail", "error"}. Exit 130 when stopped by SIGINT (last.pt saved), also
    when the parent process is gone."""
    import json
    import sys

    from grutool.config_file import load_config
    from grutool.errors import TrainingDiverged, TrainingInterrupted

    tune_dir, trial_id, threads = Path(argv[0]), int(argv[1]), int(argv[2])
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING)
    log.propagate = False
    stop_when_orphaned()  # a parent killed outright: stop as Ctrl-C would, so the run keeps its last.pt
    optuna = _optuna()
    try:
        import torch

        torch.set_num_threads(threads)
        plan = json.loads((tune_dir / PLAN).read_text(encoding="utf-8"))
        base = load_config(plan["config"], plan["overrides"])
        study = optuna.load_study(study_name=plan["study_name"], storage=open_storage(plan["storage"]),
                                  pruner=make_pruner(plan["pruner"], base.train.epochs * plan["seeds"],
                                                     plan.get("prune_after", 1)))
        params = [Param(**p) for p in plan["params"]]
        seeds_list = list(range(base.train.seed, base.train.seed + plan["seeds"]))
        objective = make_objective(plan["config"], plan["overrides"], params, seeds_list, tune_dir, plan["monitor"])
        answer = {"state": "complete", "value": objective(optuna.trial.Trial(study, trial_id))}
    except optuna.TrialPruned as exc:
        answer = {"state": "pruned", "why": str(exc)}
    except TrainingDiverged as exc:
        answer = {"state": "fail", "error": str(exc), "diverged": True}
    except UserError as exc:
        answer = {"state": "fail", "error": str(exc)}
    except (TrainingInterrupted, KeyboardInterrupt):
        return 130
    print(jsonsafe.dumps(answer), flush=True)
    return 0


def _best(study) -> Optional[TrialRecord]:
    try:
        return record(study.best_trial)
    except ValueError:  # no completed trial yet
        return None


def _seed_note(best: TrialRecord, seed: int) -> str:
    """With --seeds N the trial's value is its runs' mean, and best.yaml trains its first seed alone: what that
    run gave, so `grutool train best.yaml` is checked against its own figure, not the mean."""
    if len(best.runs) < 2:
        return ""
    import json

    from grutool import rundir

    try:
        first = json.loads((Path(best.runs[0]) / rundir.SUMMARY).read_text(encoding="utf-8")).get("best")
    except (OSError, ValueError, AttributeError):
        first = None
    said = f"{first:.6g}" if isinstance(first, (int, float)) else "see its run"
    return f", the mean of its {len(best.runs)} seeds' runs; train.seed {seed}, as below, gave {said}"


def _write_outputs(study, tune_dir: Path, config, overrides, seed: int, monitor: str) -> Optional[Path]:
    """trials.jsonl (rewritten from the storage: the truth, also after a resume) and best.yaml."""
    from grutool.config_file import load_config, to_yaml

    lines = "".join(jsonsafe.dumps(dataclasses.asdict(record(t))) + "\n"
                    for t in study.get_trials(deepcopy=False) if t.state.is_finished())
    write_text_atomic(lines, tune_dir / TRIALS)
    best = _best(study)
    if best is None:
        return None
    cfg = load_config(config, [*overrides, pinned_monitor(monitor)] + [_override(p, v) for p, v in best.params.items()]
                      + [f"train.seed={seed}",
                         f"output_dir={jsonsafe.dumps(str(Path('runs') / (Path(config).stem + '-tuned')))}"])
    from grutool.families import get_task

    header = (f"# grutool tune: trial {best.number}, validation {get_task(cfg.task).label(cfg, monitor)} "
              f"{best.value:.6g}{_seed_note(best, seed)} ({', '.join(f'{k}={v}' for k, v in best.params.items())}).\n"
              # its run folders by name: a trial run again after a kill keeps the first one's folder and number
              + (f"# Its run{'s' if len(best.runs) > 1 else ''}: {', '.join(map(str, best.runs))}\n" if best.runs else "")
              + f"# Train it: grutool train {tune_dir / BEST}\n")
    write_text_atomic(header + to_yaml(cfg), tune_dir / BEST)
    return tune_dir / BEST


def plot(result: dict, path: str | Path) -> str:
    """Left: the optimisation history (each trial's value, pruned ones hollow, and the running best); right:
    parameter importances (Optuna's PED-ANOVA evaluator; needs enough completed trials to rank them). Needs matplotlib."""
    from grutool.curves import _pyplot, save_png

    optuna = _optuna()
    plt = _pyplot()
    study = optuna.load_study(study_name=result["study_name"], storage=open_storage(result["storage"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    done = [t for t in result["trials"] if t["value"] is not None and t["state"] in ("complete", "pruned")]
    for state, style in (("complete", dict(color="C0")), ("pruned", dict(facecolors="none", edgecolors="C1"))):
        xs = [(t["number"], t["value"]) for t in done if t["state"] == state]
        if xs:
            left.scatter(*zip(*xs), label=state, **style)
    running, best = [], None
    better = min if result["direction"] == "minimize" else max
    for t in sorted((t for t in done if t["state"] == "complete"), key=lambda t: t["number"]):
        best = t["value"] if best is None else better(best, t["value"])
        running.append((t["number"], best))
    if running:
        last = max(t["number"] for t in done)
        left.step(*zip(*running, (last, running[-1][1])), where="post", color="C2", label="best so far")
    left.set(xlabel="trial", ylabel=f"validation {result.get('monitor_label') or result['monitor']}",
             title="optimisation history")
    # trial numbers, never 0.25; min_n_ticks 1: with one or two trials the locator fell back to -0.04, 0.02 ...
    left.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)
    if done:
        left.set_xlim(min(t["number"] for t in done) - 0.5, max(t["number"] for t in done) + 0.5)
    left.grid(alpha=0.3)
    left.legend()
    # PED-ANOVA, named: Optuna's default evaluator changes between releases (fANOVA, which needs scikit-learn,
    # before 5.0), and the axis said fANOVA whichever ran.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            importances = optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())
        except (ValueError, RuntimeError):  # fewer than two completed trials, or one value everywhere
            importances = {}
    if any("will be equal" in str(w.message) for w in caught):  # said on stderr as Optuna's own warning
        importances = {}  # too few trials to rank them: no bars rather than equal ones
    right.set(title="parameter importances")
    if importances:
        names = list(importances)[::-1]
        right.barh(names, [importances[n] for n in names], color="C0")
        right.set(xlabel="importance (PED-ANOVA)")
    else:  # said inside the panel (as a title it ran past the figure's edge), over no axes of 0 to 1
        right.text(0.5, 0.5, "too few completed trials to rank them", ha="center", va="center",
                   transform=right.transAxes)
        right.set_axis_off()
    fig.tight_layout()
    save_png(fig, path, dpi=110)
    plt.close(fig)
    return str(path)


if __name__ == "__main__":
    import sys

    sys.exit(_trial_process(sys.argv[1:]))
