"""The regressor family (N->1 real values): one number per numeric sequence. Its task, model, metrics, export
and render modules."""
