"""Load a trained run and predict for raw texts (`grutool infer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from grutool import rundir
from grutool.arguments import check_batch_size, check_option_types, text_list
from grutool.checkpoint import load_run_weights
from grutool.errors import UserError
from grutool.families import accepting, get_task
from grutool.training.device import resolve_device


class Predictor:
    """A run's best model on a device (or its export, with `backend`), ready for raw text."""

    field: Optional[str] = None
    """The request field the inputs are entries of (`grutool serve`: `texts`): errors then name an input as
    `texts[k]`, 0-based as in the request body; None (infer, the library): each family's own wording."""

    positions: Optional[list[int]] = None
    """Each input's place in its own request, by position in the call (`grutool serve` answers several requests'
    texts in one call): errors name, and numeric sequences without an id number, an input by it, never by where
    another request's texts put it; None: its place in the call."""

    sources: Optional[list] = None
    """Where each input came from, by position, where not typed (`infer --file` of a forecaster's table: the
    file): errors name an input so rather than `input K`; None entries keep the family's wording."""

    def __init__(self, run_dir: str | Path, device: str = "auto", checkpoint: str = rundir.BEST,
                 backend: str = "torch", exported: Optional[str | Path] = None):
        """backend: torch (the checkpoint), onnx or torchscript (the file `grutool export` wrote:
        `exported`, by default <run>/model.onnx or <run>/model.pt)."""
        self.run = rundir.open_run(run_dir)
        self.cfg = self.run.config
        self.task = get_task(self.cfg.task)
        self.device = resolve_device(device, "device")
        self.backend = backend
        self.export: Optional[dict] = None  # the exported file's path and int8 flag (backend onnx, torchscript)
        if backend == "torch":
            self.model = load_run_weights(self.task.build_model(self.cfg, self.run), self.run.path / checkpoint,
                                          rundir.sizes(self.run, self.cfg))
            self.model.to(self.device).eval()
        else:
            # An exported file (grutool export) behind the model's own calls: same pre- and post-processing.
            from grutool.export import default_path, load_export

            self.device = resolve_device("cpu")
            self.model = load_export(self.run, backend, exported)
            # which file answers, said by `serve` (/info and its first line): several exports may sit in a run
            where = Path(exported) if exported is not None else default_path(self.run.path, backend)
            self.export = {"file": str(where.resolve()),  # as the server's log and clients can find it
                           "int8": bool(getattr(self.model, "meta", {}).get("int8"))}

    def predict(self, texts: list[str], batch_size: int = 64, **options) -> list[dict]:
        """One dict per text, in input order, as the run's task shapes it: a classifier answers with text,
        label, probs (label -> probability); tagger and joint runs with tokens, tags and (span schemes) spans; seq2seq
        runs with the generated output (`options`: beam, attention); lm runs with `num` samples per prompt
        (or, with `score`, each token's log-probability); forecast runs read each text as a table (csv/tsv text with a
        header) and answer with the next rows (times, columns, forecast). See each task's `predict`.

        `texts`: any iterable of str (not one str); `batch_size`: inputs per model call, an int >= 1 (`infer --batch-size`)."""
        texts = text_list(texts, self.input_name if self.field else None)
        check_batch_size(batch_size)
        unknown = sorted(set(options) - set(self.task.predict_options))
        nowhere = [name for name in unknown if not accepting(name)]  # a typo, or no option of any family
        if nowhere:
            own = ", ".join(self.task.predict_options)
            takes = (f"the options of a task {self.cfg.task} run are: {own}" if own
                     else f"a task {self.cfg.task} run takes no options")
            raise UserError(f"{', '.join(nowhere)}: not {'an option' if len(nowhere) == 1 else 'options'} of "
                            f"predict; {takes}")
        if unknown:
            raise UserError(f"{', '.join(unknown)}: for {' or '.join(accepting(*unknown)) or 'no'} runs only "
                            f"({self.run.path} is task {self.cfg.task})")
        check_option_types(options, self.task.predict_options)
        from grutool.data.loading import for_trained_run

        with for_trained_run():  # the run's data settings are fixed: a bad input's fix is the input's
            return self.task.predict(self, texts, batch_size, **options)

    def check_inputs(self, texts: list[str]) -> None:
        """The task's checks of the inputs alone (`Task.check_inputs`), as `predict` reads them: `serve` refuses a
        bad one before it joins a batch."""
        from grutool.data.loading import for_trained_run

        with for_trained_run():
            self.task.check_inputs(self, texts)

    def position(self, k: int) -> int:
        """Input `k`'s place (0-based) among the inputs its caller sent (`positions`)."""
        return self.positions[k] if self.positions and k < len(self.positions) else k

    def input_name(self, k: int, default: Optional[str] = None) -> str:
        """How an error names input `k` (0-based): `field[k]` when set, else `default` or `input K` (1-based)."""
        if self.field:
            return f"{self.field}[{self.position(k)}]"
        if self.sources and k < len(self.sources) and self.sources[k]:
            return self.sources[k]
        return default or f"input {k + 1}"

    def stream(self, **options):
        """A stateful reader: one long input fed chunk by chunk, with the same results as feeding it whole.
        Language models: `grutool.families.lm.generation.Stream` (`feed(text)` gives each token's log-probability;
        `options`: condition); unidirectional classifiers and taggers: `grutool.streaming.Stream`."""
        return self.task.open_stream(self, **options)
        unknown = sorted(set(options) - set(takes))
        if unknown:
            raise UserError(f"{', '.join(unknown)}: not {'an option' if len(unknown) == 1 else 'options'} of a task "
                            f"{self.cfg.task} stream; it takes {', '.join(takes) or 'none'}", option=unknown[0])
        return self.task.open_stream(self, **options)
