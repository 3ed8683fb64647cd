"""What every family's model shares: it is built from built parts.

The task builds the input front-end (`grutool.modules.embedder.Embedder`, or another with its contract) and the
`RecurrentEncoder` from the config once and hands them to the model, as AllenNLP's models receive a built
embedder and encoder; the model's own layers (heads, decoder) size themselves from the parts
(`embedder.output_dim`, `encoder.output_dim`). An encoder option (layer_norm, kernel) touches the encoder and
the config, not the models.

Checkpoint keys stay what they were when the front-end was a base class of the models: its parts are
registered on the model itself under their own names (`embedding.weight`, `chars.*`, `source_embedding.weight`),
in the order they were built, and the model keeps the front-end as a plain reference (not a child module,
which would prefix every key with `embedder.`) to call it. Parts replaced after construction (export swaps
recurrent layers) must be replaced inside them, not on the model.
"""

from __future__ import annotations

import torch
from torch import nn


class Model(nn.Module):
    def __init__(self, embedder: nn.Module):
        super().__init__()
        object.__setattr__(self, "embedder", embedder)  # a reference, not a child: see the module docstring
        for name, part in embedder._modules.items():  # None parts too: `model.chars is None` as before
            self.register_module(name, part)

    def train(self, mode: bool = True) -> "Model":
        super().train(mode)
        self.embedder.train(mode)  # its own flag (token dropout); its parts are the model's children
        return self

    def embed(self, *inputs) -> torch.Tensor:
        """What the encoder reads, (B, T, embedder.output_dim)."""
        return self.embedder(*inputs)

    def token_embedding(self) -> nn.Embedding:
        """The input token embedding (where data.vectors are loaded)."""
        return self.embedder.token_embedding()
