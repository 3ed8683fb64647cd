"""The seq2seq family (N->M, encoder-decoder with attention): task, model, attention, parallel data and
dictionaries, greedy and beam decoding, metrics, export, render."""
