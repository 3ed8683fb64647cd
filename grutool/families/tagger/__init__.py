"""The tagger family (N->N: a tag per token) and the joint task (tags plus one intent per sentence): task,
model, CRF, metrics, data reading, tag schemes, export with its NumPy post-processing, render."""
