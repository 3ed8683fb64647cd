"""`grutool study`: one config trained once per cell × seed, everything else equal, and one report.

The question it answers: "GRU or LSTM (or RNN) for *my* data: how much quality do I give up or gain, and how
much time do I save?" Each run is a normal run directory, so `grutool runs STUDY` lists them and `grutool
compare` reads them:

    STUDY/plan.json                what the study is: config, --set overrides, cells, seeds, each run's kernel
                                   and how it trained (`trained`: runs at once, threads each)
    STUDY/runs/<cell>-seed<N>/     one run directory per cell × seed
    STUDY/report.md|json|csv       the report (`report()`), rewritten at the end of every study command
    STUDY/study.png                `--plot`: validation metric against training time, and learning curves
                                   (without a validation split: the test metric, and the training loss)

The report, per cell: the monitored validation metric and every test metric as mean ± sd (and each seed),
training seconds per epoch and to the best epoch, tokens (steps, rows) per second, parameters, batch-1 and batch-32
inference latency timed on the saved runs (interleaved, as `bench` times), the kernel the cell ran in
training and inference; then each cell against the first with a paired t-test over seeds (`grutool.stats`),
saying when a difference is inside the noise; then the environment line `bench` records.

Families are plugins here too: the study changes `model.cell` and `train.seed` only, and reads what every
run leaves (summary.json, metrics.jsonl) and what every Task offers (`encode_split`, `infer_batch`).
"""

from __future__ import annotations

import csv
import io
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from grutool import jsonsafe, rundir
from grutool.atomic import check_output_folder, make_folder, write_text_atomic
from grutool.cells import CELLS
from grutool.config import MINIMIZED_METRICS, Config
from grutool.errors import UserError
from grutool.jobs import Processes, child_env, in_process_threads, stop_when_orphaned, thread_share
from grutool.stats import ALPHA, mean_sd, paired_t

log = logging.getLogger("grutool")

PLAN, REPORT_MD, REPORT_JSON, REPORT_CSV, PLOT = "plan.json", "report.md", "report.json", "report.csv", "study.png"
RUNS = "runs"
LATENCY_BATCHES = (1, 32)
COST = ("s_per_epoch", "s_to_best", "tokens_per_s", "latency_1_ms", "latency_32_ms")  # compared as ratios too


STUDY_SETS = {"model.cell": "name the cells with --cells (e.g. --cells lstm)",
              "output_dir": "choose the study directory with --output-dir (its runs go into DIR/runs/)"}


@dataclass
class Run:
    name: str       # <cell>-seed<N>
    cell: str
    seed: int
    cfg: Config     # validated, output_dir inside the study


