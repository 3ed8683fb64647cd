"""Models, one module per family. Each returns `(logits, loss)` (loss is None without targets) and is
built by its task (`grutool.families`) through `from_config(cfg, *, vocab_size, num_outputs, ...)`."""


def count_parameters(model) -> int:
    """All parameters of a model, trainable or frozen."""
    return sum(p.numel() for p in model.parameters())
