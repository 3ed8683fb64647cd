"""Numericalised splits and the batches the models eat.

A split is encoded once (one id tensor per example, or a `Ragged`: one flat tensor whose
rows are the examples); an epoch is then a list of index batches. Bucketing puts examples of similar length in one batch so that
packed sequences waste little work on padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

import torch
from torch.nn.utils.rnn import pad_sequence

from grutool.data.ragged import Ragged


@dataclass
class EncodedSplit:
    """Examples as id tensors; `targets` holds one label id per example (or per token).

    Tagging adds optional fields, all None for the classifier: `chars` (model inputs
    beside the ids), `intents` (a second target per example: batches then carry
    targets as a dict, see `collate`) and `scheme` (how metrics read spans from tags).
    Seq2seq targets are target ids ending in <eos>; an evaluation split adds `references`
    (then batches carry targets as {"tokens", "example"}, so metrics know which example each row is).
    """

    ids: "list[torch.Tensor] | Ragged"     # each (T_i,) long; numeric sequences: each (T_i, C) float
    targets: Optional["list[torch.Tensor] | torch.Tensor"]  # each () or (T_i,) long, or one (N,) long tensor
                                                            # (one label per example); None when unlabelled
    texts: list[str]
    label_names: Optional[list[str]] = None  # names of target ids: the model's labels, then unseen ones
    chars: Optional[list[torch.Tensor]] = None    # each (T_i, W_i) long: char ids of each token, 0-padded
    intents: Optional[list[torch.Tensor]] = None  # each () long: the sentence's intent id (joint task)
    intent_names: Optional[list[str]] = None      # names of intent ids: the model's, then unseen ones
    scheme: Optional[str] = None                  # tag scheme of the targets (tagging)
    references: Optional["References"] = None     # seq2seq evaluation: what outputs are scored against
    conditions: Optional[list[torch.Tensor]] = None  # each () long: an input id acting on every step (lm)
    target_scale: Optional[tuple[float, float]] = None
    """Real-valued targets (regressor): the (mean, std) that turn the targets' z-scores back into their units."""
    target_name: Optional[str] = None
    """Real-valued targets read from a table: the column's name (eval --plot names its axes after it)."""
    streams: Optional[int] = None
    """Set for a split that is `streams` parallel rows of one long text cut into consecutive chunks, laid out
    chunk-major (example k * streams + r is chunk k of row r): its batches are taken in order, `streams` at
    a time, and each batch continues the previous one row by row (see `training_batches`, `carries_state`)."""
    inputs: Optional[dict[str, "Sequence[torch.Tensor]"]] = None
    """Further model inputs by keyword, one equal-shaped tensor per example each (a forecast's covariates):
    `collate` stacks them into `Batch.inputs`, and the model takes them as keyword arguments."""

    @property
    def carries_state(self) -> bool:
        """Whether a model's final state after one batch is the initial state of the next (truncated BPTT)."""
        return self.streams is not None

    def __len__(self) -> int:
        return len(self.ids)

    def lengths(self) -> list[int]:
        if isinstance(self.ids, Ragged):
            return self.ids.lengths()  # without making a view of each row
        return [len(x) for x in self.ids]


@dataclass
class References:
    """Seq2seq evaluation: each example's reference, whole (never truncated, no <unk>)."""

    tokens: list[list[str]]              # target tokens, as the target tokenizer splits them
    texts: list[str]                     # target text as written (lower-cased with data.target_lowercase)
    tokenizer: str                       # the target tokenizer, to write output tokens back as text
    groups: Optional[list[int]] = None   # dictionaries: the examples of one word share a group id


@dataclass
class Batch:
    ids: torch.Tensor                # (B, T) long, padded with 0
    lengths: torch.Tensor            # (B,) long, always on CPU (pack_padded_sequence wants it there)
    targets: Optional[torch.Tensor | dict]  # (B,) or (B, T) long; joint: {"tags": (B, T), "intent": (B,)};
                                            # seq2seq eval: {"tokens": (B, M), "example": (B,)}
    index: list[int]                 # positions of these examples in their split
    chars: Optional[torch.Tensor] = None  # (B, T, W) long char ids per token, 0-padded (char features)
    condition: Optional[torch.Tensor] = None  # (B,) long: each example's condition id (lm)
    inputs: Optional[dict[str, torch.Tensor]] = None  # keyword -> (B, ...): EncodedSplit.inputs, stacked

    def to(self, device: torch.device) -> "Batch":
        def move(x):
            if isinstance(x, dict):
                return {k: v.to(device, non_blocking=True) for k, v in x.items()}
            return x.to(device, non_blocking=True) if x is not None else None

        return Batch(move(self.ids), self.lengths, move(self.targets), self.index, move(self.chars),
                     move(self.condition), move(self.inputs))

    def extra_inputs(self) -> dict:
        """Model inputs beyond (ids, lengths, targets), as keyword arguments: {} without char features
        conditions or further inputs."""
        extra = {"chars": self.chars} if self.chars is not None else {}
        if self.condition is not None:
            extra["condition"] = self.condition
        return {**extra, **(self.inputs or {})}

    def num_tokens(self) -> int:
        return int(self.lengths.sum())


