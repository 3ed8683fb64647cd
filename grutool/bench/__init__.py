"""`grutool bench`: trustworthy timings of GRU, LSTM and RNN layers and of configured models.

    grid.py       the grid of workloads (YAML file and command-line lists), checked without torch
    workloads.py  what one row runs: a recurrent layer, or a model's real train step / inference
    timing.py     the harness: warm-up, calibration, interleaved repeats, median and spread
    env.py        the environment, and which kernel (oneDNN, cuDNN, native loop) each row ran
    runner.py     grid -> timed rows -> report; the --smoke sanity checks
    report.py     JSON (round-trips), CSV, Markdown, rich table, --compare
    plot.py       --plot (matplotlib, an optional extra)

Python API: ``from grutool.bench.runner import run; report = run(Grid(cells=("gru", "lstm")))``.
"""
