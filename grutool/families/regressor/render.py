"""How `train`, `eval` and `infer` show regression results. No torch."""

from __future__ import annotations


def summary_line(metrics: dict) -> str:
    """The headline figures of a regression eval (in the target's units)."""
    return f"RMSE {metrics['rmse']:.4g}, MAE {metrics['mae']:.4g}, R² {metrics['r2']:.4f}"


def tables(metrics: dict) -> list:
    from grutool.cli.render.tables import plain

    return [f"{plain(metrics['source'])}: n={metrics['n']}; {summary_line(metrics)}; MSE {metrics['mse']:.4g}"]


def line(result: dict) -> str:
    """prediction<TAB>id; per step: id<TAB>prediction prediction ..."""
    if "predictions" in result:
        return f"{result['id']}\t" + " ".join(f"{v:.6g}" for v in result["predictions"])
    return f"{result['prediction']:.6g}\t{result['id']}"


def plot(metrics: dict, path, title: str = "") -> str:
    """`eval --plot`: predicted against true values as a PNG."""
    from grutool.scatter import plot_scatter

    return plot_scatter(metrics, path, title=title)
