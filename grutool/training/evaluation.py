"""A model's metrics on a labelled split: the one evaluation pass `train`, `eval` and the callbacks share."""

from __future__ import annotations

import torch

from grutool.data.batching import EncodedSplit, sorted_batches


@torch.no_grad()
def evaluate_split(model, task, split: EncodedSplit, device: torch.device, batch_size: int) -> dict:
    """Metrics of `model` on a labelled split (eval mode, no gradients), as the task scores them."""
    was_training = model.training
    model.eval()
    metrics = task.metrics(split)
    state = None
    for batch in sorted_batches(split, batch_size):
        batch = batch.to(device)
        inputs = batch.extra_inputs()
        if split.carries_state:
            inputs["state"] = state  # a stream's batches continue each other (see EncodedSplit.streams)
        logits, loss = model(batch.ids, batch.lengths, batch.targets, **inputs)
        if split.carries_state:
            state = logits.state
        metrics.update(logits, batch.targets, float(loss))
    model.train(was_training)
    return metrics.compute()
