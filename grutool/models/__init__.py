"""Models. Each returns `(logits, loss)`; loss is None without targets."""

from __future__ import annotations

from grutool.config import Config


def build_model(cfg: Config, vocab_size: int, num_classes: int):
    """The model a config describes, freshly initialised (same path for train, eval, shapes, bench)."""
    from grutool.models.classifier import Classifier

    return Classifier.from_config(cfg.model, vocab_size, num_classes)
