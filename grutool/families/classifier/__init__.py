"""The classifier family (N->1): one label per text. Its task, model, metrics, export and render modules."""
