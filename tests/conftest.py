"""Shared fixtures: tiny learnable datasets and configs written to tmp dirs."""

from __future__ import annotations

import logging
import os
import random
import warnings
from pathlib import Path

# One torch thread unless the caller chose: set before anything imports torch (torch reads it once, at import) and
# inherited by every `grutool` the tests start, as most of them already set it. The tests' models are tiny: a second
# thread had little to share and spun at each op's barrier, and with both cores busy (the tests' own subprocesses,
# anything else on a 2-core CI machine) each op waited for it: configs/reverse.yaml trained 4-6x slower on two
# threads than on one here, a tiny classifier 4x. What two threads do differently (a bidirectional layer's two
# directions side by side, GEMMs in column blocks) is tested where a test sets the count itself (tests/models:
# test_compiled_gru.py, test_fused_lstm.py, test_kernel_policy.py; train.num_threads; --threads).
if not os.environ.get("OMP_NUM_THREADS"):  # unset or empty: torch would take one thread per core
    os.environ["OMP_NUM_THREADS"] = "1"

import pytest  # noqa: E402

from grutool.training.callbacks import Callback  # noqa: E402

POS = ["good", "great", "lovely", "fine", "superb"]
NEG = ["bad", "awful", "poor", "dull", "boring"]
FILLER = ["the", "a", "film", "food", "was", "very", "really", "and", "it", "service", "book", "quite"]


def make_rows(n: int, seed: int) -> list[tuple[str, str]]:
    """Texts whose label is decided by which sentiment word they contain."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "pos" if i % 2 == 0 else "neg"
        words = rng.choices(FILLER, k=rng.randint(1, 8))
        words.insert(rng.randint(0, len(words)), rng.choice(POS if label == "pos" else NEG))
        rows.append((" ".join(words), label))
    rng.shuffle(rows)
    return rows


def write_tsv(path: Path, rows) -> Path:
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows), encoding="utf-8")
    return path


ROOT = Path(__file__).resolve().parents[1]


def shipped_config(name: str, out: Path, **sections) -> dict:
    """configs/<name> as a raw dict, its data paths made absolute, `sections` ({"train": {...}}) merged in,
    writing to `out`."""
    import yaml

    raw = yaml.safe_load((ROOT / "configs" / name).read_text(encoding="utf-8"))
    for split in ("train", "validation", "test"):
        if raw["data"].get(split):
            raw["data"][split] = str(ROOT / raw["data"][split])
    for section, values in sections.items():
        raw[section].update(values)
    raw["output_dir"] = str(out)
    return raw


def tiny_config(tmp: Path, **train) -> dict:
    """A raw config dict for a small, fast classifier on generated data."""
    data = tmp / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_tsv(data / "train.tsv", make_rows(64, 0))
    write_tsv(data / "validation.tsv", make_rows(24, 1))
    write_tsv(data / "test.tsv", make_rows(24, 2))
    t = {"batch_size": 8, "epochs": 3, "lr": 0.01, "seed": 3, "patience": None}
    t.update(train)
    return {
        "data": {"train": str(data / "train.tsv"), "validation": str(data / "validation.tsv"),
                 "test": str(data / "test.tsv")},
        "model": {"embedding_dim": 16, "hidden_size": 16, "bidirectional": True},
        "train": t,
        "output_dir": str(tmp / "run"),
    }


@pytest.fixture
def tiny(tmp_path):
    return tiny_config(tmp_path)


class InterruptAt(Callback):
    """Simulates Ctrl-C after `step` optimizer steps."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, tr, loss, tokens):
        if tr.state.step == self.step:
            raise KeyboardInterrupt


@pytest.fixture(autouse=True)
def _grutool_logger_restored():
    """Every test starts with the `grutool` logger as a fresh process has it: a command run in-process (a test's,
    or a module fixture's) points it at its own streams and stops propagation (cli.console.setup_logging), which
    would hide later tests' records from caplog."""
    logger = logging.getLogger("grutool")
    saved = list(logger.handlers), logger.level, logger.propagate
    logger.handlers, logger.level, logger.propagate = [], logging.NOTSET, True  # also after a module's fixtures
    yield
    logger.handlers, logger.level, logger.propagate = saved


def invoke(*args, input=None):
    """Run the CLI; afterwards restore the logger and warning hooks it points at CliRunner's streams."""
    from typer.testing import CliRunner

    from grutool.cli.app import app

    logger = logging.getLogger("grutool")
    saved = list(logger.handlers), logger.level, logger.propagate, warnings.showwarning
    try:
        return CliRunner().invoke(app, [str(a) for a in args], input=input)
    finally:
        logger.handlers, logger.level, logger.propagate = saved[0], saved[1], saved[2]
        warnings.showwarning = saved[3]


def assert_user_error(result, *expected: str) -> None:
    """Exit 2, one line on stderr saying `error: ...` with each expected piece, nothing on stdout."""
    assert result.exit_code == 2, f"exit {result.exit_code}:\n{result.output}\n{result.exception!r}"
    lines = [l for l in result.output.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert result.stdout.strip() == ""
    for text in expected:
        assert text in lines[0], f"{text!r} not in {lines[0]!r}"


@pytest.fixture
def fresh(monkeypatch, tmp_path):
    """A process that has not tried the compiled kernel's build yet, with an empty cache: the next compiled call
    builds (or fails to) as a new process would (the kernel tests, tests/models)."""
    from grutool.modules.rnn import compiled

    monkeypatch.setattr(compiled, "_EXT", None)
    monkeypatch.setattr(compiled, "_FAILED", None)
    monkeypatch.setattr(compiled, "_ANNOUNCED", False)
    monkeypatch.setattr(compiled, "_BRGEMM_OK", None)
    monkeypatch.setattr(compiled, "_COMPILERS", {})
    monkeypatch.setenv("GRUTOOL_CACHE", str(tmp_path / "cache"))
    return monkeypatch


def run_in_terminal(args: list[str], width: int, cwd: Path, rows: int = 30, timeout: float = 120) -> str:
    """What `grutool ARGS` writes to a pseudo-terminal of `width` columns and `rows` rows (stdout and stderr, raw:
    escape codes and carriage returns included); its exit code must be 0."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, width, 0, 0))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "COLUMNS": str(width)}
    proc = subprocess.Popen([sys.executable, "-m", "grutool", *args], stdin=slave, stdout=slave, stderr=slave,
                            env=env, close_fds=True, cwd=cwd)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    proc.wait(timeout=timeout)
    os.close(master)
    assert proc.returncode == 0, b"".join(chunks).decode("utf-8", "replace")
    return b"".join(chunks).decode("utf-8", "replace")



def trained_tiny_run(root: Path, epochs: int) -> Path:
    """`grutool train` of tiny_config (CPU) in `root`: the run directory, root/run."""
    import yaml

    raw = tiny_config(root, epochs=epochs, device="cpu")
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    result = invoke("train", root / "tiny.yaml", "-q")
    assert result.exit_code == 0, result.output
    return root / "run"

def process_running(pid: int) -> bool:
    """Whether process `pid` is alive and not a zombie (Linux: /proc)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def children_of(pid: int) -> list[int]:
    """The pids whose parent is `pid` (Linux: /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return found
