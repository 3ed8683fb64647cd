"""Kernel `compiled` (grutool/modules/rnn/csrc/gru.cpp) against nn.GRU and the other kernels, and its fallback.

The extension is built once into the cache (`grutool.cache.cache_root()`, keyed by torch version,
compiler, flags and source), so a session pays for the build at most once and later sessions not at all. Tests
that run the C++ loop skip, saying why, where no C++ compiler or ninja is installed; the fallback tests run anywhere.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from grutool.cells import get_cell
from grutool.modules.rnn import compiled, gemm
from grutool.modules.rnn.gemm import use_gemm_backend
from grutool.modules.rnn.gru import GRU
from grutool.modules.rnn.runtime import direction

import test_fused_gru as fused_tests

I, H, B, T = fused_tests.I, fused_tests.H, fused_tests.B, fused_tests.T  # the same sizes and lengths


@pytest.fixture(scope="module")
def ext():
    why = compiled._why_not()
    if why:
        pytest.skip(f"kernel compiled cannot be built here: {why}")
    return compiled.extension()  # with the tools present, a failed build is a failure, not a skip


def _pair(layers, bidirectional, batch_first, bias=True, dtype=torch.float64):
    return fused_tests._pair(layers, bidirectional, batch_first, bias=bias, dtype=dtype, kernel="compiled")


# nn.GRU parity over the 32-case float64 grid and in float32 on both GEMM paths: test_fused_gru.py, run for both
# kernels (fused and compiled).


def test_onednn_and_blas_paths_agree_at_a_size_where_auto_picks_onednn(ext):
    # H 256: the step GEMM on pre-packed weights and the weight gradients through oneDNN, as in the fused kernel.
    if not gemm._onednn_available():
        pytest.skip("this torch build has no oneDNN linear ops")
    torch.manual_seed(0)
    layer = GRU(32, 256, batch_first=True, bidirectional=True, kernel="compiled")
    x = torch.randn(32, 40, 32)
    assert gemm.gemm_backend(torch.float32, 32, 256) == "onednn"
    results = {}
    for backend in ("onednn", "blas"):
        layer.zero_grad()
        with use_gemm_backend(backend):
            out, h = layer(x)
            (out.square().sum() + h.sum()).backward()
        results[backend] = [out, h] + [p.grad.clone() for p in layer.parameters()]
    for a, b in zip(results["onednn"], results["blas"], strict=True):
        assert (a - b).abs().max().item() < 1e-3 * max(1.0, a.abs().max().item())


def _grads_of(layer, x, lengths=None):
    """Output rows, h_n and every gradient (input included) of a fixed loss, for one call of `layer`."""
    x = x.clone().requires_grad_()
    layer.zero_grad()
    inp = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False) if lengths is not None else x
    out, h = layer(inp)
    out = out.data if lengths is not None else out
    g = torch.Generator().manual_seed(3)
    ((out * torch.randn(out.shape, generator=g)).sum() + (h * torch.randn(h.shape, generator=g)).sum()).backward()
    return [out, h, x.grad] + [p.grad.clone() for p in layer.parameters()]


def _brgemm(ext):
    if not compiled.brgemm_ok():
        pytest.skip("oneDNN's brgemm micro-kernel does not run on this CPU / torch build")


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("rows,hidden,steps", [(100, 16, 6), (5, 200, 3), (7, 512, 4)])
def test_brgemm_step_gemms_equal_blas_in_row_chunks_and_column_panels(ext, rows, hidden, steps, bidirectional):
    # 100 sequences: the step GEMMs run in chunks of 64 rows. H 16: W_hh in one panel (small enough for L2);
    # H 200 and 512 in panels of 32 columns, H 200's last one partial (3H = 600 columns; the backward's 200);
    # at H 512 the backward's inner dimension 3H = 1536 goes in chunks of 512. Ragged lengths: every row count.
    _brgemm(ext)
    torch.manual_seed(0)
    layer = GRU(8, hidden, 2, bidirectional=bidirectional, kernel="compiled")
    x = torch.randn(steps, rows, 8)
    lengths = torch.randint(1, steps + 1, (rows,))
    results = {}
    for backend in ("brgemm", "blas"):
        with use_gemm_backend(backend):
            results[backend] = _grads_of(layer, x, lengths)
    for a, b in zip(results["brgemm"], results["blas"], strict=True):
        assert (a - b).abs().max().item() < 1e-4 * max(1.0, b.abs().max().item())


def test_auto_picks_brgemm_only_for_float32_up_to_its_hidden_size(ext, monkeypatch):
    _brgemm(ext)
    assert compiled.step_backend(torch.float32, 32, 64) == "brgemm"
    assert compiled.step_backend(torch.float32, 32, gemm.BRGEMM_MAX_HIDDEN) == "brgemm"
    assert compiled.step_backend(torch.float64, 32, 64) == "blas"
    assert compiled.step_backend(torch.float32, 32, 2 * gemm.BRGEMM_MAX_HIDDEN) != "brgemm"
    monkeypatch.setattr(compiled, "_BRGEMM_OK", False)  # where the probe says no, never
    assert compiled.step_backend(torch.float32, 32, 64) != "brgemm"


def test_a_layer_gives_the_same_bits_on_one_thread_and_on_two(ext):
    # Two threads run a bidirectional layer's directions side by side, one runs them one after the other:
    # the same arithmetic either way, so outputs and every gradient agree bit for bit.
    torch.manual_seed(0)
    layer = GRU(8, 32, 2, bidirectional=True, kernel="compiled")
    x = torch.randn(9, 12, 8)
    lengths = torch.randint(1, 10, (12,))
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append(_grads_of(layer, x, lengths) + _grads_of(layer, x))
    finally:
        torch.set_num_threads(before)
    for a, b in zip(*results, strict=True):
        assert torch.equal(a, b)


def test_with_more_threads_than_directions_the_results_stay(ext):
    # Four threads: a small layer still runs its directions side by side (the same bits as one thread); a large
    # one (a step over ~8 MFLOP) runs them one after the other, each step's GEMMs shared by all four threads in
    # column blocks (the same sums, other kernel shapes: equal to float32 rounding).
    torch.manual_seed(0)
    before = torch.get_num_threads()
    try:
        for hidden, exact in ((16, True), (256, False)):
            layer = GRU(8, hidden, bidirectional=True, kernel="compiled")
            x = torch.randn(6, 32, 8)
            lengths = torch.randint(1, 7, (32,))
            results = []
            for threads in (1, 4):
                torch.set_num_threads(threads)
                results.append(_grads_of(layer, x, lengths) + _grads_of(layer, x))
            for a, b in zip(*results, strict=True):
                if exact:
                    assert torch.equal(a, b)
                else:
                    assert (a - b).abs().max().item() < 1e-5 * max(1.0, b.abs().max().item())
    finally:
        torch.set_num_threads(before)


def test_no_bias_and_unbatched_input(ext):
    ref, mine = _pair(2, True, False, bias=False)
    x = torch.randn(T, I, dtype=torch.float64)  # (T, I): nn.GRU's unbatched form
    h0 = torch.randn(4, H, dtype=torch.float64)
    for a, b in zip(ref(x, h0), mine(x, h0), strict=True):
        assert a.shape == b.shape and (a - b).abs().max().item() < 1e-10


def test_gradcheck_on_a_tiny_case(ext):
    torch.manual_seed(0)
    w = [torch.randn(9, 2, dtype=torch.float64, requires_grad=True),
         torch.randn(9, 3, dtype=torch.float64, requires_grad=True),
         torch.randn(9, dtype=torch.float64, requires_grad=True),
         torch.randn(9, dtype=torch.float64, requires_grad=True)]
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)  # packed rows of lengths 3, 2
    h0 = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)
    for reverse in (False, True):
        def f(x, h0, *w):
            return direction(GRU.compiled_step, x, (h0,), tuple(w), [2, 2, 1], reverse)
        assert torch.autograd.gradcheck(f, (x, h0, *w))


def test_equals_the_fused_kernel_with_dropout_between_layers(ext):
    torch.manual_seed(0)
    mine = GRU(I, H, 3, dropout=0.5, bidirectional=True, kernel="compiled").double().train()
    fused = GRU(I, H, 3, dropout=0.5, bidirectional=True, kernel="fused").double().train()
    fused.load_state_dict(mine.state_dict())
    x = torch.randn(T, B, I, dtype=torch.float64)
    results = []
    for layer in (mine, fused):
        torch.manual_seed(5)  # the same dropout masks
        out, h = layer(x)
        (out.square().sum() + h.sum()).backward()
        results.append([out, h] + [p.grad for p in layer.parameters()])
    for a, b in zip(*results, strict=True):
        assert (a - b).abs().max().item() < 1e-10
    mine.eval()
    assert torch.equal(mine(x)[0], mine(x)[0]), "no randomness in eval mode"


# Deterministic run to run: test_fused_gru.py::test_runs_are_deterministic, for both kernels.


@pytest.mark.parametrize("saved_with,loaded_with", [(a, b) for a in ("native", "fused", "compiled")
                                                     for b in ("native", "fused", "compiled") if a != b])
def test_a_checkpoint_of_any_kernel_predicts_the_same_with_any_other(tmp_path, saved_with, loaded_with):
    # (native <-> fused runs everywhere; a pair with compiled needs the build tools)
    if "compiled" in (saved_with, loaded_with) and compiled._why_not():
        pytest.skip(f"kernel compiled cannot be built here: {compiled._why_not()}")
    from grutool.checkpoint import load_checkpoint, save_atomic
    from grutool.config import Config, ModelConfig
    from grutool.families.classifier.model import Classifier

    def build(kernel):
        torch.manual_seed(0)
        m = ModelConfig(embedding_dim=8, hidden_size=6, num_layers=2, bidirectional=True, kernel=kernel,
                        char_features=True, char_embedding_dim=4, char_hidden_size=5)
        return Classifier.from_config(Config.model_construct(model=m), vocab_size=50, num_outputs=3,
                                      num_chars=12).eval()

    saved = build(saved_with)
    path = tmp_path / "best.pt"
    save_atomic({"model": saved.state_dict()}, path)
    loaded = build(loaded_with)
    for p in loaded.parameters():
        torch.nn.init.zeros_(p)  # nothing left of its own initialisation
    loaded.load_state_dict(load_checkpoint(path)["model"])
    assert list(saved.state_dict()) == list(loaded.state_dict())
    ids = torch.randint(1, 50, (4, 9))
    lengths = torch.tensor([9, 3, 9, 1])
    chars = torch.randint(1, 12, (4, 9, 5))
    with torch.no_grad():
        a, _ = saved(ids, lengths, chars=chars)
        b, _ = loaded(ids, lengths, chars=chars)
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.equal(a.argmax(-1), b.argmax(-1))


def test_resume_with_the_compiled_kernel_equals_uninterrupted(ext, tmp_path):
    from conftest import InterruptAt, tiny_config
    from grutool import rundir
    from grutool.checkpoint import load_checkpoint
    from grutool.config_file import parse_config
    from grutool.errors import TrainingInterrupted
    from grutool.training.loop import train

    raw = tiny_config(tmp_path / "a", epochs=2)
    raw["model"].update(kernel="compiled", num_layers=2, dropout=0.3, embedding_dropout=0.3)
    train(parse_config(raw))
    reference = load_checkpoint(tmp_path / "a" / "run" / rundir.LAST)["model"]
    raw["output_dir"] = str(tmp_path / "b")
    with pytest.raises(TrainingInterrupted):
        train(parse_config(raw), callbacks=[InterruptAt(3)])
    train(parse_config(raw), resume=True)
    resumed = load_checkpoint(tmp_path / "b" / rundir.LAST)["model"]
    assert resumed.keys() == reference.keys()
    for k in reference:
        assert torch.equal(resumed[k], reference[k]), k


# --- where it cannot be built ------------------------------------------------------------------------


@pytest.mark.parametrize("cxx,reason", [("/bin/false", "the build failed"),
                                         ("no-such-compiler-here", "no C++ compiler")])
def test_a_failed_build_falls_back_to_the_fused_kernel_and_says_so_once(fresh, caplog, cxx, reason):
    from torch.utils.cpp_extension import is_ninja_available

    if cxx == "/bin/false" and not is_ninja_available():
        pytest.skip("no ninja here: the build is refused before the compiler runs")
    fresh.setenv("CXX", cxx)
    torch.manual_seed(0)
    layer = GRU(I, H, 2, bidirectional=True, kernel="compiled").double()
    fused = GRU(I, H, 2, bidirectional=True, kernel="fused").double()
    fused.load_state_dict(layer.state_dict())
    x = torch.randn(T, B, I, dtype=torch.float64)
    with caplog.at_level(logging.WARNING, logger="grutool"):
        assert layer.path(x) == "fused"
        out, h = layer(x)
        layer(x)
    assert torch.equal(out, fused(x)[0]) and torch.equal(h, fused(x)[1])
    lines = [r for r in caplog.records if "kernel compiled: not available" in r.getMessage()]
    assert len(lines) == 1, "said once per process"
    tried = [r for r in caplog.records if "kernel compiled: building it" in r.getMessage()]
    assert len(tried) == (cxx == "/bin/false"), "a build that runs is said first, once"
    message = lines[0].getMessage()
    assert reason in message and "running the other kernels instead (fused" in message
    assert "\n" not in message and lines[0].exc_info is None, "one line, no traceback"


def test_a_compile_error_is_said_in_one_line(fresh, tmp_path, caplog):
    if compiled._why_not():
        pytest.skip(f"no build tools here: {compiled._why_not()}")
    broken = tmp_path / "gru.cpp"
    broken.write_text("#error deliberately broken for a test\n")
    fresh.setattr(compiled, "SOURCE", broken)
    with caplog.at_level(logging.WARNING, logger="grutool"):
        assert GRU(I, H, kernel="compiled").path(torch.randn(T, B, I)) == "fused"
    message = caplog.records[-1].getMessage()
    assert "error: #error deliberately broken for a test" in message and "\n" not in message, message


# A compiler that answers --version and otherwise writes its process id where $FAKE_CXX_PID says, then waits.
FAKE_CXX = """#!/bin/sh
case "$1" in --version|-v) echo "fake c++ 1.0"; exit 0;; esac
echo $$ > "$FAKE_CXX_PID"
exec sleep 120
"""


def _running(pid: int) -> bool:
    """Whether process `pid` exists and has not ended (a zombie, ended and not yet reaped, has)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_to_grutool_alone_during_the_build_stops_the_compiler_too(tmp_path, sig):
    # `timeout`, `kill` or a CI runner signal grutool alone, not its process group as a terminal's Ctrl-C does:
    # ninja and the compiler went on compiling after grutool had ended, and the next process built beside them.
    from torch.utils.cpp_extension import is_ninja_available

    if not is_ninja_available():
        pytest.skip("no ninja here: no build starts")
    cxx, pidfile = tmp_path / "c++", tmp_path / "compiler.pid"
    cxx.write_text(FAKE_CXX)
    cxx.chmod(0o755)
    env = {**os.environ, "CXX": str(cxx), "GRUTOOL_CACHE": str(tmp_path / "cache"), "FAKE_CXX_PID": str(pidfile)}
    code = ("import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "  # whatever the suite's is
            "from grutool.modules.rnn import compiled; compiled.extension()")
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while not (pidfile.exists() and pidfile.read_text().strip()):
            assert proc.poll() is None, f"the build ended before its compiler started: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "the compiler never started"
            time.sleep(0.05)
        compiler = int(pidfile.read_text())
        assert _running(compiler)
        proc.send_signal(getattr(signal, sig))
        proc.wait(timeout=60)
        gone = time.monotonic() + 15
        while _running(compiler) and time.monotonic() < gone:
            time.sleep(0.05)
        outlived = _running(compiler)
    finally:
        if proc.poll() is None:
            proc.kill()
        if pidfile.exists() and pidfile.read_text().strip() and _running(int(pidfile.read_text())):
            os.kill(int(pidfile.read_text()), signal.SIGKILL)  # not left behind, whatever the outcome
    assert not outlived, f"the compiler outlived grutool's {sig}"


