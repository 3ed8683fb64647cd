"""The memory check's parameter count (built on the meta device, initialisers skipped)."""

import pytest
import torch

from grutool.config_file import load_config
from grutool.families import get_task
from grutool.training.memory import count_on_meta


@pytest.mark.parametrize("name,overrides", [
    ("sentiment", {}), ("sentiment", {"char_features": True}), ("tagging", {}), ("atis", {}),
    ("reverse", {}), ("lm", {}), ("lm", {"adaptive_cutoffs": [50, 200]}),
])
def test_count_on_meta_equals_the_built_model(name, overrides):
    cfg = load_config(f"configs/{name}.yaml")
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update=overrides)})
    task = get_task(cfg.task)
    vocabs, _ = task.synthetic(cfg, [3, 5], 500, 7, torch.Generator().manual_seed(0),
                               num_chars=30 if cfg.model.char_features else 0)
    torch.manual_seed(0)
    model = task.build_model(cfg, vocabs)
    assert count_on_meta(task, cfg, vocabs) == sum(p.numel() for p in model.parameters())
