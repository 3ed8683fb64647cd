"""How `train`, `eval` and `infer` show regression results. No torch."""

from __future__ import annotations


def summary_line(metrics: dict) -> str:
    """The headline figures of a regression eval, named and written as the epoch line writes them (`rmse 0.1970`
    there is `rmse 0.1970` here), with their units."""
    from grutool.training.progress import number

    return (f"rmse {number(metrics['rmse'])}, mae {number(metrics['mae'])} (both in the target's units), "
            f"R² {metrics['r2']:.4f}")


def tables(metrics: dict) -> list:
    from grutool.cli.render.tables import plain
    from grutool.training.progress import number

    from grutool.errors import counted

    # per step: the sequences and their steps, as a numeric tagger's eval says them (n alone read as sequences)
    n = (f"{counted(metrics['sequences'], 'sequence')}, {counted(metrics['n'], 'step')}" if "sequences" in metrics
         else f"n={metrics['n']}")
    return [f"{plain(metrics['source'])}: {n}; {summary_line(metrics)}; mse {number(metrics['mse'])} "
            f"(squared units)"]


def line(result: dict) -> str:
    """prediction<TAB>id; per step: id<TAB>prediction prediction ..."""
    if "predictions" in result:
        return f"{result['id']}\t" + " ".join(f"{v:.6g}" for v in result["predictions"])
    return f"{result['prediction']:.6g}\t{result['id']}"


def plot(metrics: dict, path, title: str = "") -> str:
    """`eval --plot`: predicted against true values as a PNG."""
    from grutool.scatter import plot_scatter

    return plot_scatter(metrics, path, title=title)
