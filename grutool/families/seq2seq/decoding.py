"""Generating outputs from a seq2seq model: batched greedy decoding and beam search.

Both work on any model with `step(y, state, memory) -> (logits, state, weights)` and
states/memories that can `select(index)` rows. An output ends at <eos> or after
ceil(max_length_ratio * source length) + max_length_offset tokens, each example by
its own limit, so a batch decodes every example exactly as it would alone. <pad> and
<bos> are never generated.

A hypothesis' score is its log-probability under the model: the sum over its tokens,
<eos> included when it has one. Beam search ranks finished hypotheses by
score / ((5 + length) / 6) ** length_penalty (GNMT; length counts <eos>).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

from grutool.data.vocab import Vocab


@dataclass
class Generated:
    tokens: list[list[int]]                   # per example: output ids, without <eos>
    scores: list[float]                       # per example: log-probability (with <eos> when it ended there)
    finished: list[bool]                      # per example: whether it ended with <eos> (else: the length limit)
    attention: Optional[list[torch.Tensor]]   # per example (steps, S): one row per output token, <eos> included


def max_lengths(lengths: torch.Tensor, ratio: float, offset: int) -> torch.Tensor:
    """(B,) the most tokens each example may generate (<eos> counted)."""
    return torch.ceil(lengths.double() * ratio).long() + offset


def length_penalty_factor(length: int, alpha: float) -> float:
    return ((5 + length) / 6) ** alpha if alpha else 1.0


def _log_probs(logits: torch.Tensor) -> torch.Tensor:
    logp = F.log_softmax(logits.float(), dim=-1)  # (N, V)
    logp[:, Vocab.pad_id] = -math.inf
    logp[:, Vocab.bos_id] = -math.inf
    return logp


def _collect(tokens: torch.Tensor, scores: torch.Tensor, attention: Optional[torch.Tensor],
             lengths: torch.Tensor) -> Generated:
    """tokens (N, T) with <eos> then <pad> after the end -> per-example lists."""
    out, ended, weights = [], [], []
    for row, seq in enumerate(tokens.tolist()):
        n = len(seq)
        for j, tok in enumerate(seq):
            if tok in (Vocab.eos_id, Vocab.pad_id):
                n = j
                break
        eos = n < len(seq) and seq[n] == Vocab.eos_id
        out.append(seq[:n])
        ended.append(eos)
        if attention is not None:
            weights.append(attention[row, :n + int(eos), :int(lengths[row])].cpu())
    return Generated(out, scores.tolist(), ended, weights if attention is not None else None)


@torch.no_grad()
def greedy(model, memory, state, lengths: torch.Tensor, max_length_ratio: float = 2.0, max_length_offset: int = 5,
           with_attention: bool = False) -> Generated:
    """The most probable token at every step, for a batch of sources."""
    B = lengths.shape[0]
    device = memory.mask.device
    limit = max_lengths(lengths, max_length_ratio, max_length_offset).to(device)  # (B,)
    y = torch.full((B,), Vocab.bos_id, dtype=torch.long, device=device)
    done = torch.zeros(B, dtype=torch.bool, device=device)
    scores = torch.zeros(B, dtype=torch.float, device=device)
    tokens, attention = [], []
    for t in range(int(limit.max()) if B else 0):
        logits, state, weights = model.step(y, state, memory)
        logp = _log_probs(logits)  # (B, V)
        best, y = logp.topk(1, dim=-1)  # (B, 1): topk, like beam search, so ties break the same way
        y = y[:, 0]
        scores += torch.where(done, 0.0, best[:, 0])
        tokens.append(y.masked_fill(done, Vocab.pad_id))
        if with_attention and weights is not None:
            attention.append(weights)
        done = done | (y == Vocab.eos_id) | (t + 1 >= limit)
        if bool(done.all()):
            break
    seqs = torch.stack(tokens, 1) if tokens else torch.zeros(B, 0, dtype=torch.long)  # (B, T)
    attn = torch.stack(attention, 1) if attention else None  # (B, T, S)
    return _collect(seqs, scores, attn, lengths)


@torch.no_grad()
def beam_search(model, memory, state, lengths: torch.Tensor, beam_size: int = 5, length_penalty: float = 0.0,
                max_length_ratio: float = 2.0, max_length_offset: int = 5, with_attention: bool = False,
                include_greedy: bool = True) -> Generated:
    """The best of `beam_size` hypotheses kept per step, for a batch of sources.

    A hypothesis that ends keeps its place in the beam with its score frozen, so it
    competes with the open ones until the search stops, and is kept aside as it ends
    (`pool`): K open hypotheses scoring above it could push it out of the beam and then
    all end below it, and the search returned one of them (an output it had scored
    better was lost). Plain beam search can prune the greedy path and end below it; with
    include_greedy (the default) the greedy output is a candidate too, so beam search never
    returns a lower-scoring output than greedy decoding, nor than any hypothesis it ended.
    """
    B = lengths.shape[0]
    device = memory.mask.device
    K = beam_size
    fallback = (greedy(model, memory, state, lengths, max_length_ratio, max_length_offset, with_attention)
                if include_greedy else None)
    rows = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,) hypothesis -> its source
    memory, state = memory.select(rows), state.select(rows)
    limit = max_lengths(lengths, max_length_ratio, max_length_offset).to(device).repeat_interleave(K)  # (B*K,)
    scores = torch.full((B, K), -math.inf, device=device)
    scores[:, 0] = 0.0  # one live hypothesis per source at the start, not K copies of it
    scores = scores.view(-1)  # (B*K,)
    done = torch.zeros(B * K, dtype=torch.bool, device=device)
    seqs = torch.zeros(B * K, 0, dtype=torch.long, device=device)
    attn = None
    y = torch.full((B * K,), Vocab.bos_id, dtype=torch.long, device=device)
    base = torch.arange(B, device=device)[:, None] * K  # (B, 1)
    source_lengths = lengths.repeat_interleave(K)  # (B*K,)
    pool: list[list[tuple]] = [[] for _ in range(B)]  # each source's hypotheses that ended with <eos>, as they ended
    ended_score = torch.full((B,), -math.inf, device=device)  # (B,) the best of them
    for t in range(int(limit.max()) if B else 0):
        logits, state, weights = model.step(y, state, memory)
        logp = _log_probs(logits)  # (B*K, V)
        V = logp.shape[-1]
        # An ended hypothesis has one continuation, <pad>, costing nothing: it stays with its score.
        frozen = torch.full_like(logp, -math.inf)
        frozen[:, Vocab.pad_id] = 0.0
        logp = torch.where(done[:, None], frozen, logp)
        top, flat = (scores[:, None] + logp).view(B, K * V).topk(K, dim=1)  # (B, K)
        origin = (base + torch.div(flat, V, rounding_mode="floor")).view(-1)  # (B*K,) which hypothesis it extends
        y = (flat % V).view(-1)  # (B*K,)
        scores = top.view(-1)
        seqs = torch.cat([seqs.index_select(0, origin), y[:, None]], dim=1)  # (B*K, t+1)
        if with_attention and weights is not None:
            step = weights.index_select(0, origin)[:, None]  # (B*K, 1, S)
            attn = step if attn is None else torch.cat([attn.index_select(0, origin), step], dim=1)
        state = state.select(origin)
        was_done = done.index_select(0, origin)
        new = (~was_done & (y == Vocab.eos_id) & (scores > -math.inf)).nonzero().squeeze(1)  # ended at this step
        if len(new):
            kept = _collect(seqs.index_select(0, new), scores.index_select(0, new),
                            attn.index_select(0, new) if attn is not None else None, source_lengths[new])
            for j, i in enumerate(new.tolist()):
                pool[i // K].append((kept.tokens[j], kept.scores[j], True,
                                      kept.attention[j] if kept.attention is not None else None))
                ended_score[i // K] = max(float(ended_score[i // K]), kept.scores[j])
        done = was_done | (y == Vocab.eos_id) | (y == Vocab.pad_id) | (t + 1 >= limit)
        if not length_penalty:
            # Scores only fall as hypotheses grow: once an ended one leads every open one, the rest cannot win.
            ended_best = torch.maximum(torch.where(done, scores, -math.inf).view(B, K).max(1).values,
                                       ended_score)  # (B,)
            open_best = torch.where(done, -math.inf, scores).view(B, K).max(1).values
            done = done | (ended_best >= open_best).repeat_interleave(K)
        if bool(done.all()):
            break
    found = _collect(seqs, scores, attn, lengths.repeat_interleave(K))
    tokens, best_scores, ended, weights = [], [], [], []
    for b in range(B):
        candidates = [(found.tokens[i], found.scores[i], found.finished[i],
                       found.attention[i] if found.attention is not None else None)
                      for i in range(b * K, b * K + K) if found.scores[i] > -math.inf]
        candidates += pool[b]  # those the beam still holds are listed twice: the first of equals wins
        if fallback is not None:
            candidates.append((fallback.tokens[b], fallback.scores[b], fallback.finished[b],
                               fallback.attention[b] if fallback.attention is not None else None))
        # Ties go to an ended hypothesis, then to the first: the beam's own before the greedy fallback.
        best = max(candidates, key=lambda c: (c[1] / length_penalty_factor(len(c[0]) + int(c[2]), length_penalty),
                                              c[2]))
        tokens.append(best[0])
        best_scores.append(best[1])
        ended.append(best[2])
        weights.append(best[3])
    return Generated(tokens, best_scores, ended, weights if with_attention and attn is not None else None)


def generate(model, memory, state, lengths: torch.Tensor, beam_size: int = 1, length_penalty: float = 0.0,
             max_length_ratio: float = 2.0, max_length_offset: int = 5, with_attention: bool = False) -> Generated:
    """Greedy decoding for beam_size 1, else beam search (see the module docstring)."""
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1 (got {beam_size})")
    if beam_size == 1:
        return greedy(model, memory, state, lengths, max_length_ratio, max_length_offset, with_attention)
    return beam_search(model, memory, state, lengths, beam_size, length_penalty, max_length_ratio,
                       max_length_offset, with_attention)
