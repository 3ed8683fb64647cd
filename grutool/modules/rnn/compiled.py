"""The compiled GRU, LSTM and RNN kernels (`model.kernel: compiled`): the time loop of one direction in C++ (`csrc/`).

Same packed rows, `_Direction` Function, layer stack, dropout and h0 handling as the Python fused kernel
(`grutool.modules.rnn.runtime`); only the per-direction loop differs: per step the GEMMs (float32 up to
H 1024, `step_backend`: x_t W_ih^T and h W_hh^T on oneDNN's batch-reduce micro-kernel, called on raw
pointers; else one input GEMM before the loop and, per step, the fused kernel's ATen/oneDNN choice for the
GRU and BLAS for the LSTM and RNN) and one pass over the live rows for all the gate arithmetic, forward and
backward. A bidirectional layer runs its two directions in one call (`forward_pair`, the runtime's `_Pair`),
on a torch thread each.

Built with PyTorch's extension mechanism (`torch.utils.cpp_extension.load`: a C++ compiler and ninja)
on the first call that needs it (a training asks before its first step), never at import, into a cache directory
keyed by everything the build command depends on (`build_key`: the sources, the flags, the compiler and its
version, torch's version, place and C++ ABI, the Python ABI and headers): `<cache>/ext/<key>`, the cache being
`$GRUTOOL_CACHE`, `$XDG_CACHE_HOME/grutool` or `~/.cache/grutool` (`grutool.cache.cache_root`), so two setups
(`CXX=g++` and the default `c++`) build once each instead of rebuilding each other's. A file lock keeps two processes from building at once; later processes load the built library. The compile
runs in a child process group (`apart`), so a signal that stops grutool stops the compiler too.
Whenever the load will compile (no library yet, or ninja has work to do) one line says so first. Where the
build cannot run (no compiler, no ninja, a compile error) `extension()` raises `Unavailable` with one line
saying why, and the module (`Recurrent.path`) runs the fused kernel instead, saying so once per process.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any, NamedTuple, Optional

import torch

from grutool.cache import cache_root
from grutool.modules.rnn import apart, gemm
from grutool.modules.rnn.runtime import CellStep

log = logging.getLogger("grutool")

# The extension's one translation unit; it includes the headers beside it (common.h, lstm.h, rnn.h).
SOURCE = Path(__file__).with_name("csrc") / "gru.cpp"
# Nothing machine-specific (the gate pass brings one copy per instruction set, picked at load), so a cache
# built on one CPU loads on another. -fno-trapping-math lets the compiler vectorise the gate pass's clamps
# (compare-and-select); grutool installs no floating-point trap handlers that could tell the difference.
CFLAGS = ["-O3", "-fno-trapping-math"]
_COMPILERS: dict = {}  # compiler command -> what its `--version` said (asked once per process)


def compiler() -> str:
    """The C++ compiler command the build runs: $CXX, else `c++` (as torch.utils.cpp_extension picks it)."""
    return os.environ.get("CXX", "c++")


def _compiler_said(command: str) -> str:
    """`command --version`'s output ("" where it does not run), asked once per process and compiler."""
    if command not in _COMPILERS:
        import subprocess

        try:
            _COMPILERS[command] = subprocess.run([command, "--version"], capture_output=True, text=True,
                                                 timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            _COMPILERS[command] = ""
    return _COMPILERS[command]


def openmp_flags() -> list:
    """-fopenmp where torch runs on OpenMP and the compiler is GCC, so that ATen's parallel_for in the loop
    (both directions side by side, rows of a large gate pass) runs on torch's threads: the library then
    links libgomp by its soname and shares the copy torch has loaded. Without it (clang would link a second
    OpenMP runtime, LLVM's) the same code runs on one thread, with the same results."""
    if sys.platform.startswith("linux") and torch.backends.openmp.is_available():
        said = _compiler_said(compiler())
        if "Free Software Foundation" in said and "clang" not in said.lower():
            return ["-fopenmp"]  # a new list each call: cpp_extension.load appends torch's own flags to ldflags
    return []


class Unavailable(RuntimeError):
    """The compiled kernel cannot be built or loaded here; the message is one line saying why."""


_EXT: Any = None                  # the loaded extension module
_FAILED: Optional[str] = None     # why it could not be built, once tried
_ANNOUNCED = False                # the fallback was logged


def build_key() -> str:
    """What the build command and its result depend on, one line each: the sources' text (any of them changed
    builds anew), the flags, the compiler (as run, where it resolves, its version), torch (version, place:
    its headers and libraries are on the command line, C++ ABI) and Python (ABI, headers). Two setups that
    differ in any of them would rewrite each other's build file and rebuild in turn in one directory."""
    import sysconfig

    sources = [SOURCE, *sorted(SOURCE.parent.glob("*.h"))]
    cxx = compiler()
    said = _compiler_said(cxx).strip().splitlines()
    abi = getattr(torch._C, "_GLIBCXX_USE_CXX11_ABI", "?")
    return "\n".join([
        "sources " + hashlib.sha256(b"".join(f.read_bytes() for f in sources)).hexdigest(),
        "flags " + " ".join(CFLAGS + openmp_flags()),
        f"compiler {cxx} ({shutil.which(cxx)}): {said[0] if said else '?'}",
        f"torch {torch.__version__} ({Path(torch.__file__).parent}), cxx11 abi {abi}",
        f"python {sys.implementation.cache_tag} ({sysconfig.get_paths()['include']})",
    ])


def cache_dir() -> Path:
    """Where the build goes: one directory per torch version and Python ABI (in its name) and `build_key()` (its
    hash) under `cache_root()`, e.g. ~/.cache/grutool/ext/torch2.13.0-cpu-cpython-311-00ca5a332cbc; `key.txt`
    there says the key."""
    root = cache_root()
    digest = hashlib.sha256(build_key().encode()).hexdigest()[:12]  # reads the sources
    return root / "ext" / f"torch{torch.__version__.replace('+', '-')}-{sys.implementation.cache_tag}-{digest}"


def _module_name(directory: Path) -> str:
    return "grutool_gru_" + directory.name.rsplit("-", 1)[-1]


def _why_not() -> Optional[str]:
    """A missing tool, said before trying (the build's own error would be a page of text)."""
    from torch.utils import cpp_extension

    cxx = compiler()
    if shutil.which(cxx) is None:
        return f"no C++ compiler ({cxx!r} not found; install g++ or clang, or set CXX)"
    if not cpp_extension.is_ninja_available():
        return "ninja is not installed (pip install ninja, or the system package)"
    return None


def _one_line(error: BaseException) -> str:
    """What a build error says in one line: the compiler's first `file:line: error: ...` where there is one
    (ninja's own message starts with the whole command line), else the error's first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    said = next((line for line in lines if ": error:" in line or ": fatal error:" in line), None)
    return (said or (lines[0] if lines else type(error).__name__))[:300]


def _sources_in(directory: Path) -> Path:
    """The sources, copied into the build directory, and the path of the one to compile there. ninja's build
    file names its source by path, so two installs of the same grutool (two checkouts or virtual environments:
    the same source text, so the same cache directory) would each rewrite it and rebuild the library the other
    built, a silent minute on the first step of every other run. Built from its own copy, a directory's build
    file never changes. The directory's name hashes the text (`build_key`), so a copy that is there is the right
    one."""
    src = directory / "src"
    src.mkdir(exist_ok=True)
    for f in [SOURCE, *sorted(SOURCE.parent.glob("*.h"))]:
        target = src / f.name
        text = f.read_bytes()
        if not target.exists() or target.read_bytes() != text:
            target.write_bytes(text)
    return src / SOURCE.name


def _will_build(directory: Path, name: str, source: Path) -> bool:
    """Whether loading from `directory` compiles first: no library or build file yet, a build file written for
    other sources, or ninja has work to do (an object file gone, a header of torch's reinstalled). Every input
    of the build command is in the directory's name (`build_key`), so the build file there is the one torch
    writes again and ninja's dry run says what the load will do."""
    import subprocess

    ninja = directory / "build.ninja"
    if not (directory / f"{name}.so").exists() or not ninja.exists() or str(source) not in ninja.read_text():
        return True
    try:
        said = subprocess.run(["ninja", "-n"], cwd=directory, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return True
    return said.returncode != 0 or "no work to do" not in said.stdout


def build(directory: Optional[Path] = None) -> Any:
    """Compile (or load the already compiled) extension from `directory` (default `cache_dir()`); a compile is
    said first, in one line (logged at warning level, so that it reaches stderr whatever the command's logging,
    -q too: the first call waits 20-60 s; marked a notice, so the CLI does not label it `warning:`)."""
    import portalocker

    why = _why_not()
    if why:
        raise Unavailable(why)
    try:
        directory = directory or cache_dir()  # reads the source: a package installed without it fails here
        name = _module_name(directory)
        try:  # an unwritable cache is said as such (nothing was built), with the setting that moves it
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "grutool.lock").touch()
        except OSError as e:
            why = e.strerror.lower() if e.strerror else str(e)
            raise Unavailable(f"its cache folder {directory} cannot be written: {why}; set GRUTOOL_CACHE to a "
                              f"writable folder") from e
        # torch's own build lock is a file that a killed build leaves behind; an OS lock dies with its process.
        with portalocker.Lock(str(directory / "grutool.lock"), timeout=600):
            source = _sources_in(directory).resolve()  # torch writes the absolute path into the build file
            if _will_build(directory, name, source):
                # A notice, not a warning: shown even under -q (it explains a pause), without `warning:`.
                log.warning("kernel compiled: building it into %s (once per compiler, torch and kernel source; "
                            "20-60 s)", directory, extra={"notice": True})
                (directory / "key.txt").write_text(build_key() + "\n")  # what this directory was built for
                apart.run(directory, name, source, _load)  # in its own process group: stopping grutool stops it
            return _load(directory, name, source)
    except Unavailable:
        raise
    except Exception as e:  # compiler errors, a failed link, an unloadable library: all mean the same here
        raise Unavailable(f"the build failed: {_one_line(e)}") from e


def _load(directory: Path, name: str, source: Path) -> Any:
    """torch's load of the extension from `directory`, compiling what ninja finds out of date: the one call, with
    the same arguments, in the build's child process (`apart`) and in the process that then loads it, so that
    both write the same build file."""
    from torch.utils import cpp_extension

    return cpp_extension.load(name=name, sources=[str(source)], extra_cflags=CFLAGS + openmp_flags(),
                              extra_ldflags=openmp_flags(), build_directory=str(directory), verbose=False)


def extension() -> Any:
    """The loaded extension, built on the first call; raises `Unavailable` (again, without retrying) if not."""
    global _EXT, _FAILED
    if _EXT is not None:
        return _EXT
    if _FAILED is not None:
        raise Unavailable(_FAILED)
    try:
        _EXT = build()
    except Unavailable as e:
        _FAILED = str(e)
        raise
    return _EXT


def available() -> bool:
    """Whether the compiled kernel runs here (building it on the first call); the first `False` is logged."""
    global _ANNOUNCED
    try:
        extension()
        return True
    except Unavailable as e:
        if not _ANNOUNCED:
            _ANNOUNCED = True
            # `kernel: compiled` runs the fused kernel instead; `auto` its rule without the compiled kernel
            # (Recurrent.path), which is PyTorch's kernel for some calls (short dense batches, say).
            log.warning("kernel compiled: not available (%s); running the other kernels instead (fused, or "
                        "PyTorch's where `kernel: auto` picks it)", e)
        return False


# --- the CellStep -----------------------------------------------------------------------------------


_BRGEMM_OK: Optional[bool] = None


def brgemm_ok() -> bool:
    """Whether the C++ loop's brgemm step GEMM runs on this CPU (asked of the extension once)."""
    global _BRGEMM_OK
    if _BRGEMM_OK is None:
        _BRGEMM_OK = bool(extension().brgemm_ok())
    return _BRGEMM_OK


def step_backend(dtype, rows: int, hidden: int, ragged: bool = False) -> str:
    """The step GEMMs' backend in the C++ loop: `brgemm` for float32 up to BRGEMM_MAX_HIDDEN where it runs, else
    the fused kernel's choice (`onednn` or `blas`). `gemm.use_gemm_backend` can force any of the three."""
    forced = gemm.forced_backend()
    fits = hidden <= gemm.BRGEMM_MAX_HIDDEN
    if dtype == torch.float32 and (forced == "brgemm" or (forced is None and fits)):
        if brgemm_ok():
            return "brgemm"
    return gemm.gemm_backend(dtype, rows, hidden, ragged=ragged)


class Gemms(NamedTuple):
    """The GEMM choices for one direction, passed to the C++ loop, which reads nn.GRU's weights as they are
    otherwise: the step GEMM's (`step_backend`), and the fused kernel's for the rest (`grutool.modules.rnn.gemm`)."""

    step: Optional[torch.Tensor]   # W_hh for oneDNN's step GEMM (pre-packed for long sequences); None: not oneDNN
    brgemm: bool = False           # the step GEMMs, forward and backward, on oneDNN's brgemm micro-kernel (float32)


def _prepare(module, weights, rows: int, steps: int, dtype, ragged: bool = False) -> Gemms:
    w_hh = weights[1]
    H = w_hh.shape[1]
    backend = step_backend(dtype, rows, H, ragged=ragged)
    if backend == "brgemm":
        return Gemms(None, True)
    # The GEMMs over all of a call's rows stay on BLAS (in the C++ loop), as the fused kernel's (gemm.matmul_t):
    # their row count is a new shape nearly every call, and oneDNN keeps a primitive for each shape it meets
    # (~1 GB on UD-EWT).
    return Gemms(gemm.Linear(w_hh, rows, "onednn", steps).w if backend == "onednn" else None)


def _forward(x, states, weights, batch_sizes, offs, reverse, extra: Gemms, save):
    (h0,) = states
    w_ih, w_hh, b_ih, b_hh = weights
    out, h_n, gates, hn = extension().gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, save,
                                                  extra.step, extra.brgemm, None)
    return out, (h_n,), ((gates, hn) if save else None)


def _backward(needs, x, states, weights, out, saved, g_out, g_finals, batch_sizes, offs, reverse, extra: Gemms):
    (h0,), (g_hn,) = states, g_finals
    w_ih, w_hh, _, _ = weights
    gates, hn = saved
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = extension().gru_backward(
        x, h0, w_ih, w_hh, out, gates, hn, g_out, g_hn, batch_sizes, reverse, [bool(n) for n in needs],
        extra.step is not None, extra.brgemm)
    return dx, (dh0,), (dw_ih, dw_hh, db_ih, db_hh)


def _forward_pair(x, a, b, batch_sizes, offs, save):
    (sa, (w_iha, w_hha, b_iha, b_hha), ea), (sb, (w_ihb, w_hhb, b_ihb, b_hhb), eb) = a, b
    r = extension().gru_forward_pair(x, batch_sizes, save, ea.brgemm, sa[0], w_iha, w_hha, b_iha, b_hha, ea.step,
                                     sb[0], w_ihb, w_hhb, b_ihb, b_hhb, eb.step)
    ra, rb = ((r[i], (r[i + 1],), ((r[i + 2], r[i + 3]) if save else None)) for i in (0, 4))
    return ra, rb, r[8]  # r[8]: (N, 2H), the two outs side by side (they are its halves)


def _backward_pair(x, a, b, batch_sizes, offs):
    def args(d):
        needs, (h0,), (w_ih, w_hh, _, _), out, (gates, hn), g_out, (g_hn,), extra = d
        return ([bool(n) for n in needs], extra.step is not None, h0, w_ih, w_hh, out, gates, hn, g_out, g_hn)

    r = extension().gru_backward_pair(x, batch_sizes, a[-1].brgemm, *args(a), *args(b))
    return tuple((r[i], (r[i + 1],), tuple(r[i + 2:i + 6])) for i in (0, 6))


def step(fused: CellStep) -> CellStep:
    """The compiled GRU step: the fused one's capabilities and native layer, the C++ loop."""
    return CellStep("gru", cell_state=False, stacks=True, prepare=_prepare, forward=_forward,
                    backward=_backward, fusable=fused.fusable, native_layer=fused.native_layer, ready=available,
                    forward_pair=_forward_pair, backward_pair=_backward_pair)


# --- the LSTM (csrc/lstm.h): states (h, c), step GEMMs on brgemm (float32) or BLAS -----------------------------


def _lstm_prepare(module, weights, rows: int, steps: int, dtype, ragged: bool = False) -> Gemms:
    # brgemm where the GRU's rule puts it; otherwise BLAS (the LSTM loop has no oneDNN step GEMM).
    return Gemms(None, step_backend(dtype, rows, weights[1].shape[1], ragged=ragged) == "brgemm")


def _lstm_forward(x, states, weights, batch_sizes, offs, reverse, extra: Gemms, save):
    h0, c0 = states
    w_ih, w_hh, b_ih, b_hh = weights
    out, h_n, c_n, gates, cs = extension().lstm_forward(x, h0, c0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse,
                                                        save, extra.brgemm, None)
    return out, (h_n, c_n), ((gates, cs) if save else None)


def _lstm_backward(needs, x, states, weights, out, saved, g_out, g_finals, batch_sizes, offs, reverse, extra: Gemms):
    (h0, c0), (g_hn, g_cn) = states, g_finals
    w_ih, w_hh, _, _ = weights
    gates, cs = saved
    dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = extension().lstm_backward(
        x, h0, c0, w_ih, w_hh, out, gates, cs, g_out, g_hn, g_cn, batch_sizes, reverse, [bool(n) for n in needs],
        extra.brgemm)
    return dx, (dh0, dc0), (dw_ih, dw_hh, db_ih, db_hh)


def _lstm_forward_pair(x, a, b, batch_sizes, offs, save):
    (sa, wa, ea), (sb, wb, _) = a, b
    r = extension().lstm_forward_pair(x, batch_sizes, save, ea.brgemm, *sa, *wa, *sb, *wb)
    ra, rb = ((r[i], (r[i + 1], r[i + 2]), ((r[i + 3], r[i + 4]) if save else None)) for i in (0, 5))
    return ra, rb, r[10]  # r[10]: (N, 2H), the two outs side by side (they are its halves)


def _lstm_backward_pair(x, a, b, batch_sizes, offs):
    def args(d):
        needs, states, (w_ih, w_hh, _, _), out, saved, g_out, g_finals, _ = d
        return ([bool(n) for n in needs], *states, w_ih, w_hh, out, *saved, g_out, *g_finals)

    r = extension().lstm_backward_pair(x, batch_sizes, a[-1].brgemm, *args(a), *args(b))
    return tuple((r[i], (r[i + 1], r[i + 2]), tuple(r[i + 3:i + 7])) for i in (0, 7))


def lstm_step(fused: CellStep) -> CellStep:
    """The compiled LSTM step: the fused one's capabilities (no projections), the C++ loop."""
    return CellStep("lstm", cell_state=True, stacks=False, prepare=_lstm_prepare, forward=_lstm_forward,
                    backward=_lstm_backward, fusable=fused.fusable, ready=available,
                    forward_pair=_lstm_forward_pair, backward_pair=_lstm_backward_pair)


# --- the Elman RNN (csrc/rnn.h): tanh or relu, step GEMMs on brgemm (float32) or BLAS ---------------------------


class RnnGemms(NamedTuple):
    brgemm: bool  # the step GEMMs on oneDNN's brgemm micro-kernel (float32), else BLAS
    relu: bool    # the module's nonlinearity is relu (else tanh)


def _rnn_prepare(module, weights, rows: int, steps: int, dtype, ragged: bool = False) -> RnnGemms:
    relu = module is not None and module.nonlinearity == "relu"
    return RnnGemms(step_backend(dtype, rows, weights[1].shape[1], ragged=ragged) == "brgemm", relu)


def _rnn_forward(x, states, weights, batch_sizes, offs, reverse, extra: RnnGemms, save):
    out, h_n = extension().rnn_forward(x, states[0], *weights, batch_sizes, reverse, extra.relu, extra.brgemm, None)
    return out, (h_n,), (() if save else None)  # nothing saved beyond the output


def _rnn_backward(needs, x, states, weights, out, saved, g_out, g_finals, batch_sizes, offs, reverse,
                  extra: RnnGemms):
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = extension().rnn_backward(
        x, states[0], weights[0], weights[1], out, g_out, g_finals[0], batch_sizes, reverse, extra.relu,
        [bool(n) for n in needs], extra.brgemm)
    return dx, (dh0,), (dw_ih, dw_hh, db_ih, db_hh)


def _rnn_forward_pair(x, a, b, batch_sizes, offs, save):
    (sa, wa, ea), (sb, wb, _) = a, b
    r = extension().rnn_forward_pair(x, batch_sizes, ea.relu, ea.brgemm, *sa, *wa, *sb, *wb)
    ra, rb = ((r[i], (r[i + 1],), (() if save else None)) for i in (0, 2))
    return ra, rb, r[4]  # r[4]: (N, 2H), the two outs side by side (they are its halves)


def _rnn_backward_pair(x, a, b, batch_sizes, offs):
    def args(d):
        needs, states, (w_ih, w_hh, _, _), out, _, g_out, g_finals, _ = d
        return ([bool(n) for n in needs], *states, w_ih, w_hh, out, g_out, *g_finals)

    extra = a[-1]
    r = extension().rnn_backward_pair(x, batch_sizes, extra.relu, extra.brgemm, *args(a), *args(b))
    return tuple((r[i], (r[i + 1],), tuple(r[i + 2:i + 6])) for i in (0, 6))


def rnn_step(fused: CellStep) -> CellStep:
    """The compiled RNN step: the fused one's capabilities, the C++ loop."""
    return CellStep("rnn", cell_state=False, stacks=False, prepare=_rnn_prepare, forward=_rnn_forward,
                    backward=_rnn_backward, fusable=fused.fusable, ready=available,
                    forward_pair=_rnn_forward_pair, backward_pair=_rnn_backward_pair)
