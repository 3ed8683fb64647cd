"""The compiled GRU kernel (`model.kernel: compiled`): the time loop of one direction in C++ (`csrc/gru.cpp`).

Same packed rows, `_Direction` Function, layer stack, dropout and h0 handling as the Python fused kernel
(`grutool.modules.rnn.runtime`); only the per-direction loop differs: per step one ATen GEMM for
h W_hh^T and one pass over the live rows for all the gate arithmetic, forward and backward.

Built with PyTorch's extension mechanism (`torch.utils.cpp_extension.load`: a C++ compiler and ninja)
on the first call that needs it, never at import, into a cache directory keyed by the torch version, the
Python ABI and the source's hash: `$GRUTOOL_CACHE/ext/<key>` or `~/.cache/grutool/ext/<key>`. A file lock keeps two
processes from building at once; later processes load the built library. Where the build cannot run
(no compiler, no ninja, a compile error) `extension()` raises `Unavailable` with one line saying why, and
the module (`Recurrent.path`) runs the fused kernel instead, saying so once per process.
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

from grutool.modules.rnn import gemm
from grutool.modules.rnn.runtime import CellStep

log = logging.getLogger("grutool")

SOURCE = Path(__file__).with_name("csrc") / "gru.cpp"
# Nothing machine-specific (the gate pass brings one copy per instruction set, picked at load), so a cache
# built on one CPU loads on another. -fno-trapping-math lets the compiler vectorise the gate pass's clamps
# (compare-and-select); grutool installs no floating-point trap handlers that could tell the difference.
CFLAGS = ["-O3", "-fno-trapping-math"]


class Unavailable(RuntimeError):
    """The compiled kernel cannot be built or loaded here; the message is one line saying why."""


_EXT: Any = None                  # the loaded extension module
_FAILED: Optional[str] = None     # why it could not be built, once tried
_ANNOUNCED = False                # the fallback was logged


def cache_dir() -> Path:
    """Where the build goes: one directory per torch version, Python ABI (the library is a Python module)
    and source text, e.g. ~/.cache/grutool/ext/torch2.13.0-cpu-cpython-311-00ca5a332cbc."""
    root = Path(os.environ["GRUTOOL_CACHE"]) if os.environ.get("GRUTOOL_CACHE") else \
        Path.home() / ".cache" / "grutool"
    digest = hashlib.sha256(SOURCE.read_bytes() + " ".join(CFLAGS).encode()).hexdigest()[:12]
    return root / "ext" / f"torch{torch.__version__.replace('+', '-')}-{sys.implementation.cache_tag}-{digest}"


def _module_name(directory: Path) -> str:
    return "grutool_gru_" + directory.name.rsplit("-", 1)[-1]


def _why_not() -> Optional[str]:
    """A missing tool, said before trying (the build's own error would be a page of text)."""
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return f"no C++ compiler ({compiler!r} not found; install g++ or clang, or set CXX)"
    if not cpp_extension.is_ninja_available():
        return "ninja is not installed (pip install ninja, or the system package)"
    return None


def _one_line(error: BaseException) -> str:
    """What a build error says in one line: the compiler's first `file:line: error: ...` where there is one
    (ninja's own message starts with the whole command line), else the error's first line."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    said = next((line for line in lines if ": error:" in line or ": fatal error:" in line), None)
    return (said or (lines[0] if lines else type(error).__name__))[:300]


def build(directory: Optional[Path] = None) -> Any:
    """Compile (or load the already compiled) extension from `directory` (default `cache_dir()`)."""
    import portalocker
    from torch.utils import cpp_extension

    why = _why_not()
    if why:
        raise Unavailable(why)
    try:
        directory = directory or cache_dir()  # reads the source: a package installed without it fails here
        name = _module_name(directory)
        directory.mkdir(parents=True, exist_ok=True)
        # torch's own build lock is a file that a killed build leaves behind; an OS lock dies with its process.
        with portalocker.Lock(str(directory / "grutool.lock"), timeout=600):
            if not (directory / f"{name}.so").exists():
                log.info("kernel compiled: building it into %s (first use; about a minute)", directory)
            return cpp_extension.load(name=name, sources=[str(SOURCE)], extra_cflags=CFLAGS,
                                      build_directory=str(directory), verbose=False)
    except Exception as e:  # compiler errors, a failed link, an unloadable library, an unwritable cache: all
        raise Unavailable(f"the build failed: {_one_line(e)}") from e  # mean the same here


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
            log.warning("kernel compiled: not available (%s); running the fused kernel instead", e)
        return False


# --- the CellStep -----------------------------------------------------------------------------------


class Gemms(NamedTuple):
    """The fused kernel's GEMM choices (`grutool.modules.rnn.gemm`) for one direction, passed to the C++ loop,
    which reads nn.GRU's weights as they are otherwise."""

    onednn: bool                   # the GEMMs over all steps through oneDNN (float32)
    step: Optional[torch.Tensor]   # W_hh for oneDNN's step GEMM (pre-packed for long sequences); None: BLAS
    big: bool                      # the weight gradients through oneDNN too (large layers)


def _prepare(module, weights, rows: int, steps: int, dtype, ragged: bool = False) -> Gemms:
    w_hh = weights[1]
    H = w_hh.shape[1]
    step = None
    if gemm.gemm_backend(dtype, rows, H, ragged=ragged) == "onednn":
        step = gemm.Linear(w_hh, rows, "onednn", steps).w
    # The GEMMs over all of a call's rows stay on BLAS, as the fused kernel's (gemm.matmul_t): their row count
    # is a new shape nearly every call, and oneDNN keeps a primitive for each shape it meets (~1 GB on UD-EWT).
    return Gemms(False, step, False)


def _forward(x, states, weights, batch_sizes, offs, reverse, extra: Gemms, save):
    (h0,) = states
    w_ih, w_hh, b_ih, b_hh = weights
    out, h_n, gates, hn = extension().gru_forward(x, h0, w_ih, w_hh, b_ih, b_hh, batch_sizes, reverse, save,
                                                  extra.onednn, extra.step)
    return out, (h_n,), ((gates, hn) if save else None)


def _backward(needs, x, states, weights, out, saved, g_out, g_finals, batch_sizes, offs, reverse, extra: Gemms):
    (h0,), (g_hn,) = states, g_finals
    w_ih, w_hh, _, _ = weights
    gates, hn = saved
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = extension().gru_backward(
        x, h0, w_ih, w_hh, out, gates, hn, g_out, g_hn, batch_sizes, reverse, [bool(n) for n in needs],
        extra.onednn, extra.step is not None, extra.big)
    return dx, (dh0,), (dw_ih, dw_hh, db_ih, db_hh)


def step(fused: CellStep) -> CellStep:
    """The compiled GRU step: the fused one's capabilities and native layer, the C++ loop."""
    return CellStep("gru", cell_state=False, stacks=True, prepare=_prepare, forward=_forward,
                    backward=_backward, fusable=fused.fusable, native_layer=fused.native_layer, ready=available)
