"""What an exported file holds, and the runtimes that run one: ONNX Runtime or TorchScript.

A family's exporter (grutool.export.<family>) describes its graphs as `Graph`s: an export-ready
module, named inputs with an example and their dynamic axes, named outputs. The same names key the
metadata JSON beside the file, so a runtime without grutool knows what to feed.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from grutool.errors import UserError

log = logging.getLogger("grutool")

FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
INSTALL_ONNX = "python -m pip install -c constraints.txt -e '.[onnx]'"


@dataclass
class Graph:
    name: str                                     # "model"; seq2seq: "encoder", "decoder"
    module: nn.Module
    inputs: dict[str, tuple[torch.Tensor, dict[int, str]]]  # name -> (example, {axis: dynamic axis name})
    outputs: list[str]
    notes: dict = field(default_factory=dict)     # for the metadata (what an input or output means)

    def signature(self) -> dict:
        """Inputs and outputs as the metadata JSON lists them: dtype and shape, dynamic axes by name."""
        ins = {}
        for name, (example, axes) in self.inputs.items():
            shape = [axes.get(i, int(n)) for i, n in enumerate(example.shape)]
            ins[name] = {"dtype": str(example.dtype).removeprefix("torch."), "shape": shape}
        return {"inputs": ins, "outputs": list(self.outputs), **({"notes": self.notes} if self.notes else {})}

    def args(self) -> tuple:
        return tuple(example for example, _ in self.inputs.values())


@contextlib.contextmanager
def quiet():
    """The exporters print progress to stdout and warn about their own internals: keep the CLI's output clean."""
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loggers = [logging.getLogger(name) for name in ("torch", "onnxscript", "")]  # "": onnxruntime logs to root
        levels = [lg.level for lg in loggers]
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for lg, level in zip(loggers, levels):
                lg.setLevel(level)


def require_onnxruntime():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        raise UserError(f"ONNX export and --backend onnx need the optional packages onnx and onnxruntime; "
                        f"install them with: {INSTALL_ONNX}") from None
    return onnxruntime


EXPORTERS = ("dynamo", "legacy")


def onnx_bytes(graph: Graph, exporter: str = "dynamo") -> bytes:
    """torch.onnx.export as one self-contained ONNX file's bytes (every weight inside: no external-data file to
    lose; fine below protobuf's 2 GB); every recurrent direction becomes one ONNX GRU (LSTM, RNN) op either way.

    dynamo (torch.export underneath, the exporter torch maintains): ~10 s for a small model, mostly
    tracing. legacy (TorchScript-based, deprecated in torch 2.9+): ~0.1 s, the same recurrent ops and weights
    (the graph holds no packing), other nodes around them (it keeps Constant and If nodes that dynamo folds);
    kept for speed (tests) and as a fallback. dynamo's per-node debugging metadata is dropped
    (drop_node_metadata). Serialised in memory, so the caller writes the file (grutool.atomic: a full disk is a UserError, not an error inside an exporter)."""
    require_onnxruntime()
    names, outputs = list(graph.inputs), graph.outputs
    with quiet(), torch.no_grad():
        if exporter == "legacy":
            axes = {name: dict(a) for name, (_, a) in graph.inputs.items() if a}
            buffer = io.BytesIO()
            torch.onnx.export(graph.module, graph.args(), buffer, dynamo=False, input_names=names,
                              output_names=outputs, dynamic_axes=axes, opset_version=18)
            return buffer.getvalue()
        dims: dict[str, torch.export.Dim] = {}
        shapes = tuple({axis: dims.setdefault(name, torch.export.Dim(name, min=1)) for axis, name in axes.items()}
                       or None for _, axes in graph.inputs.values())
        # The family graphs take optional inputs as *rest: torch.export wants their shapes as one nested tuple.
        params = inspect.signature(graph.module.forward).parameters.values()
        fixed = sum(1 for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL)
        if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params) and len(shapes) > fixed:
            shapes = shapes[:fixed] + (shapes[fixed:],)  # none given: no entry (an empty one is an extra input)
        # torch caches how it dispatches an op: after one export in this process, the next would decompose
        # aten.gru into a loop over time steps and fix `time` to the example's length (torch 2.13). Forget it.
        for op in (torch.ops.aten.gru, torch.ops.aten.lstm, torch.ops.aten.rnn_tanh, torch.ops.aten.rnn_relu):
            for overload in op.overloads():
                getattr(getattr(op, overload), "_dispatch_cache", {}).clear()
        # And dynamo's own state: after a forecaster's export in this process, a classifier's came out with its
        # char axis fixed at the example's width (ONNX Runtime then refused longer words) unless it is reset.
        torch._dynamo.reset()
        # No file given: torch returns the program; saved to a path it would keep the weights in a hidden
        # external-data file named after that path (its default, external_data=True).
        program = torch.onnx.export(graph.module, graph.args(), dynamo=True, input_names=names,
                                    output_names=outputs, dynamic_shapes=shapes, optimize=True, verbose=False)
        model = program.model_proto
        drop_node_metadata(model)
        return model.SerializeToString()


