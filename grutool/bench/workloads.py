"""What one bench row runs: a recurrent layer, or a configured model's real train step and inference.

Layer rows run grutool's `RecurrentEncoder` (the one place that packs) with the row's kernel: `padded`
rows call its recurrent layer (from `grutool.cells`) on the dense batch directly, `packed`
and `bucketed` rows go through the encoder's packing path as training does.
`train` = forward + backward of the layer (no optimizer; that belongs to the
model rows).

Model rows (`--config`) build the model with its task (`Task.synthetic`, `Task.build_model`) and time
`Trainer.step`, the production train step (collate, forward, loss, backward,
clipping, optimizer, schedule, AMP on CUDA), and the body of
`Predictor.predict` (collate, forward under no_grad, `Task.infer_batch`), on synthetic
batches of the config's shape.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, ContextManager, Optional

import torch

from grutool.bench import env
from grutool.bench.grid import Spec
from grutool.cells import CELLS
from grutool.config import Config
from grutool.data.batching import bucketed_order, sorted_batches
from grutool.data.synthetic import SYNTHETIC_CHARS, spell  # noqa: F401  (spell: re-exported for tests)
from grutool.models import count_parameters
from grutool.modules.encoder import RecurrentEncoder
from grutool.families import get_task
from grutool.inputs import is_prefix
from grutool.training import memory
from grutool.training.loop import Trainer

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class Workload:
    spec: Spec
    fn: Callable[[], object]                # one call = one batch
    context: Callable[[], ContextManager]   # kernel flags, entered around every sample
    params: int                             # trainable and frozen parameters
    tokens: int                             # real (non-padding) tokens per call, or `unit`s
    unit: str = "tokens"                    # what `tokens` counts: tokens, or a family's examples (windows)


def batch_lengths(kind: str, batch_size: int, seq_len: int, generator: torch.Generator) -> torch.Tensor:
    """(B,) lengths, the longest exactly `seq_len`.

    padded and equal (a family whose examples all have one length): all `seq_len`. packed: uniform in
    1..seq_len, as a shuffled batch of varied texts. bucketed: the batch holding the longest sequence when
    grutool's bucketed sampler cuts a pool of such lengths (similar lengths, little shrinkage).
    """
    if kind in ("padded", "equal"):
        return torch.full((batch_size,), seq_len, dtype=torch.long)
    if kind == "packed":
        lengths = torch.randint(1, seq_len + 1, (batch_size,), generator=generator)
        lengths[0] = seq_len
        return lengths
    pool = torch.randint(1, seq_len + 1, (batch_size * 50,), generator=generator)
    pool[0] = seq_len
    batches = bucketed_order(pool.tolist(), batch_size, generator)
    longest = next(b for b in batches if 0 in b)
    return pool[longest].sort(descending=True).values


def _kernels(choice: str, device: torch.device) -> Callable[[], ContextManager]:
    return functools.partial(env.kernels, choice, device)


def check_fits(spec: Spec, cfg: Optional[Config] = None, counts: Optional[dict] = None) -> None:
    """A UserError, before anything is allocated, for a row whose weights and batch cannot fit in its
    device's free memory (grutool.training.memory; parameters counted on the meta device). `counts`: as
    `model` takes them."""
    train, gates = spec.mode == "train", CELLS[spec.cell].gates
    width = 2 if spec.dtype.startswith(("float16", "bfloat16")) else 4  # bytes per activation
    if cfg is None:
        with torch.device("meta"):
            enc = RecurrentEncoder(spec.input_size, spec.hidden_size, spec.num_layers, spec.bidirectional,
                                   0.0, spec.cell, kernel={"default": "auto"}.get(spec.kernels, spec.kernels))
        parameters = count_parameters(enc)
        weights = parameters * width * (2 if train else 1)  # and a gradient each when training
    else:
        task = get_task(cfg.task)
        vocabs, _ = task.synthetic(cfg, [1], spec.vocab_size, spec.num_classes, torch.Generator(),
                                   **synthetic_counts(cfg, counts))
        parameters = memory.count_on_meta(task, cfg, vocabs)
        weights = memory.training_bytes(cfg, parameters) if train else parameters * 4
    values = memory.activation_values(spec.batch_size, spec.seq_len, spec.input_size, spec.hidden_size,
                                      spec.num_layers, spec.bidirectional, gates, train)
    s = spec
    memory.check_run_fits(
        f"bench row {s.cell} {s.mode} B={s.batch_size} T={s.seq_len} I={s.input_size} H={s.hidden_size} "
        f"L={s.num_layers}{' bi' if s.bidirectional else ''} ({parameters:,} parameters)", weights, values * width,
        torch.device(s.device), f"lower --batch ({s.batch_size}), --seq-len ({s.seq_len}), --hidden-size "
        f"({s.hidden_size}), --input-size ({s.input_size}) or --layers ({s.num_layers})")


# --- layer rows -------------------------------------------------------------------


def layer(spec: Spec, seed: int = 0) -> Workload:
    device, dtype = torch.device(spec.device), DTYPES[spec.dtype]
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    kernel = {"default": "auto"}.get(spec.kernels, spec.kernels)
    enc = RecurrentEncoder(spec.input_size, spec.hidden_size, spec.num_layers, spec.bidirectional,
                           0.0, spec.cell, kernel=kernel).to(device, dtype)
    lengths = batch_lengths(spec.lengths, spec.batch_size, spec.seq_len, g)  # (B,) on CPU
    x = torch.randn(spec.batch_size, spec.seq_len, spec.input_size, generator=g).to(device, dtype)  # (B, T, I)

    def forward():
        if spec.lengths == "padded":
            return enc.rnn(x)[0]  # (B, T, D*H): padding, if any, would enter the recurrence
        return enc(x, lengths).outputs  # (B, T, D*H) through pack/unpack

    if spec.mode == "infer":
        enc.eval()

        def fn():
            with torch.no_grad():
                return forward()
    else:
        enc.train()
        x.requires_grad_(True)  # as an embedding output is: backward computes the input gradient too

        def fn():
            enc.zero_grad(set_to_none=True)
            x.grad = None
            forward().sum().backward()

    return Workload(spec, fn, _kernels(spec.kernels, device), count_parameters(enc), int(lengths.sum()))


# --- model rows -------------------------------------------------------------------


def data_sizes(cfg: Config, vocab_size: Optional[int], num_classes: Optional[int]
               ) -> tuple[int, int, str, dict, int]:
    """Vocabulary size and class count as `train` would get them: from the data when its files are
    readable (the task's own `prepare` of the training split alone), else the given values or 20,000 and 2.
    Third item: the source; fourth: the task's other sizes read from the data (`Task.synthetic_sizes`),
    keywords for `synthetic`;
    fifth: the time steps of the longest example (`Task.synthetic_length`, from the data when it was read)."""
    d = cfg.data
    task = get_task(cfg.task)
    path = task.train_file(cfg)
    # A file, a folder (format parallel, text_dir) or a file-name prefix (parallel_text: train -> train.de, .en).
    readable = path is not None and (Path(path).exists() or is_prefix(Path(path)))
    if readable and (vocab_size is None or num_classes is None):
        # The training split alone sizes the model, as in `train`: the validation and test files stay unread, so
        # their warnings (tags or intents never seen in training) stay out of a timing run; train's own remain.
        prepared = task.prepare(cfg.model_copy(update={"data": d.model_copy(update={"validation": None,
                                                                                     "test": None})}))
        sizes = task.synthetic_sizes(cfg, prepared)
        vocab, classes = sizes.pop("vocab_size"), sizes.pop("num_classes")
        return vocab_size or vocab, num_classes or classes, d.train, sizes, task.synthetic_length(cfg, prepared)
    return vocab_size or 20_000, num_classes or 2, "defaults", {}, task.synthetic_length(cfg)


def assumed_sizes(cfg: Config, vocab_size: int, num_classes: int) -> dict[str, int]:
    """Where the data was not read: the other sizes the model takes from the data, as `synthetic` makes them up
    (model.char_features: SYNTHETIC_CHARS characters; joint: as many intents as tags; a forecaster's series
    embedding: one series), by `Task.synthetic_sizes`' keywords; only those the config uses."""
    task = get_task(cfg.task)
    vocabs, _ = task.synthetic(cfg, [1], vocab_size, num_classes, torch.Generator(), **synthetic_counts(cfg, None))
    sizes = task.synthetic_sizes(cfg, vocabs)
    return {k: v for k, v in sizes.items() if k not in ("vocab_size", "num_classes")}


def synthetic_counts(cfg: Config, counts: Optional[dict]) -> dict:
    """`Task.synthetic`'s keywords: the sizes read from the data, and with model.char_features a character
    vocabulary of SYNTHETIC_CHARS where the data was not read."""
    chars = {"num_chars": SYNTHETIC_CHARS} if cfg.model.char_features else {}
    return {**chars, **(counts or {})}


def model(spec: Spec, cfg: Config, seed: int = 0, counts: Optional[dict] = None) -> Workload:
    """The configured model (cfg already carries this row's cell and sizes) on one synthetic batch.
    `counts`: the task's other sizes read from the data (`data_sizes`' fourth item), so that the model is
    train's."""
    device = torch.device(spec.device)
    g = torch.Generator().manual_seed(seed)
    lengths = batch_lengths(spec.lengths, spec.batch_size, spec.seq_len, g)
    task = get_task(cfg.task)
    vocabs, split = task.synthetic(cfg, lengths, spec.vocab_size, spec.num_classes, g,
                                   **synthetic_counts(cfg, counts))
    torch.manual_seed(seed)
    net = task.build_model(cfg, vocabs)
    params = count_parameters(net)
    index = list(range(spec.batch_size))
    if spec.mode == "train":
        # The production step itself: Trainer.step collates `index` from the train split.
        trainer = Trainer(cfg, task, SimpleNamespace(splits={"train": split}), net,
                          Path("."), device, callbacks=[])
        trainer.model.train()

        def fn():
            return trainer.step(index)
    else:
        net.to(device).eval()

        def fn():
            # Predictor.predict's per-batch body (without building the result dicts).
            with torch.no_grad():
                batch = next(sorted_batches(split, spec.batch_size)).to(device)
                return task.infer_batch(net, batch)

    return Workload(spec, fn, _kernels(spec.kernels, device), params, task.throughput_items(lengths.tolist()),
                    task.throughput_name(cfg))
