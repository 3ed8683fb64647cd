"""How `train`, `eval` and `infer` show language-model results. No torch."""

from __future__ import annotations


def summary_line(metrics: dict) -> str:
    """loss (nats per token), perplexity and, for character models, bits per character."""
    parts = [f"loss {metrics['loss']:.4f}", f"perplexity {metrics['perplexity']:.3f}"]
    if "bpc" in metrics:
        parts.append(f"bpc {metrics['bpc']:.4f}")
    return ", ".join(parts)


def tables(metrics: dict) -> list:
    """One line for `grutool eval`."""
    from grutool.cli.render.tables import plain

    return [f"{plain(metrics['source'])}: {metrics['tokens']:,} tokens; {summary_line(metrics)}"]


def line(result: dict) -> str:
    """`infer`: a sample as text<TAB>log-probability. A sample of several lines (a stream model's) keeps its
    line ends, so it reads as written: the log-probability follows a TAB on its last line, and an empty line
    ends it. With --score: log-probability<TAB>perplexity<TAB>text."""
    if "tokens" in result:
        return f"{result['logprob']:.4f}\t{result['perplexity']:.3f}\t{result['text']}"
    text = f"{result['text']}\t{result['logprob']:.4f}"
    return text + "\n" if "\n" in result["text"] else text
