"""Load a trained run and predict for raw texts (`grutool infer`)."""

from __future__ import annotations

from pathlib import Path

from grutool import rundir
from grutool.checkpoint import load_checkpoint
from grutool.errors import UserError
from grutool.tasks import accepting, get_task
from grutool.training.device import resolve_device


class Predictor:
    """A run's best model on a device, ready for raw text."""

    def __init__(self, run_dir: str | Path, device: str = "auto", checkpoint: str = rundir.BEST):
        self.run = rundir.open_run(run_dir)
        self.cfg = self.run.config
        self.task = get_task(self.cfg.task)
        self.device = resolve_device(device)
        ckpt = load_checkpoint(self.run.path / checkpoint)
        self.model = self.task.build_model(self.cfg, self.run)
        try:
            self.model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise UserError(f"{self.run.path / checkpoint}: weights do not fit the model in config.yaml "
                            f"({str(exc).splitlines()[0]})") from None
        self.model.to(self.device).eval()

    def predict(self, texts: list[str], batch_size: int = 64, **options) -> list[dict]:
        """One dict per text, in input order, as the run's task shapes it: a classifier answers with text,
        label, probs (label -> probability); tagger and joint runs with tokens, tags and spans; seq2seq
        runs with the generated output (`options`: beam, attention); lm runs with `num` samples per prompt
        (or, with `score`, each token's log-probability). See each task's `predict`."""
        unknown = sorted(set(options) - set(self.task.predict_options))
        if unknown:
            raise UserError(f"{', '.join(unknown)}: for {' or '.join(accepting(*unknown)) or 'no'} runs only "
                            f"({self.run.path} is task {self.cfg.task})")
        return self.task.predict(self, texts, batch_size, **options)

    def stream(self, **options):
        """A stateful reader (language models, `grutool.generation.Stream`): `feed(text)` returns each token's
        log-probability given everything fed before, so a long text can be fed in chunks; `options`: condition."""
        return self.task.open_stream(self, **options)