def test_only_a_forward_call_of_kernel_compiled_or_auto_builds(fresh):
    fresh.setenv("CXX", "no-such-compiler-here")
    for kernel in ("compiled", "auto", "fused", "native"):
        get_cell("gru").build(I, H, kernel=kernel)
    for kernel in ("fused", "native"):
        get_cell("gru").build(I, H, kernel=kernel)(torch.randn(B, T, I))
    assert compiled._EXT is None and compiled._FAILED is None, "nothing tried the build"
    get_cell("gru").build(I, H, kernel="auto")(torch.randn(B, T, I))  # auto runs compiled where it is built
    assert compiled._FAILED is not None, "auto's first call tried it"


def test_every_cell_has_a_compiled_kernel_with_its_fused_kernel_s_capabilities():
    for name in ("gru", "lstm", "rnn"):
        assert "compiled" in get_cell(name).kernels
        module = type(get_cell(name).build(I, H, kernel="compiled"))
        assert module.compiled_step.fusable is module.cell_step.fusable
        assert module.compiled_step.stacks == module.cell_step.stacks
        assert module.compiled_step.cell_state == module.cell_step.cell_state


# --- what bench and shapes report ---------------------------------------------------------------------


def _bench_kernels(tmp_path) -> set:
    from conftest import invoke
    from grutool.bench import report as reports

    out = tmp_path / "b.json"
    result = invoke("bench", "--smoke", "-q", "--cells", "gru", "--kernels", "compiled", "--mode", "train", "-o", out)
    assert result.exit_code == 0, result.output
    return {r["kernel"] for r in reports.read_report(out)["rows"]}


