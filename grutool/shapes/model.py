"""The model tracer: the model `train` builds for a config (same code path), traced module by module.

`config_report(path)` runs forward hooks on every submodule, checks what every model must satisfy
(parameter counts add up, the encoder's final state, zeros at padding, batch equals one by one), and
adds the layer report of its encoder's recurrent layer (grutool.shapes.layer.analyze_layer).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional, Sequence, Union

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence

from grutool.errors import UserError
from grutool.shapes.checks import MODEL_TOL, all_passed, compare, one_thread
from grutool.shapes.layer import analyze_layer
from grutool.shapes.spec import resolve_batch


MAX_CONFIG_BATCH = 256  # examples `shapes --config` traces at most


def _warn(notes: list[str], message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)
    notes.append(message)

def _describe(value):
    """Shapes of whatever a module takes or returns, as plain data."""
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, PackedSequence):
        return {"packed_data": list(value.data.shape), "batch_sizes": value.batch_sizes.tolist()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return {k: _describe(v) for k, v in zip(value._fields, value)}
    if isinstance(value, (tuple, list)):
        return [_describe(v) for v in value]
    return None


def _inputs(mod: nn.Module, args: tuple):
    """A module's positional inputs described: one alone as it is; several by the names of its forward's
    parameters (`lengths (3,)`, `state -`: the trace showed `(3,)` and `-` unnamed), a named tuple's fields in
    its place (the pooling's `outputs`, `final`, ... then `mask`)."""
    import inspect

    if len(args) == 1:
        return _describe(args[0])
    try:
        params = [p for p in inspect.signature(mod.forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    if len(params) < len(args):  # *args, or no signature to read: unnamed, as before
        return _describe(args)
    named = {}
    for param, arg in zip(params, args):
        described = _describe(arg)
        if isinstance(arg, tuple) and hasattr(arg, "_fields"):
            named.update(described)
        else:
            named[param.name] = described
    return named


def _outputs(mod: nn.Module, output):
    """A module's output described; a recurrent layer's `(output, h_n)` (LSTM: `(output, (h_n, c_n))`) by those
    names, as PyTorch's documentation writes them (the trace showed two shapes unnamed)."""
    if isinstance(mod, nn.RNNBase) and isinstance(output, tuple) and len(output) == 2:
        out, state = output
        if isinstance(state, tuple) and len(state) == 2:  # LSTM
            return {"output": _describe(out), "h_n": _describe(state[0]), "c_n": _describe(state[1])}
        return {"output": _describe(out), "h_n": _describe(state)}
    return _describe(output)


def _packed_lengths(lens) -> Optional[list[int]]:
    """The lengths the encoder packs with, or None when they are all equal and it runs the batch dense."""
    values = lens.tolist()
    return values if len(set(values)) > 1 else None


def trace_model(model: nn.Module, *inputs, call=None, **kw_inputs) -> tuple[list[dict], dict]:
    """Run model(*inputs) (or `call(*inputs)`: the model's pass to trace, `Task.traced_pass`) with hooks on every
    submodule: rows in call order, and each module's raw output."""
    rows, pending, outputs, handles = [], {}, {}, []
    owner: dict[int, str] = {}  # each parameter tensor's first module: a tied one is counted in two rows
    for name, mod in model.named_modules():
        for p in mod.parameters(recurse=False):
            owner.setdefault(id(p), name)
    for name, mod in model.named_modules():
        if not name:
            continue

        def pre(mod, args, name=name):
            kind = type(mod).__name__ + (f" ({mod.kernel})" if isinstance(getattr(mod, "kernel", None), str) else "")
            row = {"module": name, "type": kind, "depth": name.count("."),
                   "input": _inputs(mod, args),
                   "parameters": sum(p.numel() for p in mod.parameters()),
                   "own_parameters": sum(p.numel() for p in mod.parameters(recurse=False)),
                   # of `parameters`, those another module's row counts too (an lm's output layer tied to
                   # its embedding)
                   "tied_parameters": sum(p.numel() for p in mod.parameters()
                                          if owner[id(p)] != name and not owner[id(p)].startswith(name + "."))}
            rows.append(row)
            pending.setdefault(name, []).append(row)

        def post(mod, args, output, name=name):
            pending[name].pop()["output"] = _outputs(mod, output)
            if name not in outputs:  # a module called again (a decoder stepping the encoder on) keeps its first call
                outputs[name], outputs[name + ":args"] = output, args

        handles += [mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)]
    try:
        with torch.no_grad():
            outputs[""] = (call or model)(*inputs, **kw_inputs)
    finally:
        for h in handles:
            h.remove()
    return rows, outputs


def _model_checks(model: nn.Module, enc, lens: torch.Tensor, T: int, bidirectional: bool) -> tuple[int, list, list]:
    """Total parameters, per-module counts, and the checks every traced model gets: counts add up,
    encoder.final is the last layer's final state(s), encoder outputs are zero at padding."""
    from grutool.modules.masking import length_mask

    total = sum(p.numel() for p in model.parameters())
    seen: set[int] = set()

    def unseen(mod: nn.Module) -> int:
        # A tied tensor (one embedding matrix as the output layer too) counts once, with its first module.
        new = [p for p in mod.parameters() if id(p) not in seen]
        seen.update(id(p) for p in new)
        return sum(p.numel() for p in new)

    by_module = [{"module": name, "type": type(mod).__name__, "parameters": unseen(mod)}
                 for name, mod in model.named_children()]
    own = [p for p in model.parameters(recurse=False) if id(p) not in seen]
    if own:  # parameters registered on the model itself (a forecaster's position and channel embeddings)
        by_module.append({"module": "(model)", "type": "Parameter", "parameters": sum(p.numel() for p in own)})
    final_ref = torch.cat([enc.h_n[-2], enc.h_n[-1]], dim=-1) if bidirectional else enc.h_n[-1]
    pad = ~length_mask(lens, T, enc.outputs.device)
    t = torch.tensor
    checks = [
        compare("per_module_counts_add_up", "the per-module parameter counts add up to the model's total (a "
                "tied tensor counted once" + (", the model's own parameters as (model)" if own else "") + ")",
                t(float(sum(r["parameters"] for r in by_module))), t(float(total)), tol=0.0),
        compare("encoder_final", "encoder.final is " + ("cat(h_n[-2], h_n[-1])" if bidirectional else "h_n[-1]")
                + " (the last layer's final state" + ("s" if bidirectional else "") + ")", enc.final, final_ref,
                tol=0.0),
        compare("encoder_padding_zero", "encoder.outputs is 0 at padding steps"
                + ("" if bool(pad.any()) else " (this batch has none: nothing is checked)"), enc.outputs[pad],
                torch.zeros_like(enc.outputs[pad]), tol=0.0),
    ]
    return total, by_module, checks


def _task_model_report(path, cfg, prepared, B: int, want_explain: bool, warned: list[str]) -> dict:
    """Tagger, joint, seq2seq and char-feature classifier models: trace the first B training examples (real token ids,
    characters and targets, as `train` collates them) through the model `train` builds."""
    from grutool.data.batching import collate
    from grutool.families import get_task

    notes: list[str] = []
    for message in warned:
        _warn(notes, message)
    split = prepared.splits["train"]
    index = list(range(min(B, len(split))))
    if B > len(split):
        unit = get_task(cfg.task).throughput_unit
        _warn(notes, f"--batch {B}: the training data has {len(split):,} {unit if unit != 'tokens' else 'examples'}; "
                     f"all are traced")
    batch = collate(split, index)
    lens, T = batch.lengths, batch.ids.shape[1]
    V, C = len(prepared.vocab), len(prepared.labels)
    _check_fits(get_task(cfg.task), cfg, prepared, len(index), T)
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(cfg.train.seed)  # as train does: the same initial weights
        model = get_task(cfg.task).build_model(cfg, prepared)
        model.eval()
        rows, outputs = trace_model(model, batch.ids, batch.lengths, batch.targets,
                                    call=get_task(cfg.task).traced_pass(model), **batch.extra_inputs())
        enc = outputs["encoder"]
        # The encoder's own rows and steps (a forecaster's are segments of each column, not the batch's rows).
        enc_x, enc_lens = outputs["encoder:args"][:2]
        # The encoder packs only batches of mixed lengths (equal ones run dense): explain the call it made.
        encoder = analyze_layer(model.encoder.rnn, enc_x.shape[0], enc_x.shape[1], _packed_lengths(enc_lens),
                                want_explain)
    m = cfg.model
    D = 2 if m.bidirectional else 1
    total, by_module, checks = _model_checks(model, enc, enc_lens, enc_x.shape[1], m.bidirectional)
    result = outputs[""][0]
    task = get_task(cfg.task)
    # Numeric sequences and forecast windows: values (B, T, F) with F channels per step, no token vocabulary
    # (V would count the vocabulary's two special tokens); a forecaster has no embedding either (E).
    numeric = batch.ids.is_floating_point()
    unit = "examples" if task.throughput_unit == "tokens" else task.throughput_unit  # forecast: windows
    inputs = {"F": int(batch.ids.shape[-1])} if numeric else {"V": V}
    if task.reads("model", "embedding_dim"):
        inputs["E"] = m.embedding_dim
    report = {
        "mode": "config", "config": str(path), "task": cfg.task, "vocab_size": V, "num_classes": C,
        "numeric": numeric, "outputs": task.outputs,
        # every example one length: a forecast window (input_length rows), a stream's chunk (train.bptt steps)
        "fixed_length": task.throughput_unit != "tokens" or bool(cfg.train.bptt),
        "labels": task.served_labels(prepared) or [], "model": cfg.model.model_dump(),
        "symbols": {"B": len(index), "T": T, **inputs, "L": m.num_layers, "D": D, "H": m.hidden_size, "C": C},
        "batch": {"ids": list(batch.ids.shape), "lengths": lens.tolist(), "source": f"first training {unit}",
                  # inputs beside the values or ids (a forecaster's covariates, char ids, an lm's condition)
                  "inputs": {k: list(v.shape) for k, v in batch.extra_inputs().items() if hasattr(v, "shape")}},
        "trace": rows,
        "logits": _describe(result),
        "output_name": task.model_outputs,  # what "logits" holds: logits, or a regressor's/forecaster's predictions
        "parameters": {"total": total, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                       "by_module": by_module},
        "checks": checks, "encoder": encoder, "warnings": notes,
    }
    intents = (prepared.extra or {}).get("intents")
    if intents is not None:  # the joint model's second head: its classes beside the tags'
        report["num_intents"] = len(intents)
    report["all_passed"] = all_passed(report)
    return report


def _check_fits(task, cfg, prepared, B: int, T: int) -> None:
    """Refuse, before allocating, a random batch whose model and activations cannot fit in free memory
    (grutool.training.memory: the model's parameters counted on meta, float32)."""
    from grutool.cells import CELLS
    from grutool.training import memory

    m = cfg.model
    parameters = memory.count_on_meta(task, cfg, prepared)
    values = memory.activation_values(B, T, m.embedding_dim, m.hidden_size, m.num_layers, m.bidirectional,
                                      CELLS[m.cell].gates, train=False)
    memory.check_run_fits(f"model ({parameters:,} parameters) and batch", parameters * 4, values * 4 + B * T * 8,
                          torch.device("cpu"), f"lower --batch ({B}) or --seq-len ({T}), or the model's sizes "
                          f"(model.hidden_size {m.hidden_size}, model.embedding_dim {m.embedding_dim})")


def config_report(path: Union[str, Path], batch: Optional[int] = None, seq_len: Optional[int] = None,
                  lengths: Optional[Sequence[int]] = None, want_explain: bool = False, seed: int = 0,
                  overrides: Sequence[str] = ()) -> dict:
    """Build the model exactly as `train` does (`overrides`: its `--set KEY=VALUE`s) and trace a random batch of
    token ids through it."""
    from grutool.config_file import load_config
    from grutool.modules.masking import length_mask
    from grutool.families import get_task

    B, T, lengths = resolve_batch(batch, seq_len, lengths)
    if B > MAX_CONFIG_BATCH:  # each example is also run alone (batch_equals_one_by_one); 100,000 ran for minutes
        raise UserError(f"--batch: at most {MAX_CONFIG_BATCH:,} examples are traced with --config (got {B:,}); "
                        f"a trace reads the same at 3 as at {MAX_CONFIG_BATCH}")
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = load_config(path, list(overrides))
        task = get_task(cfg.task)
        prepared = task.prepare(cfg)  # reads the training data: the vocabulary sets the size
    if task.traces_real(cfg):
        # Models that read more than token ids (characters, targets, numbers) are traced on real examples.
        kind = cfg.task if task.traces_real_examples else f"{cfg.task} of this data"
        if lengths is not None or seq_len is not None:
            article = "an" if kind[0] in "aeiou" or kind.startswith("lm") else "a"
            raise UserError(f"{path}: --lengths/--seq-len apply to text classifier configs without char features; "
                            f"{article} {kind} model is traced on the first --batch examples of its training data")
        return _task_model_report(path, cfg, prepared, B, want_explain, [str(w.message) for w in caught
                                                                          if issubclass(w.category, UserWarning)])
    for w in caught:
        if issubclass(w.category, UserWarning):
            _warn(notes, str(w.message))
    V, C = len(prepared.vocab), len(prepared.labels)
    _check_fits(task, cfg, prepared, B, T)
    lens = torch.tensor(lengths if lengths is not None else [T] * B)
    with torch.random.fork_rng(devices=[]), one_thread():
        torch.manual_seed(cfg.train.seed)  # as train does: the same initial weights
        model = task.build_model(cfg, prepared)
        model.eval()
        torch.manual_seed(seed)
        low = 2 if V > 2 else 1  # real tokens: not <pad> (0) nor, if possible, <unk> (1)
        ids = torch.randint(low, V, (B, T))  # (B, T)
        ids = ids.masked_fill(~length_mask(lens, T, ids.device), 0)  # <pad> after each length
        rows, outputs = trace_model(model, ids, lens)
        logits, _ = outputs[""]
        enc = outputs["encoder"]
        with torch.no_grad():
            one_by_one = torch.cat([model(ids[b:b + 1, :n], lens[b:b + 1])[0] for b, n in enumerate(lens.tolist())])
        encoder = analyze_layer(model.encoder.rnn, B, T, _packed_lengths(lens), want_explain)

    m = cfg.model
    D = 2 if m.bidirectional else 1
    total, by_module, checks = _model_checks(model, enc, lens, T, m.bidirectional)
    checks += [
        compare("batch_equals_one_by_one", "logits of the batch equal logits of each sequence run alone",
                logits, one_by_one, tol=MODEL_TOL),
    ]
    report = {
        "mode": "config",
        "config": str(path),
        "task": cfg.task,
        "vocab_size": V,
        "num_classes": C,
        "labels": list(prepared.labels.itos),
        "model": cfg.model.model_dump(),
        "symbols": {"B": B, "T": T, "V": V, "E": m.embedding_dim, "L": m.num_layers, "D": D, "H": m.hidden_size,
                    "C": C},
        "batch": {"ids": list(ids.shape), "lengths": lens.tolist()},
        "trace": rows,
        "logits": list(logits.shape),
        "output_name": task.model_outputs,
        "parameters": {"total": total, "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
                       "by_module": by_module},
        "checks": checks,
        "encoder": encoder,
        "warnings": notes,
    }
    report["all_passed"] = all_passed(report)
    return report
