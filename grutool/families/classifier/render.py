"""How `train`, `eval` and `infer` show classifier results (rich tables, one line per input). No torch."""

from __future__ import annotations

from rich.table import Table

from grutool.cli.render.tables import confusion_table, one_cell, plain


def summary_line(metrics: dict) -> str:
    """The headline figures of a classifier eval."""
    return f"accuracy {metrics['accuracy']:.4f}, macro-F1 {metrics['macro_f1']:.4f}"


def tables(metrics: dict) -> list:
    t = Table(title=f"{plain(metrics['source'])}: n={metrics['n']}, accuracy {metrics['accuracy']:.4f}, "
                    f"macro-F1 {metrics['macro_f1']:.4f}")
    for col in ("label", "precision", "recall", "f1", "support"):
        t.add_column(col, justify="left" if col == "label" else "right")
    for label, m in metrics["per_class"].items():
        t.add_row(plain(label), f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", str(m["support"]))
    return t, confusion_table("confusion", metrics["confusion"]["labels"], metrics["confusion"]["matrix"])


def line(result: dict) -> str:
    """label<TAB>probability<TAB>text (numeric sequences: the sequence's id)"""
    shown = result["text"] if "text" in result else result["id"]
    return f"{result['label']}\t{result['probs'][result['label']]:.4f}\t{one_cell(shown)}"


def plot(metrics: dict, path, title: str = "") -> str:
    """`eval --plot`: the confusion matrix of the classes as a PNG."""
    from grutool.confusion import plot_confusion

    return plot_confusion(metrics, path, title=title)