def test_bench_reports_the_compiled_kernel(ext, tmp_path):
    assert _bench_kernels(tmp_path) == {"compiled"}


def test_bench_reports_the_fused_kernel_where_the_build_failed(fresh, tmp_path):
    fresh.setenv("CXX", "no-such-compiler-here")
    assert _bench_kernels(tmp_path) == {"fused"}


def test_shapes_says_which_kernel_ran(ext):
    from grutool.shapes import LayerSpec, layer_report

    report = layer_report(LayerSpec(cell="gru", num_layers=2, bidirectional=True, kernel="compiled"))
    assert report["path"] == "compiled" and report["all_passed"]
    assert "compiled C++ CPU kernel" in report["module"]


def test_saturated_gates_and_nan_behave_as_in_nn_gru(ext):
    # The gate pass computes exp itself (vectorised): its clamps must saturate as libm does and let a NaN through.
    for dtype in (torch.float32, torch.float64):
        ref, mine = _pair(1, True, False, dtype=dtype)
        x = torch.randn(T, B, I, dtype=dtype) * torch.tensor([1e-3, 1.0, 50.0, 1e4], dtype=dtype).view(1, B, 1)
        with torch.no_grad():
            a, b = ref(x)[0], mine(x)[0]
            assert (a - b).abs().max().item() < (1e-10 if dtype == torch.float64 else 1e-5)
            x[2, 1, 0] = float("nan")
            a, b = ref(x)[0], mine(x)[0]
        assert torch.equal(a.isnan(), b.isnan()) and a.isnan().any()


