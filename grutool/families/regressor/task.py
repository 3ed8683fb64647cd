"""Regression (N -> 1 real value) on numeric sequences: a .ts file with `@targetLabel true`, or a long table whose
data.label_column holds each sequence's target (see grutool.data.numeric).

The target is standardised like the channels: a one-column Standardizer fitted on the training targets, saved as
`target.json` (it is the run's `labels`), so the model learns z-scores and eval, infer and serve report values in
the target's own units.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from grutool.errors import UserError, clipped
from grutool.families.base import Prepared, Task
from grutool.families.rules import TEXT_ONLY, check_numeric, check_one_path_per_split, is_numeric

if TYPE_CHECKING:
    from grutool.config import Config
    from grutool.data.batching import EncodedSplit
    from grutool.data.numeric import Sequences
    from grutool.data.scaling import Standardizer


class RegressorTask(Task):
    name = "regressor"
    monitors = ("rmse", "mae", "mse", "r2", "loss")
    owns = {"model": ("loss", "huber_delta", "pooling", "input_noise", "input_offset_noise", "input_deltas"),
            "data": ("per_step", "split_seed")}
    # Numbers only: none of the text settings apply.
    ignores = {"data": (*TEXT_ONLY["data"], "tag_column", "scheme"), "model": TEXT_ONLY["model"],
               "train": TEXT_ONLY["train"]}
    outputs = "targets"
    model_outputs = "predictions"  # values, not scores to softmax (`shapes` names them so)
    renderer = "regressor"
    exporter = "regressor"
    example = {"data": {"train": "data/numeric/train.csv", "validation": "data/numeric/validation.csv",
                        "test": "data/numeric/test.csv", "channels": ["a", "b"], "id_column": "id",
                        "time_column": "step", "label_column": "freq"},
               "model": {"embedding_dim": 16, "hidden_size": 16, "pooling": "mean"}}
    inputs = {"numeric": example}

    # --- config -------------------------------------------------------------------------------

    def check_task(self, cfg: Config) -> None:
        if not is_numeric(cfg):
            raise ValueError("data.train: task regressor reads numeric sequences: a .ts file with @targetLabel "
                             "true, or a csv/tsv/parquet table with data.channels")
        check_numeric(cfg, reads_text=False)
        check_one_path_per_split(cfg)

    def traces_real(self, cfg: Config) -> bool:
        return True

    def train_file(self, cfg: Config) -> Optional[str]:
        from grutool.data.slices import split_slice

        return split_slice(cfg.data.train)[0]

    # --- data ---------------------------------------------------------------------------------

    def read(self, cfg: Config, source: str, need_targets: bool = True) -> tuple["Sequences", Any]:
        """Sequences and their targets: (N,) float64, or with data.per_step a (T_i,) array each (None without
        `need_targets`)."""
        import numpy as np

        from grutool.data.numeric import is_ts, read_sequences
        from grutool.data.tables import read_number

        seqs = read_sequences(cfg.data, source, need_targets, per_step=cfg.data.per_step)
        if not need_targets:
            return seqs, None
        # A .ts file has no columns: its targets follow each case's last ':'. One whose values are no numbers at
        # all declares @classLabel (with @targetLabel true the reader refuses them): class labels, not targets.
        ts = is_ts(cfg.data, source)

        def number(label: str, where: str, seq_id: str) -> float:
            try:
                value = read_number(label)
            except ValueError:
                value = None
            if value is not None and np.isfinite(value):
                return value
            said = f"{where}: the target of sequence {clipped(seq_id, 40)!r} is {clipped(label, 40)!r}"
            if not ts:
                raise UserError(f"{said}, not a number (column '{cfg.data.label_column}'); a regressor's target is "
                                f"a finite number")
            if value is not None:
                raise UserError(f"{said} (after the case's last ':'), not a finite number; a regressor's target is "
                                f"a finite number")
            raise UserError(f"{said}, a class label: the file's @classLabel line declares class labels after each "
                            f"case's last ':'; a regressor reads a .ts file with @targetLabel true and a number "
                            f"there (or train task {'tagger' if cfg.data.per_step else 'classifier'} on this one)")

        if cfg.data.per_step:
            return seqs, [np.asarray([number(v, where, i) for v in labels], dtype=np.float64)
                          for labels, where, i in zip(seqs.labels, seqs.where, seqs.ids)]
        return seqs, np.asarray([number(v, w, i) for v, w, i in zip(seqs.labels, seqs.where, seqs.ids)],
                                dtype=np.float64)

    def encode(self, scaler: "Standardizer", target: "Standardizer", seqs: "Sequences", y,
               named: bool = False) -> "EncodedSplit":
        """`named`: the target is a table's column (its name is the target scaler's); a .ts file's has none."""
        import torch

        from grutool.data.batching import EncodedSplit
        from grutool.data.numeric import check_channels, tensors

        check_channels(scaler, seqs)
        split = EncodedSplit(tensors(seqs, scaler), None, list(seqs.ids))
        if isinstance(y, list):  # a target per step: each (T_i,) z-scores
            split.targets = [torch.tensor(target.transform(t[:, None])[:, 0], dtype=torch.float32) for t in y]
        elif y is not None:
            split.targets = torch.tensor(target.transform(y[:, None])[:, 0], dtype=torch.float32)  # (N,) z-scores
        split.target_scale = (target.mean[0], target.std[0])
        split.target_name = target.names[0] if named else None
        return split

    def prepare(self, cfg: Config, saved: Any = None) -> Prepared:
        import numpy as np

        from grutool.data.numeric import fit_scaler
        from grutool.data.scaling import Standardizer
        from grutool.data.vocab import Vocab

        seqs, y = self.read(cfg, cfg.data.train)
        scaler = saved.extra["scaler"] if saved else fit_scaler(seqs)  # train only; --resume keeps the saved one
        rows = np.concatenate(y) if isinstance(y, list) else y  # every step's target, or every sequence's
        target = saved.labels if saved else Standardizer.fit([cfg.data.label_column], rows[:, None])
        prepared = Prepared(saved.vocab if saved else Vocab.from_counts({}), target, extra={"scaler": scaler})
        prepared.splits["train"] = self.encode(scaler, target, seqs, y, cfg.data.channels is not None)
        self.encode_evaluation_splits(cfg, prepared)
        return prepared

    def figures_note(self, cfg: Config, prepared: Prepared) -> Optional[str]:
        # The loss (and so `val loss`) is on z-scores, rmse and mae in the target's units: an rmse beside a loss
        # whose square root it is not read as two scales, without a word on which is which.
        target = prepared.labels
        name = f"target {target.names[0]!r}" if cfg.data.channels else "target"
        return (f"{name}: mean {target.mean[0]:.4g}, sd {target.std[0]:.4g}; the loss is on its z-scores, "
                f"rmse and mae in its units (mse in their square)")

    def encode_split(self, cfg: Config, vocabs: Any, source: str, name: str) -> EncodedSplit:
        seqs, y = self.read(cfg, source)
        return self.encode(vocabs.extra["scaler"], vocabs.labels, seqs, y, cfg.data.channels is not None)

    def vocabularies(self, cfg: Config) -> dict[str, tuple[str, type]]:
        from grutool.data.scaling import Standardizer

        return {"labels": ("target.json", Standardizer), "scaler": ("scaler.json", Standardizer)}

    def synthetic(self, cfg: Config, lengths: list[int], vocab_size: int, num_classes: int, generator,
                  num_chars: int = 0) -> tuple[Prepared, EncodedSplit]:
        """Standard-normal values per step (grutool.data.numeric.synthetic) and a standard-normal target each."""
        import torch

        from grutool.data.batching import EncodedSplit
        from grutool.data.numeric import synthetic as values
        from grutool.data.scaling import Standardizer
        from grutool.data.vocab import Vocab

        scaler, ids = values(cfg.data, lengths, generator)
        vocabs = Prepared(Vocab.from_counts({}), Standardizer(["target"], [0.0], [1.0]), extra={"scaler": scaler})
        targets = ([torch.randn(len(x), generator=generator) for x in ids] if cfg.data.per_step
                   else torch.randn(len(lengths), generator=generator))
        split = EncodedSplit(ids, targets, [""] * len(lengths))
        split.target_scale = (0.0, 1.0)
        return vocabs, split

    # --- model --------------------------------------------------------------------------------

    def build_model(self, cfg: Config, vocabs: Any):
        from grutool.families.regressor.model import Regressor

        return Regressor.from_config(cfg, channels=len(vocabs.extra["scaler"]))

    def metrics(self, split: EncodedSplit):
        from grutool.families.regressor.metrics import RegressionMetrics

        return RegressionMetrics(split.target_scale or (0.0, 1.0), split.target_name)

    # --- prediction ---------------------------------------------------------------------------

    def served_labels(self, run) -> Optional[list[str]]:
        return None

    def served_vocabularies(self, run) -> dict[str, Any]:
        return {"target": run.labels.to_dict(), "scaler": run.extra["scaler"].to_dict()}

    def infer_batch(self, model, batch, **options):
        pred, _ = model(batch.ids, batch.lengths)
        return pred.float().cpu()  # (B,) z-scores; per step (B, T)

    def read_inputs(self, cfg: Config, source: str, vocabs: Any = None) -> list[str]:
        """Each sequence of a .ts file or long table as `id<TAB>values` (grutool.data.numeric.format_text); a
        table for a run trained on .ts files by the channel names of its scaler (grutool.data.numeric)."""
        from grutool.data.numeric import as_texts, read_inputs, saved_scaler

        return as_texts(read_inputs(cfg.data, source, saved_scaler(vocabs)))

    def parse(self, predictor, texts: list[str]) -> tuple[list[str], EncodedSplit]:
        from grutool.data.batching import EncodedSplit
        from grutool.data.numeric import from_texts

        ids, values = from_texts(texts, predictor.run.extra["scaler"], predictor.cfg.data.missing,
                                 predictor.input_name, predictor.position)
        return ids, EncodedSplit(values, None, ids)

    def check_inputs(self, predictor, texts: list[str]) -> None:
        self.parse(predictor, texts)

    def predict(self, predictor, texts: list[str], batch_size: int = 64, **options) -> list[dict]:
        """One dict per sequence, in input order: id, prediction (in the target's units); with data.per_step,
        id and predictions (one per step)."""
        import torch

        from grutool.data.batching import sorted_batches
        from grutool.jsonsafe import float32_values

        ids, split = self.parse(predictor, texts)
        target = predictor.run.labels
        results: list[dict] = [{} for _ in texts]
        with torch.no_grad():
            for batch in sorted_batches(split, batch_size):
                z = self.infer_batch(predictor.model, batch.to(predictor.device))  # (B,) or (B, T)
                values = float32_values(z.numpy(), target.mean[0], target.std[0])  # in units, float32's digits
                for row, i in enumerate(batch.index):
                    if z.dim() == 2:
                        n = int(batch.lengths[row])
                        results[i] = {"id": ids[i], "predictions": values[row][:n]}
                    else:
                        results[i] = {"id": ids[i], "prediction": values[row]}
        return results
