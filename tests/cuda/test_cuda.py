"""The CPU suite's invariants on a GPU (issue 15); every test here is skipped where CUDA is absent.

Run them alone with `python -m pytest -m cuda` (benchmarks/gpu_check.sh does, and writes a report).
GPU kernels (cuDNN, cuBLAS, float16 autocast) are not bit-exact with the CPU, so comparisons across
devices use float32 tolerances; comparisons on one device under `train.deterministic` are exact.
"""

from __future__ import annotations

import json

import pytest
import torch
import yaml

from conftest import tiny_config

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")]

CUDA = torch.device("cuda")


def test_encoder_on_cuda_equals_nn_gru_with_packing():
    """The packing encoder (cuDNN through nn.GRU under `auto`) against nn.GRU run step by step on the CPU."""
    from grutool.modules.encoder import RecurrentEncoder

    torch.manual_seed(0)
    enc = RecurrentEncoder(8, 16, num_layers=2, bidirectional=True).to(CUDA).eval()
    assert isinstance(enc.rnn, torch.nn.GRU) and type(enc.rnn) is torch.nn.GRU  # auto: PyTorch's module on CUDA
    ref = torch.nn.GRU(8, 16, num_layers=2, bidirectional=True, batch_first=True)
    ref.load_state_dict({k: v.cpu() for k, v in enc.rnn.state_dict().items()})
    x = torch.randn(4, 7, 8)
    lengths = torch.tensor([7, 3, 5, 1])
    out = enc(x.to(CUDA), lengths)  # lengths stay on the CPU: pack_padded_sequence wants them there
    for b, n in enumerate(lengths.tolist()):
        y, h = ref(x[b:b + 1, :n])
        assert torch.allclose(out.outputs[b, :n].cpu(), y[0], atol=1e-5)
        assert torch.allclose(out.h_n[:, b].cpu(), h[:, 0], atol=1e-5)
        assert not out.outputs[b, n:].abs().sum()


def test_batch_moves_to_cuda_with_lengths_on_cpu():
    from grutool.data.batching import EncodedSplit, collate

    split = EncodedSplit([torch.tensor([1, 2, 3]), torch.tensor([4])], [torch.tensor(0), torch.tensor(1)], ["a", "b"])
    batch = collate(split, [0, 1]).to(CUDA)
    assert batch.ids.is_cuda and batch.targets.is_cuda and batch.lengths.device.type == "cpu"


def test_crf_and_losses_stay_float32_under_autocast():
    from grutool.families.tagger.crf import CRF

    crf = CRF(5).to(CUDA)
    emissions = torch.randn(3, 6, 5, device=CUDA)
    tags = torch.randint(0, 5, (3, 6), device=CUDA)
    mask = torch.ones(3, 6, dtype=torch.bool, device=CUDA)
    with torch.autocast("cuda", dtype=torch.float16):
        nll = crf.nll(emissions.half(), tags, mask)
        ce = torch.nn.functional.cross_entropy(torch.randn(3, 5, device=CUDA).half(), tags[:, 0])
    assert nll.dtype == torch.float32 and ce.dtype == torch.float32 and torch.isfinite(nll).all()
    exact = crf.nll(emissions.half().float(), tags, mask)
    assert torch.allclose(nll, exact, rtol=1e-3)


def _config(tmp_path, **train) -> str:
    raw = tiny_config(tmp_path, device="cuda", deterministic=True, **train)
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def test_train_on_cuda_batched_equals_one_by_one_and_save_load_identical(tmp_path):
    from grutool import Predictor, load_config, train

    summary = train(load_config(_config(tmp_path)))
    assert summary["device"].startswith("cuda")
    texts = ["the film was great", "awful", "a really very dull book and food", "good"]
    p = Predictor(tmp_path / "run", "cuda")
    batched = p.predict(texts, batch_size=4)
    one = [p.predict([t], batch_size=1)[0] for t in texts]
    again = Predictor(tmp_path / "run", "cuda").predict(texts, batch_size=4)
    for a, b, c in zip(batched, one, again):
        assert a["label"] == b["label"] == c["label"]
        for label in a["probs"]:
            assert abs(a["probs"][label] - b["probs"][label]) < 1e-3  # cuDNN picks kernels by batch shape
            assert a["probs"][label] == c["probs"][label]               # save -> load: identical


def test_resume_on_cuda_equals_uninterrupted(tmp_path):
    from grutool import load_config, train

    full = tmp_path / "full"
    full.mkdir()
    cut = tmp_path / "cut"
    cut.mkdir()
    train(load_config(_config(full, epochs=3)))
    train(load_config(_config(cut, epochs=1)))
    train(load_config(_config(cut, epochs=3)), resume=True)
    a = torch.load(full / "run" / "last.pt", weights_only=True)["model"]
    b = torch.load(cut / "run" / "last.pt", weights_only=True)["model"]
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    rows = (cut / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["epoch"] for r in rows] == [1, 2, 3]


def test_bench_reports_cudnn_for_gru_on_cuda():
    import contextlib

    from grutool.bench.env import capture, probe

    env = capture(CUDA)
    assert env["cudnn"] and env["gpu"]
    gru = torch.nn.GRU(16, 32, batch_first=True).to(CUDA)
    x = torch.randn(4, 10, 16, device=CUDA)
    assert probe(lambda: gru(x), contextlib.nullcontext, CUDA).kernel == "cudnn"


def test_kernel_compiled_runs_cudnn_on_cuda_and_builds_nothing(monkeypatch):
    """Kernel `compiled` is a CPU kernel: on CUDA the layer is PyTorch's (cuDNN), and no build is tried."""
    from grutool.modules.rnn import compiled
    from grutool.modules.rnn.gru import GRU

    monkeypatch.setattr(compiled, "_EXT", None)
    monkeypatch.setattr(compiled, "_FAILED", None)
    monkeypatch.setenv("CXX", "no-such-compiler-here")
    layer = GRU(16, 32, batch_first=True, bidirectional=True, kernel="compiled").to(CUDA)
    x = torch.randn(4, 10, 16, device=CUDA)
    assert layer.path(x) == "native"
    layer(x)[0].sum().backward()
    assert compiled._EXT is None and compiled._FAILED is None
