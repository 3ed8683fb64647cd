"""The language-model family (N->N next-token prediction, 1->N conditional generation): task, model,
data (lines and streams), generation, metrics, render."""
