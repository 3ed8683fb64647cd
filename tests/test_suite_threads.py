"""The suite's own setting: torch on the thread count tests/conftest.py chose (CI time, see conftest.py)."""

from __future__ import annotations

import os


def test_torch_runs_on_the_thread_count_conftest_set_before_importing_it():
    # An import of torch above conftest.py's os.environ line (there, or in a plugin) would leave torch on one
    # thread per core, and the suite slower on a busy 2-core machine, with every other test still passing.
    import torch

    threads = os.environ.get("OMP_NUM_THREADS")
    assert threads, "tests/conftest.py sets OMP_NUM_THREADS (1 unless the caller chose)"
    chosen = int(threads.split(",")[0])  # OpenMP's nested form: the outer level
    assert torch.get_num_threads() == 1 if chosen == 1 else 1 <= torch.get_num_threads() <= chosen  # torch caps it
