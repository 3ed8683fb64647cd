"""The run directory: everything `train` leaves for `eval`, `infer` and `--resume`.

    <run>/config.yaml     fully resolved config (rebuilds data pipeline and model)
    <run>/vocab.json      token vocabulary
    <run>/labels.json     label vocabulary (tags for the tagger and joint tasks)
    <run>/target_vocab.json  target token vocabulary (seq2seq, instead of labels.json)
    <run>/intents.json    intent vocabulary (joint task only)
    <run>/chars.json      character vocabulary (model.char_features only)
    <run>/conditions.json condition labels (lm with data.condition_column only)
    <run>/best.pt         best model weights by the monitored metric (+ metadata)
    <run>/last.pt         latest weights + optimizer/scheduler/RNG state for --resume
    <run>/metrics.jsonl   one JSON object per epoch
    <run>/summary.json    final figures
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import yaml

from grutool.config import Config
from grutool.config_file import parse_config
from grutool.data.vocab import LabelVocab, Vocab
from grutool.errors import UserError
from grutool.tasks import get_task

CONFIG, VOCAB, LABELS = "config.yaml", "vocab.json", "labels.json"
TARGET_VOCAB = "target_vocab.json"
INTENTS, CHARS = "intents.json", "chars.json"
BEST, LAST, METRICS, SUMMARY = "best.pt", "last.pt", "metrics.jsonl", "summary.json"


def prepare_new(path: Path, overwrite: bool) -> None:
    """Create an empty run directory; refuse to touch an existing one unless asked."""
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise UserError(f"{path}: run directory exists and is not empty; pass `overwrite` to replace it, "
                            f"`resume` to continue it, or `output_dir` to choose another",
                            option=("overwrite", "resume", "output_dir"))
        if not (path / CONFIG).is_file():
            # Guard against an output_dir of "." or a home directory: only replace what looks like a run.
            raise UserError(f"{path}: exists and is not a grutool run directory (no {CONFIG}); "
                            f"refusing to delete it, choose another `output_dir`", option="output_dir")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


@dataclass
class SavedRun:
    path: Path
    config: Config
    vocab: Vocab
    labels: Optional[LabelVocab | Vocab] = None  # seq2seq: the target Vocab; lm: none (it predicts `vocab`)
    intents: Optional[LabelVocab] = None  # joint task
    chars: Optional[Vocab] = None         # model.char_features
    conditions: Optional[LabelVocab] = None  # lm with data.condition_column


def save_vocabularies(path: Path, prepared, cfg: Config) -> None:
    """vocab.json and the vocabularies the task names (grutool.tasks.base.Task.vocabularies)."""
    prepared.vocab.save(path / VOCAB)
    for name, (filename, _) in get_task(cfg.task).vocabularies(cfg).items():
        getattr(prepared, name).save(path / filename)


def open_run(path: str | Path) -> SavedRun:
    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: run directory not found; train one with `grutool train CONFIG`")
    for name in (CONFIG, VOCAB):
        if not (path / name).is_file():
            raise UserError(f"{path}: not a complete run directory (missing {name})")
    try:
        raw = yaml.safe_load((path / CONFIG).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: run files are unreadable ({exc})") from None
    cfg = parse_config(raw, str(path / CONFIG))
    files = {"vocab": (VOCAB, Vocab), **get_task(cfg.task).vocabularies(cfg)}
    for filename, _ in files.values():
        if not (path / filename).is_file():
            raise UserError(f"{path}: not a complete run directory (missing {filename})")
    try:
        vocabs = {name: kind.load(path / filename) for name, (filename, kind) in files.items()}
    except (ValueError, KeyError) as exc:
        raise UserError(f"{path}: run files are unreadable ({exc})") from None
    return SavedRun(path, cfg, **vocabs)


def run_task(path: str | Path):
    """The task of a saved run (what renders its results)."""
    return get_task(open_run(path).config.task)
