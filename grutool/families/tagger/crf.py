"""Linear-chain CRF over per-token scores: negative log-likelihood and Viterbi decoding.

The score of a tag path y for emissions e (B, T, C) is

    start[y_0] + sum_t e[t, y_t] + sum_{t>0} trans[y_{t-1}, y_t] + end[y_{n-1}]

and training minimises log Z - score(gold), with log Z (the log-partition, a
logsumexp over every path) from the forward algorithm. Transitions that the tag
scheme forbids (I-X after O in IOB2, say) get a large negative score, in training
and decoding alike, so the model is normalised over valid paths only and Viterbi
never returns an invalid one. `mask` (B, T) is True at real tokens, a prefix of
each row; an empty row scores 0 and decodes to nothing.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

FORBIDDEN = -1e4  # exp(-1e4) is 0 in float32, yet finite: no inf - inf = nan when every path is forbidden


class CRF(nn.Module):
    def __init__(self, num_tags: int, allowed: Optional[list[list[bool]]] = None,
                 allowed_start: Optional[list[bool]] = None, allowed_end: Optional[list[bool]] = None):
        super().__init__()
        self.num_tags = num_tags
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # [from, to]
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        nn.init.uniform_(self.transitions, -0.1, 0.1)
        full = [[True] * num_tags for _ in range(num_tags)]
        # Not saved with the weights: rebuilt from the tag names and scheme in the run's config.
        self.register_buffer("allowed", torch.tensor(allowed if allowed is not None else full), persistent=False)
        self.register_buffer("allowed_start", torch.tensor(allowed_start if allowed_start is not None
                                                           else [True] * num_tags), persistent=False)
        self.register_buffer("allowed_end", torch.tensor(allowed_end if allowed_end is not None
                                                         else [True] * num_tags), persistent=False)

    def scores(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Transition (C, C), start (C,) and end (C,) scores with forbidden moves masked."""
        return (self.transitions.masked_fill(~self.allowed, FORBIDDEN),
                self.start.masked_fill(~self.allowed_start, FORBIDDEN),
                self.end.masked_fill(~self.allowed_end, FORBIDDEN))

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log Z per sequence (B,), by the forward algorithm; 0 for empty rows."""
        if emissions.shape[1] == 0:  # a batch of empty sequences
            return emissions.new_zeros(emissions.shape[0])
        trans, start, end = self.scores()
        alpha = start + emissions[:, 0]  # (B, C): log-sum of all paths ending in each tag
        for t in range(1, emissions.shape[1]):
            step = torch.logsumexp(alpha.unsqueeze(2) + trans + emissions[:, t].unsqueeze(1), dim=1)  # (B, C)
            alpha = torch.where(mask[:, t:t + 1], step, alpha)  # finished rows keep their last alpha
        return torch.logsumexp(alpha + end, dim=1) * mask[:, 0]  # (B,)

    def score(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Score of the given tag paths (B,); tags (B, T) may hold anything at masked positions."""
        if emissions.shape[1] == 0:
            return emissions.new_zeros(emissions.shape[0])
        trans, start, end = self.scores()
        tags = tags.masked_fill(~mask, 0)
        m = mask.to(emissions.dtype)
        emit = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)  # (B, T)
        total = (emit * m).sum(1) + start[tags[:, 0]] * m[:, 0]  # (B,)
        if tags.shape[1] > 1:
            total = total + (trans[tags[:, :-1], tags[:, 1:]] * m[:, 1:]).sum(1)
        last = (mask.sum(1) - 1).clamp(min=0)  # (B,)
        return total + end[tags.gather(1, last.unsqueeze(1)).squeeze(1)] * m[:, 0]

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood of the gold paths (B,), in float32."""
        emissions = emissions.float()
        return self.log_partition(emissions, mask) - self.score(emissions, tags, mask)

    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The highest-scoring path of each row (B, T); 0 at padding."""
        emissions = emissions.float()
        trans, start, end = self.scores()
        B, T, _ = emissions.shape
        if T == 0:
            return torch.zeros(B, 0, dtype=torch.long, device=emissions.device)
        best = start + emissions[:, 0]  # (B, C): best score of a path ending in each tag
        back = []
        for t in range(1, T):
            step, arg = (best.unsqueeze(2) + trans).max(dim=1)  # (B, C) best previous tag for each tag
            best = torch.where(mask[:, t:t + 1], step + emissions[:, t], best)
            back.append(arg)
        lengths = mask.sum(1)  # (B,)
        cur = (best + end).argmax(dim=1)  # (B,) the last tag of each row's best path
        path = torch.zeros(B, T, dtype=torch.long, device=emissions.device)
        for t in range(T - 1, -1, -1):
            inside = t < lengths  # rows whose path covers step t
            path[:, t] = torch.where(inside, cur, 0)
            if t > 0:
                prev = back[t - 1].gather(1, cur.unsqueeze(1)).squeeze(1)
                # Step back only within the row: a row of length n starts backtracking at t = n - 1.
                cur = torch.where(inside, prev, cur)
        return path