def test_an_unwritable_cache_is_a_fallback_too(fresh, tmp_path, caplog):
    if compiled._why_not():
        pytest.skip(f"no build tools here: {compiled._why_not()}")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    fresh.setenv("GRUTOOL_CACHE", str(blocker))
    with caplog.at_level(logging.WARNING, logger="grutool"):
        assert GRU(I, H, kernel="compiled").path(torch.randn(T, B, I)) == "fused"
    message = caplog.records[-1].getMessage()
    # Nothing was built: the message says where the cache is and the setting that moves it.
    assert f"its cache folder {blocker}/ext/" in message and "cannot be written" in message, message
    assert "set GRUTOOL_CACHE to a writable folder" in message and "the build failed" not in message


# --- the LSTM's and the RNN's compiled kernels share the build, its fallback and the run-to-run guarantees --------


@pytest.mark.parametrize("name", ["lstm", "rnn"])
def test_without_the_build_the_lstm_and_rnn_run_their_fused_kernels_and_it_is_said_once(fresh, caplog, name):
    fresh.setenv("CXX", "no-such-compiler-here")
    torch.manual_seed(0)
    layer = get_cell(name).build(I, H, num_layers=2, bidirectional=True, kernel="compiled").double()
    fused = get_cell(name).build(I, H, num_layers=2, bidirectional=True, kernel="fused").double()
    fused.load_state_dict(layer.state_dict())
    x = torch.randn(B, T, I, dtype=torch.float64)
    with caplog.at_level(logging.WARNING, logger="grutool"):
        assert layer.path(x) == "fused"
        out, state = layer(x)
        layer(x)
    assert torch.equal(out, fused(x)[0])
    lines = [r for r in caplog.records if "kernel compiled" in r.getMessage()]
    assert len(lines) == 1 and "no C++ compiler" in lines[0].getMessage()


