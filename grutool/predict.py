"""Load a trained run and predict labels for raw texts (`grutool infer`)."""

from __future__ import annotations

from pathlib import Path

import torch

from grutool import rundir
from grutool.checkpoint import load_checkpoint
from grutool.data.batching import sorted_batches
from grutool.errors import UserError
from grutool.models import build_model, model_extras
from grutool.tasks import get_task
from grutool.training.loop import resolve_device


class Predictor:
    """A run's best model on a device, ready for raw text."""

    def __init__(self, run_dir: str | Path, device: str = "auto", checkpoint: str = rundir.BEST):
        self.run = rundir.open_run(run_dir)
        self.cfg = self.run.config
        self.task = get_task(self.cfg.task)
        self.device = resolve_device(device)
        ckpt = load_checkpoint(self.run.path / checkpoint)
        self.model = build_model(self.cfg, len(self.run.vocab), len(self.run.labels),
                                 **model_extras(self.cfg, self.run))
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise UserError(f"{self.run.path / checkpoint}: weights do not fit the model in config.yaml "
                            f"({str(exc).splitlines()[0]})") from None
        self.model.to(self.device).eval()

    @torch.no_grad()
    def predict(self, texts: list[str], batch_size: int = 64, **options) -> list[dict]:
        """One dict per text, in input order: text, label, probs (label -> probability).

        An empty text (nothing left after tokenization) is encoded as an empty
        sequence: the encoder gives it a zero state, so its prediction is the
        head's prior (its bias), the same every time.

        Tagger and joint runs answer with tokens, tags and spans instead (see TaggerTask.predict),
        seq2seq runs with the generated output (Seq2SeqTask.predict; `options`: beam, attention).
        """
        if self.task.name != "classifier":
            return self.task.predict(self, texts, batch_size, **options)
        split = self.task.encode(self.cfg, self.run.vocab, self.run.labels, texts, None, chars=self.run.chars)
        labels = self.run.labels.itos
        results: list[dict] = [{} for _ in texts]
        for batch in sorted_batches(split, batch_size):
            batch = batch.to(self.device)
            logits, _ = self.model(batch.ids, batch.lengths, **batch.extra_inputs())
            probs = torch.softmax(logits.float(), dim=-1).cpu()  # (B, C)
            for row, i in zip(probs, batch.index):
                k = int(row.argmax())
                results[i] = {"text": texts[i], "label": labels[k],
                              "probs": {name: round(float(p), 6) for name, p in zip(labels, row)}}
        return results
