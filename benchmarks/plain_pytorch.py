"""The baseline grutool is measured against: the same model, written the usual way.

A plain PyTorch training script as people write it first: random batches padded
to the batch maximum, the padded tensor fed straight into nn.GRU (no packing),
max-pooling over every time step. Same tokenizer, vocabulary, sizes, optimizer
and learning rate as the grutool config it is compared with.

It is deliberately standalone (no grutool imports in the model or loop) so the
comparison is with code a user would have written without the tool.
"""

from __future__ import annotations

import csv
import re
import time
from collections import Counter

import torch
from torch import nn

WORD = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


def read_tsv(path: str, max_length: int) -> tuple[list[list[str]], list[str]]:
    texts, labels = [], []
    with open(path, encoding="utf-8", newline="") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows)  # header
        for label, text in rows:
            texts.append(WORD.findall(text.lower())[:max_length])
            labels.append(label)
    return texts, labels


class PlainGRUClassifier(nn.Module):
    def __init__(self, vocab_size, num_classes, emb, hidden, emb_dropout, head_dropout):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, emb, padding_idx=0)
        self.drop_in = nn.Dropout(emb_dropout)
        self.gru = nn.GRU(emb, hidden, batch_first=True, bidirectional=True)
        self.drop_out = nn.Dropout(head_dropout)
        self.head = nn.Linear(2 * hidden, num_classes)

    def forward(self, ids):
        out, _ = self.gru(self.drop_in(self.embedding(ids)))  # (B, T, 2H), padding included
        return self.head(self.drop_out(out.max(1).values))


def run(train_path: str, test_path: str, *, epochs: int, batch_size: int, emb: int, hidden: int,
        lr: float, emb_dropout: float, head_dropout: float, max_length: int, clip: float, seed: int,
        fused_adam: bool = False) -> dict:
    torch.manual_seed(seed)
    texts, labels = read_tsv(train_path, max_length)
    keep = [i for i, t in enumerate(texts) if t]
    texts, labels = [texts[i] for i in keep], [labels[i] for i in keep]
    counts = Counter(w for t in texts for w in t)
    itos = ["<pad>", "<unk>"] + sorted(counts, key=lambda w: (-counts[w], w))
    stoi = {w: i for i, w in enumerate(itos)}
    classes = sorted(set(labels))
    y_index = {c: i for i, c in enumerate(classes)}

    def encode(ts):
        return [torch.tensor([stoi.get(w, 1) for w in t] or [1]) for t in ts]

    x = encode(texts)
    y = torch.tensor([y_index[l] for l in labels])
    model = PlainGRUClassifier(len(itos), len(classes), emb, hidden, emb_dropout, head_dropout)
    # fused_adam: the optimizer grutool uses, to separate batching from optimizer speed.
    opt = torch.optim.Adam(model.parameters(), lr=lr, **({"fused": True} if fused_adam else {}))
    real_tokens, seconds = 0, 0.0
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x)).tolist()
        for j in range(0, len(perm), batch_size):
            idx = perm[j:j + batch_size]
            t0 = time.perf_counter()
            ids = nn.utils.rnn.pad_sequence([x[i] for i in idx], batch_first=True)
            loss = nn.functional.cross_entropy(model(ids), y[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            seconds += time.perf_counter() - t0
            real_tokens += sum(len(x[i]) for i in idx)
    test_texts, test_labels = read_tsv(test_path, max_length)
    tx = encode(test_texts)
    model.eval()
    correct = 0
    with torch.no_grad():
        for j in range(0, len(tx), 256):
            ids = nn.utils.rnn.pad_sequence(tx[j:j + 256], batch_first=True)
            pred = model(ids).argmax(-1).tolist()
            correct += sum(classes[p] == g for p, g in zip(pred, test_labels[j:j + 256]))
    return {"tokens_per_s": real_tokens / seconds, "train_seconds": seconds,
            "test_accuracy": correct / len(tx), "epochs": epochs}
