"""What every family's model shares: `base.Model` and `count_parameters`. Each family's model lives in its folder
(`grutool/families/<name>/model.py`), returns `(logits, loss)` (loss is None without targets) and is built by its
task through `from_config(cfg, *, vocab_size, num_outputs, ...)`, which builds its parts (front-end, encoder) once."""


def count_parameters(model) -> int:
    """All parameters of a model, trainable or frozen."""
    return sum(p.numel() for p in model.parameters())