@pytest.mark.parametrize("name", ["lstm", "rnn"])
def test_the_lstm_and_rnn_compiled_kernels_are_deterministic_and_take_any_kernel_s_checkpoint(ext, tmp_path, name):
    torch.manual_seed(0)
    native = get_cell(name).build(I, H, num_layers=2, bidirectional=True, kernel="native")
    torch.save(native.state_dict(), tmp_path / "layer.pt")
    layer = get_cell(name).build(I, H, num_layers=2, bidirectional=True, kernel="compiled")
    layer.load_state_dict(torch.load(tmp_path / "layer.pt"))
    x = torch.randn(B, T, I, requires_grad=True)

    def run():
        layer.zero_grad()
        x.grad = None
        out, _ = layer(x)
        out.square().sum().backward()
        return [out.detach(), x.grad.clone()] + [p.grad.clone() for p in layer.parameters()]

    first, second = run(), run()
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True)), "the same bits run to run"
    with torch.no_grad():
        assert (layer(x)[0] - native(x)[0]).abs().max().item() < 1e-5


def test_the_rnn_compiled_kernel_passes_gradcheck(ext):
    for nonlinearity in ("tanh", "relu"):
        torch.manual_seed(0)
        layer = get_cell("rnn").build(2, 3, bidirectional=True, kernel="compiled").double()
        layer.nonlinearity = nonlinearity
        x = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
        h0 = torch.randn(2, 2, 3, dtype=torch.float64, requires_grad=True)

        def f(x, h0):
            out, h = layer(torch.nn.utils.rnn.pack_padded_sequence(x, torch.tensor([4, 2]), batch_first=True), h0)
            return out.data, h

        assert layer.path(x) == "compiled"
        assert torch.autograd.gradcheck(f, (x, h0))


