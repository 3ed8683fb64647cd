"""What a timing depends on besides the code: the machine, the libraries, and which kernel ran.

On CPU, PyTorch runs `nn.LSTM` through oneDNN's fused RNN primitive
(`aten::mkldnn_rnn_layer`) when oneDNN is enabled and the input is a dense
float32/bfloat16 tensor (or a PackedSequence whose sequences all have the same
length), but `nn.GRU` and `nn.RNN`, and LSTM on a PackedSequence of different
lengths, through ATen's own loop: per time step, an `addmm` for the recurrent
matmul plus pointwise gate ops (`aten::gru` / `aten::lstm` / `aten::rnn_tanh`
with no fused kernel underneath). On CUDA, cuDNN
(`aten::_cudnn_rnn`) runs all three unless it is switched off, when fused
per-step cells (`aten::_thnn_fused_gru_cell`, `..._lstm_cell`) remain. A GRU vs
LSTM comparison that does not say which of these ran compares kernels, not cells;
`probe` tells by profiling one call and reading the op names.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import logging
import os
import platform
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ContextManager, Optional

import torch

import grutool
from grutool.threads import thread_wait

log = logging.getLogger("grutool")

# Op name in a profile -> kernel path, most specific first.
KERNEL_OPS = (
    ("grutool::compiled_gru", "compiled"),
    ("grutool::compiled_lstm", "compiled"),
    ("grutool::compiled_rnn", "compiled"),
    ("grutool::fused_gru", "fused"),
    ("grutool::fused_lstm", "fused"),
    ("grutool::fused_rnn", "fused"),
    ("aten::mkldnn_rnn_layer", "onednn"),
    ("aten::_cudnn_rnn", "cudnn"),
    ("aten::miopen_rnn", "miopen"),
    ("aten::_thnn_fused_gru_cell", "native-fused"),
    ("aten::_thnn_fused_lstm_cell", "native-fused"),
    ("aten::gru", "native"),
    ("aten::lstm", "native"),
    ("aten::rnn_tanh", "native"),
    ("aten::rnn_relu", "native"),
)


@contextlib.contextmanager
def kernels(choice: str, device: torch.device):
    """`default`, `fused`: leave PyTorch's flags; `native`: switch oneDNN (CPU) or cuDNN (CUDA) off.

    Sets only the `enabled` flag (torch.backends.mkldnn.flags() would also reset
    the TF32 and determinism flags) and restores it on exit.
    """
    if choice != "native":
        yield
        return
    backend = torch.backends.cudnn if device.type == "cuda" else torch.backends.mkldnn
    before = backend.enabled
    backend.enabled = False
    try:
        yield
    finally:
        backend.enabled = before


@dataclass
class Probe:
    kernel: str                     # see KERNEL_OPS; "unknown" if no recurrent op showed
    peak_mem_mb: Optional[float]    # tensor memory one call needs at its peak, beyond what it started with
    rss_growth_mb: Optional[float]  # CPU: growth of the resident set during one call (None where unknown)


def probe(fn: Callable[[], object], context: Callable[[], ContextManager], device: torch.device) -> Probe:
    """Kernel path and memory of one (already warmed-up) call of `fn`, outside the timed samples."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    with _profiler_chatter_hidden(), context(), profile(activities=activities, profile_memory=not cuda) as prof:
        fn()
        if cuda:
            torch.cuda.synchronize()
    names, allocations = _profiled_ops(prof)
    if cuda:
        peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        peak = _peak(allocations) / 2**20
    kernel = next((path for op, path in KERNEL_OPS if op in names), "unknown")
    return Probe(kernel, peak, None if cuda else rss_growth_mb(fn, context))


def _profiled_ops(prof) -> tuple[set[str], list[tuple[int, int]]]:
    """Op names, and (time, bytes) of every CPU allocation (+) and free (-), from a profile.

    Reads the profiler's raw event list: building its FunctionEvent tree
    (`events()`, `key_averages()`) costs seconds for one step of a long sequence.
    """
    raw = getattr(getattr(prof, "profiler", None), "kineto_results", None)
    if raw is None:  # an older or newer profiler layout: the slow, public way
        events = prof.events()
        return ({e.key for e in events},
                [(e.time_range.start, e.self_cpu_memory_usage) for e in events if e.self_cpu_memory_usage])
    names, allocations = set(), []
    for e in raw.events():
        name = e.name()
        names.add(name)
        if name == "[memory]" and e.device_type() == torch.autograd.DeviceType.CPU:
            allocations.append((e.start_ns(), e.nbytes()))
    return names, allocations


def _peak(allocations: list[tuple[int, int]]) -> int:
    """Most bytes alive at once, relative to the start, replaying allocations and frees in time order."""
    live = peak = 0
    for _, nbytes in sorted(allocations):
        live += nbytes
        peak = max(peak, live)
    return peak


# What the profiler's C++ side (kineto, the CPU allocator) prints on every start and stop.
_CHATTER = re.compile(r"profiler_start|profiler_stop|ActivityProfiler|Completed Stage|^STAGE:|"
                      r"allocated before the profiling started")


@contextlib.contextmanager
def _profiler_chatter_hidden():
    """The profiler writes start/stop lines straight to file descriptor 2, past Python; hold
    them back and pass on (as log warnings) whatever else was written meanwhile."""
    for stream in (sys.stdout, sys.stderr, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode("utf-8", "replace").splitlines():
                if line.strip() and not _CHATTER.search(line):
                    log.warning("%s", line)


def _status_kb(field: str) -> Optional[int]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _malloc_trim() -> None:
    """Hand the C allocator's free pages back to the system (glibc), so that a call's
    allocations show up as resident-set growth instead of reusing pages kept from earlier."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def rss_growth_mb(fn: Callable[[], object], context: Callable[[], ContextManager]) -> Optional[float]:
    """Peak resident set during one call over the resident set before it, in MiB (Linux; else None).

    The peak (VmHWM) is reset through /proc/self/clear_refs. Approximate: pages the
    allocator could not return are reused without growing the resident set.
    """
    _malloc_trim()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    except OSError:
        return None
    before = _status_kb("VmRSS")
    with context():
        fn()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) / 1024


def memory_metric(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated growth during one call"
    return "peak of live CPU tensor bytes during one call (profiler memory events)"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def onednn_version() -> Optional[str]:
    match = re.search(r"(?:MKL-DNN|oneDNN) v([\d.]+)", torch.__config__.show())
    return match.group(1) if match else None


def capture(device: torch.device) -> dict:
    """The environment recorded in every report."""
    env = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "grutool": grutool.__version__,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "interop_threads": torch.get_num_interop_threads(),
        "thread_wait": thread_wait(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "mkldnn_enabled": bool(torch.backends.mkldnn.enabled),
        "onednn_version": onednn_version(),
        "device": str(device),
        "cuda": torch.version.cuda,
        "cudnn": None,
        "gpu": None,
        "loadavg": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    if device.type == "cuda":
        env["cudnn"] = torch.backends.cudnn.version()
        env["cudnn_enabled"] = bool(torch.backends.cudnn.enabled)
        env["gpu"] = torch.cuda.get_device_name(device)
    return env
