"""The run directory: everything `train` leaves for `eval`, `infer` and `--resume`.

    <run>/config.yaml     fully resolved config (rebuilds data pipeline and model)
    <run>/vocab.json      token vocabulary
    <run>/labels.json     label vocabulary (tags for the tagger and joint tasks)
    <run>/target_vocab.json  target token vocabulary (seq2seq, instead of labels.json)
    <run>/intents.json    intent vocabulary (joint task only)
    <run>/chars.json      character vocabulary (model.char_features only)
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

from grutool.config import Config, parse_config
from grutool.data.vocab import LabelVocab, Vocab
from grutool.errors import UserError

CONFIG, VOCAB, LABELS = "config.yaml", "vocab.json", "labels.json"
TARGET_VOCAB = "target_vocab.json"
INTENTS, CHARS = "intents.json", "chars.json"
BEST, LAST, METRICS, SUMMARY = "best.pt", "last.pt", "metrics.jsonl", "summary.json"


def prepare_new(path: Path, overwrite: bool) -> None:
    """Create an empty run directory; refuse to touch an existing one unless asked."""
    if path.exists() and any(path.iterdir()):
        if not overwrite:
            raise UserError(f"{path}: run directory exists and is not empty; pass --overwrite to replace it, "
                            f"--resume to continue it, or --output-dir to choose another")
        if not (path / CONFIG).is_file():
            # Guard against `--output-dir .` or a home directory: only replace what looks like a run.
            raise UserError(f"{path}: exists and is not a grutool run directory (no {CONFIG}); "
                            f"refusing to delete it, choose another --output-dir")
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)


def labels_file(task: str) -> str:
    """Where a task's output vocabulary lives: seq2seq writes target tokens, the others labels or tags."""
    return TARGET_VOCAB if task == "seq2seq" else LABELS


@dataclass
class SavedRun:
    path: Path
    config: Config
    vocab: Vocab
    labels: LabelVocab | Vocab  # seq2seq: the target Vocab
    intents: Optional[LabelVocab] = None  # joint task
    chars: Optional[Vocab] = None         # model.char_features


def vocab_extras(vocabs) -> dict:
    """The optional vocabularies (`intents`, `chars`) a prepared dataset or saved run carries: {} for a classifier."""
    return {name: getattr(vocabs, name) for name in ("intents", "chars") if getattr(vocabs, name, None) is not None}


def save_vocabularies(path: Path, prepared, task: str = "classifier") -> None:
    prepared.vocab.save(path / VOCAB)
    prepared.labels.save(path / labels_file(task))
    extras = vocab_extras(prepared)
    if "intents" in extras:
        extras["intents"].save(path / INTENTS)
    if "chars" in extras:
        extras["chars"].save(path / CHARS)


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
    labels_name = labels_file(cfg.task)
    if not (path / labels_name).is_file():
        raise UserError(f"{path}: not a complete run directory (missing {labels_name})")
    try:
        vocab = Vocab.load(path / VOCAB)
        labels = (Vocab if cfg.task == "seq2seq" else LabelVocab).load(path / labels_name)
    except (ValueError, KeyError) as exc:
        raise UserError(f"{path}: run files are unreadable ({exc})") from None
    needed = {"intents": (INTENTS, LabelVocab, cfg.task == "joint"), "chars": (CHARS, Vocab, cfg.model.char_features)}
    extras = {}
    for name, (filename, kind, wanted) in needed.items():
        if wanted:
            if not (path / filename).is_file():
                raise UserError(f"{path}: not a complete run directory (missing {filename})")
            try:
                extras[name] = kind.load(path / filename)
            except (ValueError, KeyError) as exc:
                raise UserError(f"{path}: run files are unreadable ({exc})") from None
    return SavedRun(path, cfg, vocab, labels, **extras)