def test_a_second_install_of_the_same_sources_loads_the_build_instead_of_rebuilding_it(ext, tmp_path):
    # Two checkouts or virtual environments of one grutool share a cache directory (it is keyed by the sources'
    # text); ninja's build file names the source by path, so each used to rebuild what the other had built, in
    # its first new process (within one process torch skips the build of sources it has seen).
    directory = compiled.cache_dir()
    assert directory.name.endswith(ext.__name__.rsplit("_", 1)[-1]), "the key moved after the build (its flags)"
    library = directory / f"{compiled._module_name(directory)}.so"
    other = tmp_path / "elsewhere" / "csrc"
    other.mkdir(parents=True)
    for f in [compiled.SOURCE, *compiled.SOURCE.parent.glob("*.h")]:
        (other / f.name).write_bytes(f.read_bytes())
    built, ninja = library.stat().st_mtime_ns, (directory / "build.ninja").read_text()
    code = ("import pathlib, sys; from grutool.modules.rnn import compiled; "
            "compiled.SOURCE = pathlib.Path(sys.argv[1]); "
            "assert str(compiled.cache_dir()) == sys.argv[2], compiled.cache_dir(); compiled.build()")
    subprocess.run([sys.executable, "-c", code, str(other / compiled.SOURCE.name), str(directory)], check=True,
                   timeout=600)
    assert library.stat().st_mtime_ns == built, "the library was built again"
    assert (directory / "build.ninja").read_text() == ninja


# --- one cache directory per build command, and every build said ---------------------------------------------


