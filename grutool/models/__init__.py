"""Models. Each returns `(logits, loss)`; loss is None without targets."""

from __future__ import annotations

from typing import Optional

from grutool.config import Config


def build_model(cfg: Config, vocab_size: int, num_classes: int, *, tag_names: Optional[list[str]] = None,
                num_intents: int = 0, num_chars: int = 0):
    """The model a config describes, freshly initialised (same path for train, eval, shapes, bench).

    num_classes counts tags for the tagger and joint tasks and target tokens for seq2seq (vocab_size
    then counts source tokens); `tag_names` (the tag vocabulary)
    lets a CRF forbid the transitions data.scheme rules out, `num_intents` sizes the joint
    model's intent head and `num_chars` the char features.
    """
    if cfg.model.char_features and num_chars < 1:
        raise ValueError("model.char_features: build_model needs num_chars")
    if cfg.task == "classifier":
        from grutool.models.classifier import Classifier

        return Classifier.from_config(cfg.model, vocab_size, num_classes, num_chars)
    if cfg.task == "seq2seq":
        from grutool.models.seq2seq import Seq2Seq

        return Seq2Seq.from_config(cfg, vocab_size, num_classes)

    from grutool.data import schemes
    from grutool.models.tagger import Tagger

    if cfg.task == "joint" and num_intents < 1:
        raise ValueError("task joint: build_model needs num_intents")
    constraints = None
    if cfg.model.crf and tag_names is not None:
        constraints = schemes.allowed_transitions(tag_names, cfg.data.convert_to or cfg.data.scheme)
    return Tagger.from_config(cfg.model, vocab_size, num_classes, constraints, num_chars,
                              num_intents if cfg.task == "joint" else 0)


def model_extras(cfg: Config, vocabs) -> dict:
    """build_model's keyword arguments beyond the two sizes, from a task's prepared data or a saved run
    (anything with `labels`, and `intents` / `chars` when the task has them)."""
    extras: dict = {}
    if getattr(vocabs, "chars", None) is not None:
        extras["num_chars"] = len(vocabs.chars)
    if cfg.task in ("classifier", "seq2seq"):
        return extras
    extras["tag_names"] = list(vocabs.labels.itos)
    if getattr(vocabs, "intents", None) is not None:
        extras["num_intents"] = len(vocabs.intents)
    return extras
