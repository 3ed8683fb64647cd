"""Text in, padded id tensors out: loading, tokenizing, vocabularies, batching."""
