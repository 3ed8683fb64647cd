"""Language-model metrics as a small stateful object: update per batch, compute per epoch.

    loss        mean negative log-likelihood per predicted token, in nats (line examples: each token and
                the <eos> that ends the line; streams: every token after the first of each row the text is cut
                into, less the last (N - 1) mod rows tokens, which fill no row)
    perplexity  exp(loss)
    bpc         bits per character, loss / ln 2: with character tokens (data.tokenizer char), where every
                predicted token is one character (or the line end, standing for the newline)
    tokens      predicted tokens counted
"""

from __future__ import annotations

import math


class LMMetrics:
    def __init__(self, characters: bool):
        self.characters = characters
        self.nll = 0.0
        self.tokens = 0

    def update(self, output, targets, loss: float) -> None:
        """`loss` is the batch's mean nats per target token (what the model returns)."""
        n = int((targets != -100).sum())
        self.nll += loss * n
        self.tokens += n

    def compute(self) -> dict:
        loss = self.nll / max(self.tokens, 1)
        out = {"loss": loss, "perplexity": math.exp(min(loss, 700.0)), "tokens": self.tokens}
        if self.characters:
            out["bpc"] = loss / math.log(2)
        return out
