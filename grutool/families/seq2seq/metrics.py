"""Seq2seq metrics as a small stateful object: update per batch, compute per epoch.

    bleu, chrf      sacreBLEU corpus BLEU (13a tokenizer, case-sensitive) and chrF of the outputs written
                    back as text against the references as written (lower-cased with data.target_lowercase)
    bleu_tok        BLEU on the target tokens as the model sees them, lower-cased, sacreBLEU's `none`
                    tokenizer: comparable with notebooks that score tokenised, lower-cased text, 0-100
    exact_match     output tokens equal to the reference's (a dictionary word: to any of its pronunciations)
    wer, cer        word / character error rate: edit distance over words / characters, divided by the
                    references' count; words are the target tokens (a character target: its space-separated
                    words). Dictionaries: wer is the fraction of words whose output is wrong (as G2P papers
                    report it) and per the phoneme (target token) edit rate
    perplexity      exp(mean negative log-likelihood of the reference tokens and <eos>), teacher-forced,
                    without label smoothing

Fractions are 0-1 except BLEU and chrF, which keep sacreBLEU's 0-100 scale.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import torch.nn.functional as F

from grutool.data.batching import References
from grutool.data.tokenize import detokenize

SAMPLES = 5  # examples shown by `grutool eval`


def edit_distance(a: Sequence, b: Sequence) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1) between two sequences (strings,
    or lists of tokens). rapidfuzz's C++ implementation: 28x faster than a Python dynamic programme on the G2P
    test set, with identical distances (benchmarks/edit_distance.py, docs/benchmarks.md)."""
    from rapidfuzz.distance import Levenshtein

    return Levenshtein.distance(a, b)


def error_rate(hypotheses: Sequence[Sequence], references: Sequence[Sequence]) -> float:
    """Total edit distance / total reference length (WER on word lists, CER on strings)."""
    edits = sum(edit_distance(h, r) for h, r in zip(hypotheses, references))
    return edits / max(1, sum(len(r) for r in references))


def corpus_bleu(hypotheses: list[str], references: list[str], tokenized: bool = False) -> tuple[float, str]:
    """sacreBLEU corpus BLEU and its signature; `tokenized`: text already split by spaces, compared lower-cased."""
    from sacrebleu.metrics import BLEU

    # force: tokenised text on purpose (sacreBLEU would warn that it looks undetokenised).
    bleu = BLEU(tokenize="none", lowercase=True, force=True) if tokenized else BLEU()
    score = bleu.corpus_score(hypotheses, [references]).score
    return score, str(bleu.get_signature())


def corpus_chrf(hypotheses: list[str], references: list[str]) -> float:
    from sacrebleu.metrics import CHRF

    return CHRF().corpus_score(hypotheses, [references]).score


class Seq2SeqMetrics:
    """`target_names`: the target vocabulary (ids -> tokens); `references`: what outputs are scored against
    (for dictionaries with groups: the examples of one word); `sources`: source texts, for the samples."""

    def __init__(self, target_names: list[str], references: References, sources: list[str]):
        self.names, self.sources = target_names, sources
        self.references, self.groups = references.tokens, references.groups
        self.reference_texts, self.tokenizer = references.texts, references.tokenizer
        self.join = "" if references.tokenizer == "char" else " "
        self.outputs: dict[int, list[str]] = {}
        self.nll, self.tokens = 0.0, 0
        self.loss_sum, self.loss_count = 0.0, 0

    def update(self, output, targets: dict, loss: Optional[float] = None) -> None:
        """output: a Seq2SeqOutput (teacher-forced logits, generated hypotheses); targets {"tokens", "example"}."""
        gold = targets["tokens"]  # (B, M), -100 after <eos>
        mask = gold != -100
        logp = F.log_softmax(output.logits.float(), dim=-1)  # (B, M, V)
        nll = -logp.gather(-1, gold.clamp(min=0)[..., None])[..., 0]  # (B, M)
        n = int(mask.sum())
        self.nll += float(nll[mask].sum())
        self.tokens += n
        for row, i in enumerate(targets["example"].tolist()):
            self.outputs[i] = [self.names[j] for j in output.hypotheses.tokens[row]]
        if loss is not None:
            self.loss_sum += loss * n
            self.loss_count += n

    def compute(self) -> dict:
        order = sorted(self.outputs)
        hyps = [self.outputs[i] for i in order]
        refs = [self.references[i] for i in order]
        out: dict = {"n": len(order)}
        if self.groups is not None:
            out.update(self._dictionary(order))
        else:
            written = [detokenize(h, self.tokenizer) for h in hyps]
            ref_written = [self.reference_texts[i] for i in order]
            out["bleu"], out["bleu_signature"] = corpus_bleu(written, ref_written)
            out["bleu_tok"], _ = corpus_bleu([" ".join(h) for h in hyps], [" ".join(r) for r in refs], tokenized=True)
            out["chrf"] = corpus_chrf(written, ref_written)
            # BLEU counts word n-grams: on character targets it says nothing, so the renderers lead with
            # chrF, CER and exact match instead (the figures stay in the JSON, for the record).
            out["char_level"] = self.tokenizer == "char"
            out["exact_match"] = sum(h == r for h, r in zip(hyps, refs)) / max(1, len(hyps))
            joined = [self.join.join(h).split() for h in hyps], [self.join.join(r).split() for r in refs]
            out["wer"] = error_rate(*joined)
            out["cer"] = error_rate([self.join.join(h) for h in hyps], [self.join.join(r) for r in refs])
        if self.tokens:
            out["perplexity"] = math.exp(min(self.nll / self.tokens, 50.0))  # capped: exp(50) already says "untrained"
        if self.loss_count:
            out["loss"] = self.loss_sum / self.loss_count
        out["samples"] = [{"source": self.sources[i], "reference": self.reference_texts[i],
                           "output": detokenize(self.outputs[i], self.tokenizer)} for i in order[:SAMPLES]]
        return out

    def _dictionary(self, order: list[int]) -> dict:
        """One entry per word: right if its output is one of its pronunciations; PER against the closest one."""
        words: dict[int, tuple[list[str], list[list[str]]]] = {}
        for i in order:
            output, refs = words.setdefault(self.groups[i], (self.outputs[i], []))
            refs.append(self.references[i])
        wrong = edits = length = 0
        for output, refs in words.values():
            wrong += output not in refs
            d, ref = min((edit_distance(output, r), r) for r in refs)
            edits += d
            length += len(ref)
        n = max(1, len(words))
        return {"words": len(words), "exact_match": 1 - wrong / n, "wer": wrong / n, "per": edits / max(1, length)}