def parse_cells(text: str) -> list[str]:
    """`gru,lstm` -> ['gru', 'lstm']; unknown or repeated names refused with the known ones."""
    import difflib

    cells = [c.strip() for c in text.split(",") if c.strip()]
    if not cells:
        raise UserError("cells: give cell names separated by commas, e.g. --cells gru,lstm", option="cells")
    for c in cells:
        if c not in CELLS:
            close = difflib.get_close_matches(c, list(CELLS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use {', '.join(CELLS)}"
            raise UserError(f"cells: '{c}' is not a cell; {hint}", option="cells")
    if len(set(cells)) != len(cells):
        raise UserError(f"cells: '{text}' names a cell twice; name each once", option="cells")
    return cells


def plan(config: str | Path, cells: Sequence[str], seeds: int, overrides: Sequence[str] = (),
         study_dir: Optional[str | Path] = None) -> tuple[Path, list[Run]]:
    """Every run's config, validated before the first run trains (a cell the config cannot take, e.g.
    `layer_norm` with lstm, is refused here). Seeds are train.seed, train.seed + 1, ...; runs go seed by seed, the
    cells alternating within each seed."""
    from grutool.config_file import load_config

    if seeds < 1:
        raise UserError(f"seeds: must be at least 1 (got {seeds})", option="seeds")
    for item in overrides:  # what the study sets per run would silently replace the user's value
        key = item.partition("=")[0].strip()
        if key in STUDY_SETS:
            raise UserError(f"set: {key}: the study sets it per run; {STUDY_SETS[key]}", option="set")
    base = load_config(config, list(overrides))
    study_dir = Path(study_dir) if study_dir is not None else Path("studies") / Path(config).stem
    check_output_folder(study_dir, "--output-dir", own=(PLAN,), what="study")
    runs = []
    # seeds outer, cells inner: the cells alternate, so a change of machine load falls on both alike
    for seed in range(base.train.seed, base.train.seed + seeds):
        for cell in cells:
            name = f"{cell}-seed{seed}"
            extra = [f"model.cell={cell}", f"train.seed={seed}",
                     f"output_dir={jsonsafe.dumps(str(study_dir / RUNS / name))}"]
            try:
                cfg = load_config(config, list(overrides) + extra)
            except UserError as exc:
                raise UserError(f"cell {cell}: {exc}") from None
            runs.append(Run(name, cell, seed, cfg))
    return study_dir, runs


def run_study(config: str | Path, cells: Sequence[str], seeds: int, overrides: Sequence[str] = (),
              study_dir: Optional[str | Path] = None, *, resume: bool = False, overwrite: bool = False,
              progress: bool | str = False, callbacks: Sequence = (),
              on_run: Optional[Callable[[int, int, Run, dict, bool], None]] = None,
              latency_repeats: int = 5, jobs: int = 1, threads: Optional[int] = None) -> dict:
    """Train every run of `plan(...)` (reusing finished ones with `resume`), then `report()`.

    Runs go one after another; `jobs` > 1 trains that many at once, each in its own process with
    `threads // jobs` torch threads (`threads`: the budget, default every core), never more threads than the
    budget. `on_run(i, n, run, summary, reused)` is called after each run (the CLI prints a line). An
    interrupted run (Ctrl-C, a kill) is continued from its last.pt by the same call with `resume=True`."""
    from grutool.runs import status

    if resume and overwrite:
        raise UserError("resume: contradicts overwrite; pick one", option="resume")
    study_dir, runs = plan(config, cells, seeds, overrides, study_dir)
    per_run = thread_share(jobs, threads, runs[0].cfg.train.num_threads)
    if resume:
        _check_resumable(runs)
    plan_path = study_dir / PLAN
    if plan_path.is_file() and not (resume or overwrite):
        raise UserError(f"{study_dir}: a study is already there; add --resume to continue it (finished runs "
                        f"are reused), --overwrite to train it again, or choose another --output-dir")
    if not plan_path.is_file():  # a new study: a missing data file is one error, before any write
        from grutool.training.startup import read_data

        read_data(runs[0].cfg)
    if resume and not plan_path.is_file():  # a mistyped -o would otherwise start a second study unsaid
        log.warning("%s: no study there to resume; starting a new one", study_dir)
    previous = _read_json(plan_path) if resume else {}
    kernels = dict((previous or {}).get("kernels") or {})
    # How each run was trained (runs at once, threads each): a run reused by a --resume without --jobs keeps
    # the timings it had; a study written before this was kept says it for all its runs.
    trained = dict((previous or {}).get("trained") or {})
    for name in (previous or {}).get("runs") or []:
        trained.setdefault(name, {"jobs": previous.get("jobs", 1), "threads": previous.get("threads_per_run")})
    make_folder(study_dir, "--output-dir")
    state = {"config": str(config), "overrides": list(overrides), "cells": list(cells), "seeds": seeds,
             "runs": [r.name for r in runs], "jobs": jobs, "threads_per_run": per_run if jobs > 1 else None,
             "kernels": kernels, "trained": trained}
    write_text_atomic(jsonsafe.dumps(state, indent=2), plan_path)
    pending = []
    for i, run in enumerate(runs, 1):
        path = Path(run.cfg.output_dir)
        if resume and status(path) == "finished" and _trained_with(path, run.cfg):
            if on_run is not None:
                on_run(i, len(runs), run, _read_json(path / rundir.SUMMARY) or {}, True)
        else:
            # a run the study has not reached yet starts as new: resuming it would warn of a lost run
            pending.append((i, run, resume and bool(rundir.contents(path))))

    def done(i: int, run: Run, summary: dict, kernel: Optional[str]) -> None:
        if kernel is not None:
            kernels[run.name] = kernel
        trained[run.name] = {"jobs": jobs, "threads": state["threads_per_run"]}
        write_text_atomic(jsonsafe.dumps(state, indent=2), plan_path)
        if on_run is not None:
            on_run(i, len(runs), run, summary, False)

    with in_process_threads(jobs, threads):  # --threads without --jobs: this process's runs and timings
        if jobs == 1:
            for i, run, again in pending:
                log.info("study: run %d/%d, %s", i, len(runs), run.name)
                summary, kernel = train_one(run.cfg, again, overwrite, progress, callbacks)
                done(i, run, summary, kernel)
        else:
            _in_parallel(study_dir, pending, jobs, per_run, overwrite, done)
        try:
            return report(study_dir, latency_repeats=latency_repeats)
        except KeyboardInterrupt:  # Ctrl-C while testing and timing: every run is saved, --resume writes it
            from grutool.errors import TrainingInterrupted

            raise TrainingInterrupted(str(study_dir)) from None


def _trained_with(path: Path, cfg: Config) -> bool:
    """Whether the run at `path` was trained with `cfg`: compared as the run is read (`rundir.open_run`), so a
    run an older grutool wrote (no fields added since, a setting its family never reads) counts as the same."""
    try:
        saved = rundir.open_run(path).config
    except UserError:
        return False
    # Both with the run's relative data paths read as the run reads them, as _check_resumable compares them.
    return saved.model_dump(mode="json") == rundir.read_from_run(cfg, path).model_dump(mode="json")


def _check_resumable(runs: list[Run]) -> None:
    """--resume: every run that would be continued or reused accepts its config now (train's own rule), checked
    before anything is written; a changed --set failed at the first such run with train's advice, which named
    neither --overwrite nor another --output-dir."""
    from grutool.training.run_setup import RESUMABLE_CHANGES, resume_changes

    changed: dict[str, tuple] = {}
    past: dict[str, tuple] = {}  # a run trained beyond the length asked now: it cannot be shortened
    for run in runs:
        path = Path(run.cfg.output_dir)
        if not (path / rundir.LAST).is_file():
            continue  # nothing to continue: the run starts (over) as new
        try:
            saved = rundir.open_run(path).config
        except UserError:
            continue  # a damaged run: its own training says what is wrong with it
        for key, before, now in resume_changes(rundir.read_from_run(run.cfg, path), saved):
            changed.setdefault(key, (before, now))
        summary = _read_json(path / rundir.SUMMARY) or {}
        t = run.cfg.train
        for key, done, limit in (("train.epochs", summary.get("epochs"), t.epochs),
                                 ("train.max_steps", summary.get("steps"), t.max_steps)):
            if isinstance(done, int) and limit is not None and done > limit:
                past.setdefault(key, (run.name, done, limit))
    if past:
        # Reused as they are, such runs would sit in one report beside runs trained to the new length.
        what = "; ".join(f"{name} trained {done} {'epochs' if key == 'train.epochs' else 'steps'}, more than "
                         f"{key}={limit} now" for key, (name, done, limit) in past.items())
        raise UserError(f"resume: {what}; a finished run is not shortened, so resume with at least what they "
                        f"trained, add --overwrite instead of --resume to train every run again, or give another "
                        f"--output-dir for a new study")
    if changed:
        what = ", ".join(f"{key}={jsonsafe.dumps(before)} (now {jsonsafe.dumps(now)})"
                         for key, (before, now) in changed.items())
        raise UserError(f"resume: the study's runs were trained with {what}; resume with the settings they had "
                        f"(only {', '.join(sorted(RESUMABLE_CHANGES))} may change), add --overwrite instead of "
                        f"--resume to train every run again, or give another --output-dir for a new study")


def train_one(cfg: Config, resume: bool, overwrite: bool, progress: bool | str = False,
              callbacks: Sequence = ()) -> tuple[dict, Optional[str]]:
    """One run of the study: its summary and the kernel its recurrent layers ran."""
    from grutool.training.callbacks import KernelRecorder
    from grutool.training.loop import train

    recorder = KernelRecorder()
    summary = train(cfg, resume=resume, overwrite=overwrite, progress=progress, callbacks=[recorder, *callbacks])
    return summary, recorder.kernel


def _in_parallel(study_dir: Path, pending: list, jobs: int, per_run: int, overwrite: bool,
                 done: Callable) -> None:
    """`pending` runs (i, run, whether to resume it), `jobs` at a time, each a `python -m grutool.study` process
    with `per_run` threads
    (OMP_NUM_THREADS and torch's own count; the run's config is left as it is, so --resume accepts it).
    The run processes have their own sessions, so Ctrl-C reaches this process alone, which passes one SIGINT
    to each (every run saves its last.pt), waits for them, starts no further run and raises TrainingInterrupted
    naming the study (`--resume` continues it); as tune's jobs do."""
    import json
    import sys
    from concurrent.futures import ThreadPoolExecutor, as_completed

    from grutool.errors import TrainingInterrupted

    env = child_env(per_run)
    procs = Processes()
    stop_all = procs.stop_all

    def one(item):
        i, run, again = item
        cmd = [sys.executable, "-m", "grutool.study", str(study_dir), run.name, str(per_run),
               "resume" if again else "overwrite" if overwrite else "new"]
        code, stdout, stderr, _ = procs.run(cmd, env, str(study_dir), on_start=lambda: log.info(
            "study: run %d, %s (in its own process, %d thread(s))", i, run.name, per_run))
        if code == 130:
            stop_all()
            raise TrainingInterrupted(str(study_dir))
        lines = stdout.strip().splitlines()
        if code != 0 or not lines:
            why = (stderr.strip().splitlines() or ["no output"])[-1]
            raise UserError(f"{run.cfg.output_dir}: the run failed ({why.removeprefix('error: ')})")
        answer = json.loads(lines[-1])
        return i, run, answer["summary"], answer["kernel"]

    def stop_running() -> None:
        """Stop every running run (each saves its last.pt), start no more, and wait for them."""
        stop_all()
        try:
            pool.shutdown(wait=True, cancel_futures=True)
        except KeyboardInterrupt:
            log.warning("study: stopping; the running runs finish saving their last.pt")

    pool = ThreadPoolExecutor(max_workers=jobs)
    try:
        # As each run ends, not in the study's order: a run that fails is said at once, not after the runs
        # before it in the order have trained to their end.
        for future in as_completed([pool.submit(one, item) for item in pending]):
            done(*future.result())
    except (KeyboardInterrupt, TrainingInterrupted):
        stop_running()
        raise TrainingInterrupted(str(study_dir)) from None
    except UserError as exc:
        # The study cannot finish without this run: the others stop now with their last.pt, which --resume
        # continues once the cause is fixed, instead of training on for a report that will not come.
        with procs.guard:
            others = bool(procs.running)
        stop_running()
        stopped = "; the other running runs stopped and saved their last.pt" if others else ""
        raise UserError(f"{exc}{stopped}: fix the cause and continue the study with --resume",
                        option=exc.option) from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _child(argv: list[str]) -> int:
    """`python -m grutool.study STUDY RUN THREADS MODE`: one run of a parallel study; prints its summary and
    kernel as one JSON line. Exit 2 with one `error:` line on a UserError, 130 on Ctrl-C."""
    import sys

    import torch

    from grutool.errors import TrainingInterrupted

    study_dir, name, threads, mode = argv
    stop_when_orphaned()  # the study's process killed outright: this run stops as after Ctrl-C, with its last.pt
    torch.set_num_threads(int(threads))
    try:
        state = _read_json(Path(study_dir) / PLAN) or {}
        _, runs = plan(state["config"], state["cells"], state["seeds"], state["overrides"], study_dir)
        run = next(r for r in runs if r.name == name)
        summary, kernel = train_one(run.cfg, mode == "resume", mode == "overwrite")
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (TrainingInterrupted, KeyboardInterrupt):
        return 130
    print(jsonsafe.dumps({"summary": summary, "kernel": kernel}))
    return 0


# --- the report -----------------------------------------------------------------------------------------


def _read_json(path: Path) -> Optional[dict]:
    import json

    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# Keys of an eval result that count or size the data scored (sequences, tokens, forecast windows and their
# shape), or name a setting it was scored with (a seq2seq run's beam_size), not the model: the same in every
# run of a study, so never compared between cells.
DATA_KEYS = frozenset({"n", "tokens", "windows", "horizon", "input_length", "season", "beam_size"})


def _scalars(metrics: Optional[dict], cfg: dict) -> dict:
    """The figures of an eval result a study compares: numbers, less DATA_KEYS and what the run's family calls
    uninformative on its data (`Task.uninformative`: word n-gram BLEU of character targets)."""
    from grutool.families import get_task

    metrics = metrics or {}
    left_out = DATA_KEYS | get_task(cfg.get("task") or Config.model_fields["task"].default).uninformative(metrics)
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in left_out}


def _measure_run(path: Path) -> dict:
    """What a run's files say: validation, epochs, times, tokens/s, parameters (no torch)."""
    from grutool.runs import read_config, read_metrics

    summary = _read_json(path / rundir.SUMMARY) or {}
    rows = read_metrics(path)
    cfg = read_config(path)
    best_epoch = summary.get("best_epoch") or 0
    # train.max_steps may cut the last epoch short: it counts as the part it trained (6 of 25 steps: 0.24),
    # so s/epoch is per epoch, not the seconds of 6 steps
    cut = rundir.cut_epoch(summary)
    share = [cut[0] / cut[1] if cut and k == len(rows) - 1 else 1.0 for k in range(len(rows))]
    timed = [(r["epoch_time_s"], w) for r, w in zip(rows, share) if isinstance(r.get("epoch_time_s"), (int, float))]
    speeds = [r["tokens_per_s"] for r in rows if isinstance(r.get("tokens_per_s"), (int, float))]
    return {
        "monitor": summary.get("monitor") or (cfg.get("train") or {}).get("monitor"),
        "val": summary.get("best"), "validation": _scalars(summary.get("validation"), cfg),
        "epochs": summary.get("epochs"), "best_epoch": best_epoch, "wall_s": summary.get("wall_time_s"),
        "s_per_epoch": sum(t for t, _ in timed) / sum(w for _, w in timed) if timed else None,
        "s_to_best": sum(r["epoch_time_s"] for r in rows if r["epoch"] <= best_epoch
                         and isinstance(r.get("epoch_time_s"), (int, float))) if rows else None,
        "tokens_per_s": sum(speeds) / len(speeds) if speeds else None,
        "parameters": summary.get("parameters"),
        # An epoch resumed from an older last.pt has no time (nor training loss): it adds none, and keeps its point.
        "curve": [(r["epoch"], elapsed, r.get(f"val_{summary.get('monitor')}"), r.get("train_loss"))
                  for r, elapsed in zip(rows, itertools.accumulate(
                      r["epoch_time_s"] if isinstance(r.get("epoch_time_s"), (int, float)) else 0.0 for r in rows))],
    }


def _latency(paths: list[Path], repeats: int, probe_kernel: set[int]) -> tuple[dict, dict]:
    """Batch-1 and batch-32 inference (`Task.infer_batch` on the first examples of the validation split, as
    `Predictor.predict` runs a batch), every run and batch size interleaved; and the kernel of one batch-32
    call of the runs in `probe_kernel` (by index), read from a profile (`grutool.bench.env.probe`)."""
    import contextlib

    import torch

    from grutool.bench import env
    from grutool.bench.timing import Case, WallClock, time_interleaved
    from grutool.data.batching import collate
    from grutool.predict import Predictor
    from grutool.training.startup import silenced

    cases, keys, kernels, devices = [], [], {}, []
    for i, path in enumerate(paths):
        p = Predictor(path, "auto")
        devices.append(p.device)
        d = p.cfg.data
        name, source = next(((n, getattr(d, n)) for n in ("validation", "test", "train") if getattr(d, n)),
                            ("train", None))
        with silenced():  # its warnings (unknown tokens) were the run's, said in training
            split = p.task.encode_split(p.cfg, p.run, source, name)
        for size in LATENCY_BATCHES:
            index = [k % len(split) for k in range(size)]
            batch = collate(split, index).to(p.device)

            def fn(p=p, batch=batch):
                with torch.no_grad():
                    return p.task.infer_batch(p.model, batch)

            cases.append(Case(f"{path.name}/{size}", fn))
            keys.append((str(path), size))
            if size == max(LATENCY_BATCHES) and i in probe_kernel:
                fn()
                kernels[str(path)] = env.probe(fn, contextlib.nullcontext, p.device).kernel
    cuda = any(p_.type == "cuda" for p_ in devices)
    clock = WallClock(sync=torch.cuda.synchronize) if cuda else None  # a sample covers the GPU work it launched
    stats = time_interleaved(cases, repeats=repeats, warmup=1, min_sample_s=0.02, clock=clock)
    latency: dict = {}
    for (path, size), s in zip(keys, stats):
        latency.setdefault(path, {})[size] = s.median * 1000
    return latency, kernels


def report(study_dir: str | Path, *, latency_repeats: int = 5) -> dict:
    """Measure the study's runs (test metrics, latency), aggregate per cell, compare, and write
    report.md, report.json and report.csv into the study directory; returns the report."""
    import torch

    from grutool.bench import env
    from grutool.evaluate import evaluate
    from grutool.runs import read_config, status

    study_dir = Path(study_dir)
    state = _read_json(study_dir / PLAN)
    if state is None:
        raise UserError(f"{study_dir}: not a study directory (no {PLAN}); start one with `grutool study CONFIG`")
    cells = state["cells"]
    paths, records = [], []
    for name in state["runs"]:
        path = study_dir / RUNS / name
        if status(path) not in ("finished", "diverged"):
            continue
        cell, _, seed = name.rpartition("-seed")
        rec = {"run": name, "cell": cell, "seed": int(seed), "dir": str(path), **_measure_run(path),
               "kernel_train": state.get("kernels", {}).get(name)}
        cfg = read_config(path)
        rec["test"] = (_scalars(evaluate(str(path), "test", device="auto"), cfg)
                       if (cfg.get("data") or {}).get("test") else {})
        paths.append(path)
        records.append(rec)
    first = {}
    for i, rec in enumerate(records):
        first.setdefault(rec["cell"], i)
    latency, kernels = _latency(paths, latency_repeats, set(first.values())) if paths else ({}, {})
    for rec in records:
        for size in LATENCY_BATCHES:
            rec[f"latency_{size}_ms"] = latency.get(rec["dir"], {}).get(size)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    monitor = next((r["monitor"] for r in records if r["monitor"]), None)
    per_cell = {}
    for cell in cells:
        mine = sorted((r for r in records if r["cell"] == cell), key=lambda r: r["seed"])
        if not mine:
            continue
        per_cell[cell] = {
            "seeds": [r["seed"] for r in mine],
            # a seed whose kernel went unrecorded (a run resumed by an older grutool) leaves it to the others
            "kernel": {"train": next((r["kernel_train"] for r in mine if r["kernel_train"]), None),
                       "inference": kernels.get(mine[0]["dir"])},
            "parameters": mine[0]["parameters"],
            "figures": {key: _summary([r[key] for r in mine]) for key in
                        ("val", "s_per_epoch", "s_to_best", "tokens_per_s", "latency_1_ms", "latency_32_ms",
                         "epochs", "best_epoch")},
            "test": {key: _summary([r["test"].get(key) for r in mine]) for key in
                     sorted(set().union(*(r["test"] for r in mine)))},
        }
    result = {"study": str(study_dir), "config": state["config"], "overrides": state["overrides"],
              "cells": cells, "monitor": monitor, "rate_unit": _rate_unit(paths), **_shared(state, records),
              "direction": "lower" if monitor in MINIMIZED_METRICS else "higher",
              "runs": [{k: v for k, v in r.items() if k != "curve"} for r in records],
              "cells_summary": per_cell, "comparisons": _compare(records, cells),
              "env": env.capture(device), "missing": [n for n in state["runs"]
                                                       if n not in {r["run"] for r in records}]}
    write_text_atomic(jsonsafe.dumps(result, indent=2), study_dir / REPORT_JSON)
    write_text_atomic(markdown(result), study_dir / REPORT_MD)
    write_text_atomic(to_csv(result), study_dir / REPORT_CSV)
    result["curves"] = {r["run"]: r["curve"] for r in records}  # for --plot; not in the files
    return result


def _shared(state: dict, records: list[dict]) -> dict:
    """`jobs` and `threads_per_run` of the report: the most runs that trained at once among the reported ones,
    as plan.json's `trained` has them, so a --resume that only reuses runs trained two at a time still says
    their timings shared the machine (it said "one after another", the new command's --jobs 1)."""
    trained = state.get("trained") or {}
    ways = [trained[r["run"]] for r in records if r["run"] in trained]
    if not ways:
        return {"jobs": state.get("jobs", 1), "threads_per_run": state.get("threads_per_run")}
    most = max(ways, key=lambda w: w.get("jobs") or 1)
    return {"jobs": most.get("jobs") or 1, "threads_per_run": most.get("threads")}


def _summary(values: list) -> dict:
    xs = [v for v in values if isinstance(v, (int, float))]
    m, sd = mean_sd(xs)
    return {"mean": m, "sd": sd, "values": values}


def _compare(records: list[dict], cells: list[str]) -> list[dict]:
    """Each cell against the first, paired by seed, on the validation monitor, every test metric and the costs."""
    by = {(r["cell"], r["seed"]): r for r in records}
    out = []
    ref = cells[0]
    for cell in cells[1:]:
        seeds = sorted(s for c, s in by if c == cell and (ref, s) in by)
        if not seeds:
            continue
        pairs = [(by[(ref, s)], by[(cell, s)]) for s in seeds]
        keys = [(f"val_{pairs[0][0]['monitor']}", lambda r: r["val"])]
        keys += [(f"test_{k}", lambda r, k=k: r["test"].get(k)) for k in sorted(pairs[0][0]["test"])]
        keys += [(k, lambda r, k=k: r[k]) for k in COST]
        for key, get in keys:
            a, b = [get(x) for x, _ in pairs], [get(y) for _, y in pairs]
            if any(not isinstance(v, (int, float)) for v in a + b):
                continue
            test = paired_t(a, b)
            ma, mb = sum(a) / len(a), sum(b) / len(b)
            out.append({"metric": key, "a": ref, "b": cell, "mean_a": ma, "mean_b": mb, "diff": test.mean,
                        "ratio": mb / ma if key in COST and ma else None, "sd_diff": test.sd, "t": test.t,
                        "p": test.p, "ci95": test.ci95, "n": test.n, "inside_noise": test.inside_noise,
                        "reading": _reading(test, ref, cell)})
    return out


def _reading(test, a: str, b: str) -> str:
    """The difference in words; `p —` where the test is undefined (one seed, or no spread between seeds)."""
    if test.constant:
        if test.mean == 0:
            return "no difference on any seed (p —)"
        if test.n == 2:
            return "the same difference on both seeds; too few seeds to test (p —)"
        return f"the same difference on all {test.n} seeds; no spread to test (p —)"
    if test.p is None:
        return "one seed: no test"
    if test.inside_noise:
        return f"noise (p {test.p:.2g})"
    return f"{b} {'higher' if test.mean > 0 else 'lower'} (p {test.p:.2g})"


# --- rendering (plain text: the CLI prints the same tables with rich) --------------------------------------


def fmt(value, digits: Optional[int] = None) -> str:
    """A figure of the report: 4 significant digits as `runs` and `compare` write them (a test mse of 0.0008123
    read `0.0008` in every cell, its sd `0.0000`); `digits`: fixed decimals, for seconds and milliseconds."""
    from grutool.runs import figure

    if digits is None or not isinstance(value, float):
        return figure(value)
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def mean_pm(s: dict, digits: Optional[int] = None) -> str:
    """`mean ± sd`, the sd to the mean's decimals (`grutool.runs.figure_pm`), or both to `digits` decimals."""
    from grutool.runs import figure_pm

    if s["mean"] is None:
        return "-"
    if digits is None:
        return figure_pm(s["mean"], s["sd"])
    return fmt(s["mean"], digits) + (f" ± {fmt(s['sd'], digits)}" if s["sd"] is not None else "")


def _rate_unit(paths: list[Path]) -> str:
    """What the runs' tokens_per_s counts, as train's epoch line names it (`Task.rate_unit`): tokens of text,
    steps of numeric sequences, a forecaster's windows."""
    if not paths:
        return "tokens"
    from grutool.config_file import load_config
    from grutool.families import get_task

    cfg = load_config(paths[0] / rundir.CONFIG, saved=True)
    return get_task(cfg.task).rate_name(cfg)  # a forecaster's rows, as train counts them (bench: its windows)


def nouns(result: dict) -> dict[str, str]:
    """The words of the study's task for its figures (`Task.nouns`: a numeric tagger's `token_accuracy` reads
    `step_accuracy`), from its first run's config; {} without one."""
    from grutool.runs import nouns as run_nouns

    first = (result.get("runs") or [{}])[0]
    return run_nouns(first["dir"]) if "dir" in first else {}


def table_rows(result: dict, terminal: bool = False) -> dict:
    """The report's three tables as header + rows of strings. The markdown has every test metric and each
    seed's figure; the terminal (`terminal`) keeps what fits 80 columns: the monitor on validation and test.
    Figures are named by the task's words (`nouns`), their keys unchanged in the JSON and CSV."""
    from grutool.families.base import relabel
    from grutool.runs import spread_figure

    words = nouns(result)
    cells = result["cells_summary"]
    monitor = result["monitor"] or "monitor"
    tests = sorted(set().union(*(c["test"] for c in cells.values()))) if cells else []
    if terminal:
        tests = [k for k in tests if k == monitor] or tests[:1]
    quality = [["cell", f"val {relabel(monitor, words)}"] + ([] if terminal else ["per seed"])
               + [f"test {relabel(k, words)}" for k in tests]
               + ["params", "kernel"]]
    cost = [["cell", "s/epoch", "s to best", f"{_unit(result)}/s", "b1 ms", "b32 ms"]]
    for name, c in cells.items():
        f, kernel = c["figures"], c["kernel"]
        quality.append([name, mean_pm(f["val"])] + ([] if terminal else [", ".join(fmt(v) for v in f["val"]["values"])])
                       + [mean_pm(c["test"][k]) if k in c["test"] else "-" for k in tests]
                       + [fmt(c["parameters"]), f"{kernel['train'] or '?'} / {kernel['inference'] or '?'}"])
        cost.append([name, mean_pm(f["s_per_epoch"], 3), mean_pm(f["s_to_best"], 3), fmt(f["tokens_per_s"]["mean"], 0),
                     fmt(f["latency_1_ms"]["mean"], 3), fmt(f["latency_32_ms"]["mean"], 3)])
    # The terminal's title names the first cell ("against gru"); with more cells, each row still says whose it is.
    which = ([] if len(result["cells"]) < 3 else ["cell"]) if terminal else ["cells"]
    diffs = [["metric"] + which + ["difference", "95% CI", "ratio", "reading"]]
    for d in result["comparisons"]:
        pair = [f"{d['b']} - {d['a']}"] if which == ["cells"] else [d["b"]] if which else []
        digits = COST_DIGITS.get(d["metric"])  # seconds and milliseconds as the cost table writes them
        spread = (fmt(d["ci95"], digits) if digits is not None else spread_figure(d["diff"], d["ci95"])) \
            if d["ci95"] is not None else None
        diffs.append([_metric_label(d["metric"], result, words)] + pair
                     + [fmt(d["diff"], digits), f"± {spread}" if spread is not None else "-",
                        fmt(d["ratio"], 3) if d["ratio"] is not None else "-", d["reading"]])
    return {"quality": quality, "cost": cost, "differences": diffs}


# The cost table's figures: their names there, and the fixed decimals it writes them with (a difference of
# seconds per epoch read `-3.223e-04`, its name `s_per_epoch`, beside the cost table's `s/epoch` and 0.254).
COST_LABELS = {"s_per_epoch": "s/epoch", "s_to_best": "s to best", "latency_1_ms": "b1 ms", "latency_32_ms": "b32 ms"}
COST_DIGITS = {"s_per_epoch": 3, "s_to_best": 3, "latency_1_ms": 3, "latency_32_ms": 3, "tokens_per_s": 0}


def _metric_label(metric: str, result: dict, words: dict) -> str:
    """A compared figure's name as the tables show it: a cost as the cost table names it (`s/epoch`, the speed by
    what it counts: a forecaster's `windows/s`), a metric as eval names it (`test_mae_original`: `test mae (units)`;
    a numeric tagger's `step_accuracy`, by the task's nouns); report.json and report.csv keep the keys."""
    from grutool.families.base import relabel

    if metric == "tokens_per_s":
        return f"{_unit(result)}/s"
    if metric in COST_LABELS:
        return COST_LABELS[metric]
    name = relabel(metric, words)
    if name.endswith("_original"):  # as eval's table heads them: the MSE's units are squared
        name = name.removesuffix("_original")
        name += " (units²)" if name.endswith("mse") else " (units)"
    return name.replace("_", " ", 1) if name.startswith(("test_", "val_")) else name


def _unit(result: dict) -> str:
    return result.get("rate_unit") or "tokens"


def environment_line(result: dict) -> str:
    from grutool.bench.report import environment_lines

    return "; ".join(environment_lines({"env": result["env"]}))


def markdown(result: dict) -> str:
    def md(rows: list[list[str]]) -> str:
        esc = [[c.replace("|", "\\|") for c in row] for row in rows]
        return "\n".join(["| " + " | ".join(esc[0]) + " |", "|" + "---|" * len(esc[0])]
                         + ["| " + " | ".join(r) + " |" for r in esc[1:]]) + "\n"

    from grutool.families.base import relabel

    tables = table_rows(result)
    over = " ".join(f"--set {o}" for o in result["overrides"])
    shown = relabel(result["monitor"] or "", nouns(result))  # the key, and its name in the tables where they differ
    named = f" ({shown} below)" if shown != (result["monitor"] or "") else ""
    lines = [f"# Study: {result['config']}{' ' + over if over else ''}\n",
             f"Cells {', '.join(result['cells'])}; monitor `{result['monitor']}`{named} " + (
                 "on validation" if any(isinstance(r.get("val"), (int, float)) for r in result["runs"]) else
                 "on no validation split (each run keeps its last epoch; test figures below)")
             + f" ({result['direction']} is better); mean ± sd over seeds. "
             + (f"Runs trained {result['jobs']} at a time, {result['threads_per_run']} thread(s) each: their "
                f"timings shared the machine.\n" if result["jobs"] > 1 else "Runs trained one after another.\n"),
             "## Quality\n", md(tables["quality"]),
             "Kernel: what the recurrent layers ran in training / in inference (`compiled`: grutool's C++ "
             "kernel, `fused`: grutool's kernel in Python, `stack`: grutool's layer stack over PyTorch's op, "
             "`native`: PyTorch's module, `native-fused`: its fused cell op, `onednn` / `cudnn` / `miopen`: its "
             "fused library kernel).\n",
             "## Cost\n", "Training seconds per epoch (without validation) and to the best epoch; "
             f"{_unit(result)} per second in training; inference latency per batch of 1 and 32 (median, "
             "interleaved).\n",
             md(tables["cost"]),
             "## Differences\n", f"Each cell against {result['cells'][0]}, paired by seed (t-test on the "
             f"per-seed differences; inside the noise when p >= {ALPHA}).\n", md(tables["differences"]),
             "## Environment\n", environment_line(result) + "\n"]
    if result["missing"]:
        lines.append(f"\nNot finished (continue with --resume): {', '.join(result['missing'])}\n")
    return "\n".join(lines)


def to_csv(result: dict) -> str:
    tests = sorted(set().union(*(r["test"] for r in result["runs"]))) if result["runs"] else []
    head = ["run", "cell", "seed", "val", "epochs", "best_epoch", "s_per_epoch", "s_to_best", "tokens_per_s",
            "parameters", "latency_1_ms", "latency_32_ms", "kernel_train"]
    buffer = io.StringIO()
    w = csv.writer(buffer, lineterminator="\n")
    w.writerow(head + [f"test_{k}" for k in tests])
    for r in result["runs"]:
        w.writerow([r.get(k) for k in head] + [r["test"].get(k) for k in tests])
    return buffer.getvalue()


def plot_series(result: dict) -> dict:
    """What `plot` draws, per cell: `points` (training seconds to the best epoch, best validation metric) and
    `curves` (epoch, validation metric) of each seed. A study without a validation split has no validation
    figure: then the points are each run's TEST metric against its training seconds, and the curves its
    training loss, and `what` says so."""
    from grutool.families.base import relabel

    number = lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)
    monitor = result["monitor"] or "monitor"
    shown = relabel(monitor, nouns(result))
    validated = any(number(r.get("val")) for r in result["runs"])
    series = {}
    for cell in result["cells"]:
        mine = [r for r in result["runs"] if r["cell"] == cell]
        ys = [r.get("val") if validated else (r.get("test") or {}).get(monitor) for r in mine]
        points = [(r["s_to_best"], y) for r, y in zip(mine, ys) if number(r.get("s_to_best")) and number(y)]
        curves = [[(e, v if validated else loss) for e, _, v, loss in result["curves"].get(r["run"], [])
                   if number(v if validated else loss)] for r in mine]
        series[cell] = {"points": points, "curves": [c for c in curves if c]}
    what = ({"left": f"validation {shown}", "right": f"validation {shown}"} if validated else
            {"left": f"test {shown} (no validation split)", "right": "training loss"})
    return {"cells": series, **what}


