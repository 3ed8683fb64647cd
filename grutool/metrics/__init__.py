"""Metrics: small stateful objects, updated per batch and computed per epoch; one module per family of outputs."""
