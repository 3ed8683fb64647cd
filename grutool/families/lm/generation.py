"""Language models at inference: sampling (temperature, top-k, top-p, seeded), scoring, and a stateful stream.

Every function runs the model's own `features` + `log_probs` with an explicit recurrent state, so the
state after one call is the initial state of the next: a prompt is read once and its state copied for
every sample; a long text fed in chunks through `Stream` gives the log-probabilities of feeding it whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from grutool.arguments import check_chunk
from grutool.config import SEED_MAX, SEED_MIN
from grutool.errors import UserError

NEVER_SAMPLED = (0, 1, 2)  # <pad>, <unk>, <bos>: never a model's output
TEMPERATURES = (1e-20, 1e20)  # what float32 log-probabilities can be divided by and still sample


def check_sampling(temperature: float, top_k: Optional[int], top_p: Optional[float], num: int,
                   max_length: Optional[int], seed: int = 0, greedy: bool = False, score: bool = False) -> None:
    """Sampling settings a user can get wrong, each as a UserError naming its option; and settings that would be
    ignored (sampling's beside greedy or score), refused rather than silently dropped."""
    if score:
        unused = [name for name, given in (("num", num != 1), ("max_length", max_length is not None),
                                           ("temperature", temperature != 1.0), ("top_k", top_k is not None),
                                           ("top_p", top_p is not None), ("seed", seed != 0), ("greedy", greedy))
                  if given]
        if unused:
            raise UserError(f"{unused[0]}: `score` scores the texts given and generates nothing, so this would "
                            f"change nothing; remove {', '.join(f'`{n}`' for n in unused)}",
                            option=(*unused, "score"))
    if greedy:
        unused = [name for name, given in (("temperature", temperature != 1.0), ("top_k", top_k is not None),
                                           ("top_p", top_p is not None)) if given]
        if unused:
            raise UserError(f"{unused[0]}: `greedy` always takes the most likely token, so this would change "
                            f"nothing; remove {', '.join(f'`{n}`' for n in unused)}, or `greedy` to sample",
                            option=(*unused, "greedy"))
        if num != 1:
            raise UserError(f"num: `greedy` gives the same text every time ({num} identical samples); remove "
                            f"`num`, or `greedy` to sample", option=("num", "greedy"))
    if not TEMPERATURES[0] <= temperature <= TEMPERATURES[1]:  # else float32 logits / temperature: 0 or inf
        raise UserError(f"temperature: must be > 0 and finite, {TEMPERATURES[0]:g} to {TEMPERATURES[1]:g} "
                        f"(got {temperature}); for the most likely token use "
                        f"`top_k` 1 or `greedy`", option=("temperature", "top_k", "greedy"))
    if top_k is not None and top_k < 1:
        raise UserError(f"top_k: must be at least 1 (got {top_k}); 1 is greedy", option="top_k")
    if top_p is not None and not 0 < top_p <= 1:
        raise UserError(f"top_p: must be in (0, 1] (got {top_p}); 1 keeps every token", option="top_p")
    if num < 1:
        raise UserError(f"num: must be at least 1 (got {num})", option="num")
    if max_length is not None and max_length < 1:
        raise UserError(f"max_length: must be at least 1 (got {max_length})", option="max_length")
    if not SEED_MIN <= seed <= SEED_MAX:
        raise UserError(f"seed: must be between {SEED_MIN} and {SEED_MAX}, the range torch.manual_seed "
                        f"accepts (got {seed})", option="seed")


def filtered(logp: torch.Tensor, temperature: float, top_k: Optional[int], top_p: Optional[float]) -> torch.Tensor:
    """(B, V) log-probabilities -> sampling logits: tempered, then all but the top_k most likely and
    the smallest set holding top_p of the probability (nucleus) set to -inf. The most likely token always stays: a
    top_p below float32's smallest number (1e-46 reads as 0) dropped every token, and sampling from none raised."""
    logits = logp / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1:
        probs, order = logits.softmax(-1).sort(dim=-1, descending=True)  # (B, V)
        before = probs.cumsum(-1) - probs  # probability of the tokens ranked above each one
        beyond = before >= top_p
        beyond[:, 0] = False  # the most likely token, whatever top_p
        drop = beyond.scatter(-1, order, beyond)  # back to vocabulary order
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


@dataclass
class Sample:
    tokens: list[int]   # generated token ids (without the final <eos>)
    logprob: float      # the model's log-probability of them (and of <eos> when finished), temperature 1
    finished: bool      # ended with <eos> (line models) rather than max_length


@torch.no_grad()
def sample(model, prefix: list[int], condition: Optional[int], num: int, max_length: int, *,
           temperature: float = 1.0, top_k: Optional[int] = None, top_p: Optional[float] = None,
           greedy: bool = False, seed: int = 0, stop: Optional[int] = None, never: tuple = (),
           device="cpu") -> list[Sample]:
    """`num` continuations of the token ids `prefix` (inputs: the model reads every one of them and
    predicts what follows the last). `stop`: the token that ends a sample (line models' <eos>); `never`: more
    ids no sample takes (besides NEVER_SAMPLED: a character stream's <eos>, which its text never holds)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.tensor(prefix, dtype=torch.long, device=device)[None].expand(num, -1)  # (N, P)
    cond = torch.full((num,), condition, dtype=torch.long, device=device) if condition is not None else None
    lengths = torch.full((num,), len(prefix), dtype=torch.long)
    o, state = model.features(ids, lengths, cond)
    logp = model.log_probs(o[:, -1])  # (N, V)
    tokens = torch.zeros(num, 0, dtype=torch.long)
    total = torch.zeros(num, dtype=torch.float64)
    done = torch.zeros(num, dtype=torch.bool)
    ones = torch.ones(num, dtype=torch.long)
    for _ in range(max_length):
        logp = logp.float().cpu()
        logp[:, list(NEVER_SAMPLED) + list(never)] = float("-inf")
        if greedy:
            nxt = logp.argmax(-1)  # (N,)
        else:
            probs = filtered(logp, temperature, top_k, top_p).softmax(-1)
            nxt = torch.multinomial(probs, 1, generator=gen)[:, 0]  # (N,)
        total += torch.where(done, 0.0, logp.gather(1, nxt[:, None])[:, 0].double())
        tokens = torch.cat([tokens, torch.where(done, -1, nxt)[:, None]], dim=1)
        if stop is not None:
            done |= nxt == stop
        if bool(done.all()):
            break
        o, state = model.features(nxt[:, None].to(device), ones, cond, state)
        logp = model.log_probs(o[:, -1])
    out = []
    for row in range(num):
        seq = [t for t in tokens[row].tolist() if t >= 0]
        finished = stop is not None and bool(seq) and seq[-1] == stop
        out.append(Sample(seq[:-1] if finished else seq, float(total[row]), finished))
    return out


@torch.no_grad()
def score(model, inputs: list[int], targets: list[int], condition: Optional[int], state=None, device="cpu"
          ) -> tuple[list[float], object]:
    """Log-probability of each target token given the inputs up to it (teacher-forced), and the final state."""
    if not inputs:
        return [], state
    ids = torch.tensor(inputs, dtype=torch.long, device=device)[None]  # (1, T)
    cond = torch.tensor([condition], device=device) if condition is not None else None
    o, state = model.features(ids, torch.tensor([len(inputs)]), cond, state)
    logp = model.log_probs(o[0])  # (T, V)
    gold = torch.tensor(targets, dtype=torch.long, device=logp.device)[:, None]
    return logp.gather(1, gold)[:, 0].tolist(), state


class Stream:
    """A run's language model with its state carried across calls: `feed` a long text in chunks and get the
    same per-token log-probabilities as feeding it whole (chunks must split the text between tokens).

    Line models start after <bos> (the first token is scored); stream models start with nothing, so the
    very first token has no log-probability (None).
    """

    def __init__(self, model, encode, condition: Optional[int], start: Optional[int], device="cpu"):
        self.model, self.encode, self.condition, self.device = model, encode, condition, device
        self.start = start
        self.reset()

    def reset(self) -> None:
        """Back to the beginning of a text."""
        self.state, self.last = None, self.start

    def feed(self, text: str) -> dict:
        """tokens and their log-probabilities (given everything fed before), in order."""
        check_chunk(text)
        tokens, ids = self.encode(text)
        head: list[Optional[float]] = []
        if ids and self.last is None:
            head, self.last, ids = [None], ids[0], ids[1:]  # nothing before the first token to predict it
        if not ids:
            return {"tokens": tokens, "logprobs": head}
        inputs = [self.last] + ids[:-1]
        logprobs, self.state = score(self.model, inputs, ids, self.condition, self.state, self.device)
        self.last = ids[-1]
        return {"tokens": tokens, "logprobs": head + logprobs}

    def end(self) -> float:
        """Line models: the log-probability that the text ends after what was fed (its <eos>)."""
        from grutool.data.vocab import Vocab

        if self.start is None:  # a stream model: its text never ends (and before a feed there was a TypeError)
            raise UserError("end: a stream model (train.bptt) reads one text that never ends, so there is no <eos> "
                            "to score; end() is for line models")
        logprobs, _ = score(self.model, [self.last], [Vocab.eos_id], self.condition, self.state, self.device)
        return logprobs[0]
