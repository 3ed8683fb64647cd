"""How `train`, `eval` and `infer` show seq2seq results, and the attention heatmap. No torch."""

from __future__ import annotations

from rich.table import Table

from grutool.cli.render.tables import counted, one_cell, plain
from grutool.errors import UserError, install


def summary_line(metrics: dict) -> str:
    """The headline figures of a seq2seq eval, as `name value` pairs."""
    parts = []
    if metrics.get("char_level"):
        # Character targets: BLEU's word n-grams are near 0 whatever the quality; characters say more.
        return ", ".join([f"exact match {metrics['exact_match']:.4f}", f"chrF {metrics['chrf']:.2f}",
                          f"CER {metrics['cer']:.4f}"]
                         + ([f"perplexity {metrics['perplexity']:.3f}"] if "perplexity" in metrics else []))
    if "bleu" in metrics:
        parts += [f"BLEU {metrics['bleu']:.2f}", f"tokenised BLEU {metrics['bleu_tok']:.2f}", f"chrF {metrics['chrf']:.2f}"]
    parts.append(f"exact match {metrics['exact_match']:.4f}")
    parts.append(f"WER {metrics['wer']:.4f}")
    if "per" in metrics:
        parts.append(f"PER {metrics['per']:.4f}")
    if "cer" in metrics:
        parts.append(f"CER {metrics['cer']:.4f}")
    if "perplexity" in metrics:
        parts.append(f"perplexity {metrics['perplexity']:.3f}")
    return ", ".join(parts)


def tables(metrics: dict) -> list:
    """The headline figures, then a few sources with their reference and output, for `grutool eval`."""
    count = (f"{counted(metrics['words'], 'word')} ({counted(metrics['n'], 'pair')})" if "words" in metrics
             else counted(metrics['n'], 'pair'))
    t = Table(title=f"{plain(metrics['source'])}: {count}; {summary_line(metrics)}")
    for col in ("source", "reference", "output"):
        t.add_column(col)
    for s in metrics["samples"]:
        t.add_row(plain(s["source"]), plain(s["reference"]), plain(s["output"]))
    out: list = [t]
    if "bleu_signature" in metrics:  # the score beside the signature it was computed with, as sacreBLEU prints them
        out.append(f"sacreBLEU BLEU = {metrics['bleu']:.2f}  {plain(metrics['bleu_signature'])}"
                   + ("  (word n-grams: says little on character targets)" if metrics.get("char_level") else ""))
    return out


def line(result: dict) -> str:
    """One `infer` output line: output<TAB>log-probability<TAB>source."""
    return f"{one_cell(result['output'])}\t{result['score']:.4f}\t{one_cell(result['source'])}"


def plot_attention(results: list[dict], path: str) -> list[str]:
    """Draw each result's attention weights (rows: output tokens, columns: source tokens) as a heatmap PNG.

    One input writes `path`; several write path-1.png, path-2.png, ... in input order. Returns the files.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise UserError(f"--attention needs matplotlib, an optional extra: {install('plot')}") from None
    from grutool.curves import check_png_path, save_png

    target = check_png_path(path, option="attention")
    written = []
    for n, r in enumerate(results, 1):
        a = r["attention"]
        file = target if len(results) == 1 else target.with_name(f"{target.stem}-{n}{target.suffix}")
        rows, cols = len(a["output_tokens"]), len(a["source_tokens"])
        fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * cols + 2.5), max(3.0, 0.4 * rows + 1.6)))
        image = ax.imshow(a["weights"] if rows and cols else [[0.0]], cmap="Greys", vmin=0.0, vmax=1.0,
                          aspect="auto")
        fig.colorbar(image, ax=ax, fraction=0.05, pad=0.03, label="attention weight")
        ax.set_xticks(range(cols), a["source_tokens"], rotation=90)
        ax.set_yticks(range(rows), a["output_tokens"])
        ax.set_xlabel("source")
        ax.set_ylabel("output")
        # Both sentences, in full (cut only when very long): what the axes' tokens came from.
        ax.set_title(f"source: {_cut(r['source'])}\noutput: {_cut(r['output'])}", fontsize=9, loc="left")
        fig.tight_layout()
        try:
            save_png(fig, file, dpi=120)
        finally:
            plt.close(fig)
        written.append(str(file))
    return written


def _cut(text: str, limit: int = 70) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