def test_the_cache_is_grutool_cache_then_xdg_cache_home_then_the_home_folder_s(fresh, tmp_path):
    # The build went to ~/.cache/grutool whatever XDG_CACHE_HOME said.
    home = tmp_path / "home"
    fresh.setenv("HOME", str(home))
    fresh.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    fresh.setenv("GRUTOOL_CACHE", str(tmp_path / "mine"))
    assert compiled.cache_dir().parent == tmp_path / "mine" / "ext"
    fresh.delenv("GRUTOOL_CACHE")
    assert compiled.cache_dir().parent == tmp_path / "xdg" / "grutool" / "ext"
    for ignored in ("relative/cache", ""):  # the XDG spec: a relative path is to be ignored
        fresh.setenv("XDG_CACHE_HOME", ignored)
        assert compiled.cache_dir().parent == home / ".cache" / "grutool" / "ext", ignored
    fresh.delenv("XDG_CACHE_HOME")
    assert compiled.cache_dir().parent == home / ".cache" / "grutool" / "ext"


def test_each_compiler_gets_its_own_cache_directory_and_an_unchanged_setup_keeps_its_own(fresh):
    # The key used to ignore the compiler: `CXX=g++` and the default `c++` shared a directory and each rewrote
    # its build file, so every switch rebuilt (a silent 20-60 s).
    fresh.delenv("CXX", raising=False)
    default = compiled.cache_dir()
    assert compiled.cache_dir() == default, "an unchanged setup, the same directory"
    for cxx in ("g++", "clang++", "no-such-compiler-here"):
        fresh.setenv("CXX", cxx)
        assert compiled.cache_dir() != default, cxx
        assert compiled.cache_dir() == compiled.cache_dir()
        assert f"compiler {cxx} " in compiled.build_key()
    fresh.delenv("CXX")
    assert compiled.cache_dir() == default
    fresh.setattr(compiled, "CFLAGS", compiled.CFLAGS + ["-g"])
    assert compiled.cache_dir() != default, "other flags, another build"


# The smallest library cpp_extension.load takes (a Python module named as torch tells it): builds in a second.
TINY = """#include <Python.h>
#define TINY_INIT2(name) PyInit_##name
#define TINY_INIT(name) TINY_INIT2(name)
#define TINY_STR2(name) #name
#define TINY_STR(name) TINY_STR2(name)
static struct PyModuleDef tiny = {PyModuleDef_HEAD_INIT, TINY_STR(TORCH_EXTENSION_NAME), nullptr, -1, nullptr};
PyMODINIT_FUNC TINY_INIT(TORCH_EXTENSION_NAME)(void) { return PyModule_Create(&tiny); }
"""


def test_every_build_is_said_first_and_an_unchanged_setup_loads_without_one(tmp_path):
    # Each load in a new process, as a user's commands: one stderr line before a build (it used to be an info
    # log, unseen in `shapes`, and only where the library was missing), none before a plain load.
    if compiled._why_not():
        pytest.skip(f"no build tools here: {compiled._why_not()}")
    source = tmp_path / "csrc" / "tiny.cpp"
    source.parent.mkdir()
    source.write_text(TINY)
    code = ("import pathlib, sys; from grutool.modules.rnn import compiled; "
            "compiled.SOURCE = pathlib.Path(sys.argv[1]); compiled.build(); print(compiled.cache_dir())")
    base = {k: v for k, v in os.environ.items() if k != "CXX"}

    def load(**env) -> tuple:
        proc = subprocess.run([sys.executable, "-c", code, str(source)], capture_output=True, text=True,
                              env={**base, "GRUTOOL_CACHE": str(tmp_path / "cache"), **env}, timeout=600)
        assert proc.returncode == 0, proc.stderr
        directory = Path(proc.stdout.strip())
        return directory, [line for line in proc.stderr.splitlines() if "kernel compiled: building it" in line]

    def built(directory: Path) -> int:
        return (directory / f"{compiled._module_name(directory)}.so").stat().st_mtime_ns

    first, said = load()
    assert len(said) == 1 and str(first) in said[0], said
    when = built(first)
    assert load() == (first, []) and built(first) == when, "the same setup loads what it built"
    if shutil.which("g++"):
        other, said = load(CXX="g++")
        assert other != first and len(said) == 1, said
        assert load() == (first, []) and built(first) == when, "another compiler's build left this one alone"
    (first / "tiny.o").unlink()  # ninja has work to do though the library is there: a rebuild, said too
    again, said = load()
    assert again == first and len(said) == 1 and str(first) in said[0], said
    assert built(first) != when
