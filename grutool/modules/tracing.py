"""Whether a module's call is being traced for export: the one place that knows how each torch version says so.

A traced graph has no data-dependent branches or shapes, so a few modules take their general path while
exporting (the char encoder encodes every token; max pooling masks even when nothing is padded).
"""

from __future__ import annotations

import torch


def exporting() -> bool:
    """True while torch.export (the dynamo ONNX exporter) traces the call.

    `torch.compiler.is_exporting` exists from torch 2.6; on older releases `is_compiling` is the closest
    question (export traces through dynamo, so it is true then too, and also under `torch.compile`, where the
    general path is as correct)."""
    probe = getattr(torch.compiler, "is_exporting", None) or torch.compiler.is_compiling
    return bool(probe())