def collate(split: EncodedSplit, index: list[int], pad_target: int = -100) -> Batch:
    rows = [split.ids[i] for i in index]
    sizes = [len(r) for r in rows]
    # Equal lengths (most training batches, see bucketed_order) need no padding: stack is ~10x cheaper.
    equal = min(sizes) == max(sizes)
    ids = torch.stack(rows) if equal else pad_sequence(rows, batch_first=True, padding_value=0)  # (B, T)
    lengths = torch.tensor(sizes, dtype=torch.long)
    targets = None
    if split.targets is not None:
        rows = [split.targets[i] for i in index]
        if rows[0].dim() == 0:
            targets = torch.stack(rows)  # (B,)
        else:
            targets = pad_sequence(rows, batch_first=True, padding_value=pad_target)  # (B, T)
        if split.intents is not None:
            # Two targets travel together; the model and the metrics know both keys.
            targets = {"tags": targets, "intent": torch.stack([split.intents[i] for i in index])}  # (B,)
        elif split.references is not None:
            targets = {"tokens": targets, "example": torch.tensor(index, dtype=torch.long)}  # (B,)
    chars = None
    if split.chars is not None:
        rows = [split.chars[i] for i in index]
        width = max(1, max(r.shape[1] for r in rows))
        chars = torch.zeros(len(rows), ids.shape[1], width, dtype=torch.long)  # (B, T, W)
        for b, r in enumerate(rows):
            if r.numel():
                chars[b, :r.shape[0], :r.shape[1]] = r
    condition = torch.stack([split.conditions[i] for i in index]) if split.conditions is not None else None  # (B,)
    inputs = {k: torch.stack([v[i] for i in index]) for k, v in split.inputs.items()} if split.inputs else None
    return Batch(ids, lengths, targets, list(index), chars, condition, inputs)


def bucketed_order(lengths: list[int], batch_size: int, generator: torch.Generator) -> list[list[int]]:
    """Shuffled batches of equal (or, for the remainder, similar) lengths.

    Examples are shuffled, grouped by exact length and cut into full batches; what is
    left of each length is pooled in length order and cut into batches of neighbouring
    lengths. The batch order is shuffled. Equal-length batches need no padding and no
    packing (the encoder then takes PyTorch's dense path, which is 2-3x faster per
    token on CPU than the packed one), and the rest waste little work on padding.
    """
    by_length: dict[int, list[int]] = {}
    for i in torch.randperm(len(lengths), generator=generator).tolist():
        by_length.setdefault(lengths[i], []).append(i)
    batches: list[list[int]] = []
    rest: list[int] = []
    for length in sorted(by_length):
        group = by_length[length]
        full = len(group) - len(group) % batch_size
        batches.extend(group[j:j + batch_size] for j in range(0, full, batch_size))
        rest.extend(group[full:])
    batches.extend(rest[j:j + batch_size] for j in range(0, len(rest), batch_size))
    perm = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in perm]


def random_order(n: int, batch_size: int, generator: torch.Generator) -> list[list[int]]:
    order = torch.randperm(n, generator=generator).tolist()
    return [order[j:j + batch_size] for j in range(0, n, batch_size)]


def epoch_batches(lengths: list[int], batch_size: int, kind: str, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one training epoch; a function of (seed, epoch) alone, so resume can replay them."""
    # Modulo 2**64, as torch itself takes a seed: a large train.seed stays a valid one, small ones are unchanged.
    g = torch.Generator().manual_seed((seed * 100_003 + epoch) % 2**64)
    if kind == "bucketed":
        return bucketed_order(lengths, batch_size, g)
    return random_order(len(lengths), batch_size, g)


def training_batches(split: EncodedSplit, batch_size: int, kind: str, seed: int, epoch: int) -> list[list[int]]:
    """The index batches of one training epoch: `epoch_batches`, or a stream split's chunks in order."""
    if split.streams is not None:
        return stream_batches(split)
    return epoch_batches(split.lengths(), batch_size, kind, seed, epoch)


def stream_batches(split: EncodedSplit) -> list[list[int]]:
    """A stream split's batches in order: chunk k of every row (see EncodedSplit.streams)."""
    n = split.streams
    return [list(range(j, j + n)) for j in range(0, len(split), n)]


def sorted_batches(split: EncodedSplit, batch_size: int) -> Iterator[Batch]:
    """Evaluation order: sorted by length (least padding); `Batch.index` maps results back. A stream
    split comes in its own order, a row per stream, whatever `batch_size` (its batches continue each other)."""
    if split.streams is not None:
        for index in stream_batches(split):
            yield collate(split, index)
        return
    lengths = split.lengths()
    order = sorted(range(len(split)), key=lambda i: lengths[i])
    for j in range(0, len(order), batch_size):
        yield collate(split, order[j:j + batch_size])