def plot(result: dict, path: str | Path) -> str:
    """Left: each run's best validation metric against its training seconds to that epoch, one point per seed,
    one colour per cell; right: the learning curves (validation metric per epoch); without a validation split,
    the test metric and the training loss (`plot_series`). Needs matplotlib."""
    from grutool.curves import _pyplot, save_png

    fig = figure(result)
    save_png(fig, path, dpi=110)
    _pyplot().close(fig)
    return str(path)


def figure(result: dict):
    """`plot`'s matplotlib figure (not saved). The time axis starts at 0: scaled to the points alone, two runs
    3 ms apart sat in opposite corners, a difference inside the noise drawn as the whole width."""
    from grutool.curves import _pyplot

    plt = _pyplot()
    data = plot_series(result)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, (cell, s) in enumerate(data["cells"].items()):
        colour = colours[k % len(colours)]
        if s["points"]:
            left.scatter(*zip(*s["points"]), color=colour, label=cell)
        for j, curve in enumerate(s["curves"]):
            # a marker per epoch: a one-epoch run (--set train.epochs=1) is a line of one point, else invisible
            right.plot(*zip(*curve), color=colour, alpha=0.7, marker=".", label=cell if j == 0 else None)
    better = f" ({result['direction']} is better)" if result.get("direction") else ""
    left.set(xlabel="training seconds to the best epoch", ylabel=data["left"] + better, title="quality vs time")
    right.set(xlabel="epoch", ylabel=data["right"], title="learning curves")
    times = [x for s in data["cells"].values() for x, _ in s["points"]]
    if times:
        left.set_xlim(0, max(times) * 1.1 or 1)
    seeds = len({r.get("seed") for r in result["runs"]})
    named = f"{Path(result['config']).name}: " if result.get("config") else ""
    fig.suptitle(f"{named}{', '.join(result['cells'])}, {seeds} seed{'s' if seeds != 1 else ''} each", fontsize=10)
    right.xaxis.get_major_locator().set_params(integer=True)  # epochs, never 1.25
    epochs = {e for s in data["cells"].values() for curve in s["curves"] for e, _ in curve}
    if len(epochs) == 1:  # one-epoch runs: the locator would tick 0.96 ... 1.04 around it (as `plot` does)
        right.set_xticks(sorted(epochs))
    for ax in (left, right):
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # matplotlib warns about a legend with nothing in it
            ax.legend()
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    import sys

    sys.exit(_child(sys.argv[1:]))
