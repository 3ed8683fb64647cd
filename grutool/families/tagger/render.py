"""How `eval` and `infer` show tagger and joint results (rich tables, one line per input). No torch."""

from __future__ import annotations

from rich.table import Table

from grutool.cli.render.tables import confusion_table, counted, plain

CONFUSION_MAX_TAGS = 20  # a bigger tag confusion does not fit a terminal; --json has it whole


def _units(metrics: dict) -> dict:
    """What `n` and `tokens` count: sentences and tokens, or the run's own (`Task.label_figures`: numeric
    sequences and their steps)."""
    return {"n": "sentence", "tokens": "token", **metrics.get("units", {})}


def summary_line(metrics: dict) -> str:
    """The headline figures of a tagging eval, as `name value` pairs (numeric: step and sequence accuracy)."""
    units = _units(metrics)
    parts = [f"{units['tokens']} accuracy {metrics['token_accuracy']:.4f}"]
    if "span_f1" in metrics:
        parts.append(f"span F1 {metrics['span_f1']:.4f} (P {metrics['span_precision']:.4f}, "
                     f"R {metrics['span_recall']:.4f})")
    if "intent_accuracy" in metrics:
        parts.append(f"intent accuracy {metrics['intent_accuracy']:.4f}")
    parts.append(f"{units['n']} accuracy {metrics['sentence_accuracy']:.4f}")
    return ", ".join(parts)


def _prf_table(title: str, first: str, rows: dict) -> Table:
    t = Table(title=title)
    for col in (first, "precision", "recall", "f1", "support"):
        t.add_column(col, justify="left" if col == first else "right")
    for name, m in rows.items():
        t.add_row(plain(name), f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", str(m["support"]))
    return t


def tables(metrics: dict) -> list:
    """Per span type (or per tag for plain tags), then the tag confusion when it is small, for `grutool eval`."""
    units = _units(metrics)
    title = (f"{plain(metrics['source'])}: {counted(metrics['n'], units['n'])}, "
             f"{counted(metrics['tokens'], units['tokens'])}; {summary_line(metrics)}")
    if "per_type" in metrics:
        out: list = [_prf_table(title, "span type", metrics["per_type"])]
    else:
        out = [_prf_table(title, "tag", metrics["per_tag"])]
    # joint: the intents' too (only their accuracy was in the title; --plot drew their matrix)
    for key, what in (("confusion", "tag"), ("intent_confusion", "intent")):
        if key not in metrics:
            continue
        labels, matrix = metrics[key]["labels"], metrics[key]["matrix"]
        if len(labels) <= CONFUSION_MAX_TAGS:
            out.append(confusion_table(f"{what} confusion", labels, matrix))
        else:
            out.append(f"{what} confusion: {len(labels)} x {len(labels)}, in `grutool eval --json`")
    for key, what in (("unseen_labels", f"{units['tokens']}s with tags"), ("unseen_intents", "sentences with intents")):
        if metrics.get(key):
            listed = ", ".join(f"{plain(k)} ({v})" for k, v in metrics[key].items())
            out.append(f"{what} never seen in training (counted as errors): {listed}")
    return out


def line(result: dict) -> str:
    """One `infer` output line: [intent<TAB>probability<TAB>]token/TAG ...[<TAB>type="span text" ...]; numeric
    sequences: id<TAB>TAG TAG ...[<TAB>type=start:end ...]. The spans' column is there when the result has spans
    (a span scheme's, empty for an input without any), never under a plain scheme, whose results have none."""
    if "tokens" not in result:
        cells = [result["id"], " ".join(result["tags"])]
        if "spans" in result:
            cells.append(" ".join(f'{s["type"]}={s["start"]}:{s["end"]}' for s in result["spans"]))
        return "\t".join(cells)
    cells = [" ".join(f"{w}/{t}" for w, t in zip(result["tokens"], result["tags"]))]
    if "spans" in result:
        cells.append(" ".join(f'{s["type"]}="{s["text"]}"' for s in result["spans"]))
    if "intent" in result:
        cells = [result["intent"], f"{result['intent_prob']:.4f}"] + cells
    return "\t".join(cells)


def plot(metrics: dict, path, title: str = "") -> str:
    """`eval --plot`: the tag confusion matrix (joint: and the intents') as a PNG."""
    from grutool.confusion import plot_confusion

    return plot_confusion(metrics, path, title=title)