def drop_node_metadata(model) -> None:
    """Remove what the dynamo exporter keeps on every node for debugging: the Python stack that made it (this
    machine's source paths and lines), its FX node and module scopes. ~1 KB a node, three quarters of a small
    model's file (a tiny joint run: 0.22 MB, 0.06 MB without), and nothing ONNX Runtime reads; the ops, their
    attributes and the weights stay as they are."""
    import onnx

    def graphs(g):
        yield g
        for node in g.node:
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    yield from graphs(a.g)
                for sub in a.graphs:
                    yield from graphs(sub)

    nodes = [n for g in graphs(model.graph) for n in g.node] + [n for f in model.functions for n in f.node]
    for node in nodes:
        del node.metadata_props[:]


def torchscript_bytes(graph: Graph) -> bytes:
    """torch.jit.trace, saved in memory: the graph holds no data-dependent branch, so the trace serves every
    batch and length. (torch.jit.save to a path on a full disk aborts the process from C++.)"""
    with quiet(), torch.no_grad():
        traced = torch.jit.trace(graph.module, graph.args(), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer)
        return buffer.getvalue()


def quantize_onnx(model: bytes) -> tuple[bytes, list[str]]:
    """ONNX Runtime's dynamic int8 quantizer on MatMul/Gemm weights: the quantized model's bytes, and the op
    types left in float that hold weights (the recurrent ops: ONNX Runtime has no int8 GRU)."""
    import tempfile

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from grutool.atomic import NO_SPACE, no_space

    # The quantizer writes only to a path: a scratch folder of its own (it keeps its shape-inference
    # files in the system's temporary folder anyway).
    with tempfile.TemporaryDirectory(prefix="grutool-int8-") as scratch:
        dst = Path(scratch) / "model.int8.onnx"
        try:
            with quiet():
                quantize_dynamic(onnx.load_from_string(model), str(dst), weight_type=QuantType.QInt8)
            data = dst.read_bytes()
        except OSError as exc:
            if exc.errno in NO_SPACE:
                raise no_space(dst, len(model)) from None
            raise
    quantized = onnx.load_from_string(data)
    return data, sorted({n.op_type for n in quantized.graph.node if n.op_type in ("GRU", "LSTM", "RNN")})


class OnnxRuntime:
    """Runs exported ONNX graphs with ONNX Runtime: `run(name, inputs) -> outputs`, torch tensors in and out."""

    def __init__(self, files: dict[str, Path], threads: int = 0):
        ort = require_onnxruntime()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        try:
            self.sessions = {name: ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                             for name, path in files.items()}
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise UserError(f"{', '.join(map(str, files.values()))}: not a loadable ONNX model "
                            f"({str(exc).splitlines()[0][:200]})") from None
        self.inputs = {name: [i.name for i in s.get_inputs()] for name, s in self.sessions.items()}
        self.outputs = {name: [o.name for o in s.get_outputs()] for name, s in self.sessions.items()}

    def run(self, name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        feed = {k: inputs[k].detach().cpu().numpy() for k in self.inputs[name]}
        values = self.sessions[name].run(None, feed)
        return {k: torch.from_numpy(v) for k, v in zip(self.outputs[name], values)}


# torch's deprecation of quantized tensors, said once per process (TORCH_WARN_ONCE) by the first one made.
QUANTIZED_DEPRECATION = r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other quantized tensor creation"


def say_quantized_deprecation_quietly() -> None:
    """Use up torch's once-per-process warning that quantized tensors are deprecated, unseen. Loading an int8
    TorchScript export makes quantized tensors inside `torch.jit.load`, whose C++ prints that warning straight
    to stderr (five lines on an 80-column terminal), past Python's warnings, for every `infer --backend
    torchscript` and `serve` of such an export. A quantized tensor made here, through torch's Python binding,
    has torch raise it as a Python UserWarning instead, which is filtered out by its text; every other warning
    stays as it was, and the load finds it already said."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=QUANTIZED_DEPRECATION, category=UserWarning)
        try:
            torch.quantize_per_tensor(torch.zeros(1), 1.0, 0, torch.qint8)
        except (AttributeError, RuntimeError):  # a torch without quantized tensors: nothing to say
            pass


class TorchScriptRuntime:
    """Runs exported TorchScript graphs: `run(name, inputs) -> outputs` by the metadata's names."""

    def __init__(self, files: dict[str, Path], signatures: dict[str, dict]):
        say_quantized_deprecation_quietly()
        try:
            self.modules = {name: torch.jit.load(str(path), map_location="cpu").eval() for name, path in files.items()}
        except (RuntimeError, ValueError) as exc:
            raise UserError(f"{', '.join(map(str, files.values()))}: not a loadable TorchScript file "
                            f"({str(exc).splitlines()[0][:200]})") from None
        self.signatures = signatures

    def run(self, name: str, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        sig = self.signatures[name]
        with torch.no_grad():
            out = self.modules[name](*[inputs[k] for k in sig["inputs"]])
        out = out if isinstance(out, (tuple, list)) else (out,)
        return dict(zip(sig["outputs"], out))
