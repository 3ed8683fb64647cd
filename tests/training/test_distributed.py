"""Data-parallel training (torchrun's environment, gloo, 2 processes on 127.0.0.1; issue 15).

Each test starts two ranks of tests/training/ddp_worker.py with a bounded wait: a hung rank fails the
test, it never hangs the suite. Invariants: 2 processes x batch B train the same weights as 1 process x
batch 2B over the same examples; a resumed 2-process run equals the uninterrupted one; a rank that dies
stops the other within seconds with one clear error, and the run directory keeps its last checkpoint.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from conftest import tiny_config

WORKER = Path(__file__).with_name("ddp_worker.py")
ROOT = Path(__file__).resolve().parents[2]
LIMIT_S = 150  # the whole launch, import of torch in both ranks included (~5-20 s on a loaded 2-core box)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(tmp: Path, jobs: list[dict], own_group: bool = True, world: int = 2) -> list[dict]:
    """Run `jobs` on `world` ranks; per rank: {"code", "rows" (the worker's JSON lines), "stderr"}."""
    plan = tmp / f"plan-{time.monotonic_ns()}.json"
    plan.write_text(json.dumps({"jobs": jobs, "own_group": own_group}))
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port()), "WORLD_SIZE": str(world),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, str(WORKER), str(plan)], cwd=tmp, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env={**env, "RANK": str(r), "LOCAL_RANK": str(r)}) for r in range(world)]
    deadline = time.monotonic() + LIMIT_S
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
            results.append({"code": p.returncode, "rows": rows, "stderr": err})
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        pytest.fail(f"distributed training still running after {LIMIT_S} s (a hung rank)")
    return results


def _write(tmp: Path, name: str, raw: dict) -> str:
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return str(path)


def _classifier(tmp: Path, name: str, **train) -> dict:
    raw = tiny_config(tmp)
    raw["train"].update({"num_threads": 1, **train})
    raw["output_dir"] = str(tmp / name)
    return raw


def _tagger(tmp: Path, name: str, **train) -> dict:
    """Tagging with every sentence 5 tokens long, so a batch's mean token loss is the mean of its halves'."""
    import random

    rng = random.Random(0)
    words = {"DET": ["the", "a"], "NOUN": ["cat", "dog", "film"], "VERB": ["saw", "liked"], "ADJ": ["big", "red"]}
    for split, n in (("train", 64), ("validation", 16)):
        with open(tmp / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for _ in range(n):
                tags = ["DET", "ADJ", "NOUN", "VERB", rng.choice(["NOUN", "ADJ"])]
                f.write(json.dumps({"text": [rng.choice(words[t]) for t in tags], "tags": tags}) + "\n")
    return {"task": "tagger",
            "data": {"train": str(tmp / "train.jsonl"), "validation": str(tmp / "validation.jsonl"),
                     "format": "jsonl"},
            "model": {"embedding_dim": 8, "hidden_size": 8, "bidirectional": True},
            "train": {"batch_size": 8, "epochs": 1, "lr": 0.01, "seed": 5, "patience": None,
                      "monitor": "token_accuracy", "num_threads": 1, **train},
            "output_dir": str(tmp / name)}


def _weights(run: Path, name: str = "last.pt") -> dict:
    return torch.load(run / name, map_location="cpu", weights_only=True)["model"]


def _assert_same(a: dict, b: dict, atol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol, rtol=0), (k, (a[k] - b[k]).abs().max().item())


def _ok(results: list[dict], jobs: int) -> None:
    for r, res in enumerate(results):
        assert res["code"] == 0, f"rank {r} exit {res['code']}:\n{res['stderr'][-3000:]}"
        assert len(res["rows"]) == jobs, res


def test_two_processes_equal_one_with_twice_the_batch_and_resume_equals_uninterrupted(tmp_path):
    from grutool import load_config, train

    # Same examples per global step: `random` batching deals batches 2k and 2k+1 to ranks 0 and 1,
    # which are together batch k of a single process with batch 2B (grutool.training.distributed.shard).
    same = {"batching": "random", "max_steps": 3, "epochs": 1}
    cls2 = _write(tmp_path, "cls2", _classifier(tmp_path, "cls2", batch_size=4, **same))
    cls1 = _write(tmp_path, "cls1", _classifier(tmp_path, "cls1", batch_size=8, **same))
    tag2 = _write(tmp_path, "tag2", _tagger(tmp_path, "tag2", batch_size=4, **same))
    tag1 = _write(tmp_path, "tag1", _tagger(tmp_path, "tag1", batch_size=8, **same))
    # Resume: dropout draws from each rank's own RNG stream, which last.pt must carry for every rank.
    full = _classifier(tmp_path, "full", batch_size=4, epochs=3)
    full["model"]["embedding_dropout"] = 0.3
    cut = {**full, "output_dir": str(tmp_path / "cut")}
    jobs = [{"config": cls2}, {"config": tag2}, {"config": _write(tmp_path, "full", full)},
            {"config": _write(tmp_path, "cut", cut), "interrupt_at": 11},  # Ctrl-C on rank 1, mid epoch 2
            {"config": str(tmp_path / "cut.yaml"), "resume": True}]
    results = launch(tmp_path, jobs)
    _ok(results, len(jobs))
    assert [row["outcome"] for row in results[0]["rows"]] == ["ok", "ok", "ok", "interrupted", "ok"]

    for one in (cls1, tag1):
        train(load_config(one))
    _assert_same(_weights(tmp_path / "cls2"), _weights(tmp_path / "cls1"), atol=1e-5)
    _assert_same(_weights(tmp_path / "tag2"), _weights(tmp_path / "tag1"), atol=1e-5)
    assert json.loads((tmp_path / "cls2" / "summary.json").read_text())["steps"] == 3

    for name in ("last.pt", "best.pt"):
        _assert_same(_weights(tmp_path / "full", name), _weights(tmp_path / "cut", name), atol=0)
    rows = [json.loads(l) for l in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[-1]["step"] == 3 * 8  # 64 examples / (2 x 4)
    meta = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["meta"]
    assert meta["world_size"] == 2

    # The same run continued by one process: refused, saying how many processes wrote it.
    from grutool.errors import UserError

    with pytest.raises(UserError, match="2 process"):
        train(load_config(str(tmp_path / "cut.yaml")), resume=True)


def test_a_rank_that_dies_stops_the_other_quickly_and_the_last_checkpoint_is_kept(tmp_path):
    raw = _classifier(tmp_path, "run", batch_size=4, epochs=3, dist_timeout_s=30)
    # Rank 1 dies (os._exit, as kill -9) at step 12: mid epoch 2, after epoch 1's checkpoints.
    jobs = [{"config": _write(tmp_path, "run", raw), "die_at": 12}]
    start = time.monotonic()
    rank0, rank1 = launch(tmp_path, jobs, own_group=False)
    assert rank1["code"] == 3
    assert rank0["code"] == 0 and len(rank0["rows"]) == 1, rank0["stderr"][-3000:]
    row = rank0["rows"][0]
    assert row["outcome"] == "error" and "PeerFailure" in row["message"], row
    assert "lost its peers" in row["message"] and "--resume" in row["message"], row
    assert row["seconds"] < 30, row  # noticed at once, not after the timeout
    assert time.monotonic() - start < LIMIT_S
    last = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert last["meta"]["state"]["epoch"] == 1 and (tmp_path / "run" / "best.pt").is_file()
    assert not (tmp_path / "run" / ".lock").exists()  # rank 0 released the run directory


@pytest.mark.parametrize("config", ["configs/sentiment.yaml", "configs/tagging.yaml", "configs/reverse.yaml"])
def test_every_parameter_gets_a_gradient_so_ddp_needs_no_unused_parameter_search(tmp_path, config):
    """DDP runs with find_unused_parameters=False: a parameter without a gradient would hang its reducer."""
    from grutool import load_config
    from grutool.data.batching import collate
    from grutool.families import get_task

    raw = yaml.safe_load((ROOT / config).read_text())
    for split in ("train", "validation", "test"):
        raw["data"][split] = str(ROOT / raw["data"][split])
    raw["data"].pop("test")
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(yaml.safe_dump(raw))
    cfg = load_config(cfg_path)
    task = get_task(cfg.task)
    prepared = task.prepare(cfg)
    torch.manual_seed(0)
    model = task.build_model(cfg, prepared)
    model.train()
    split = prepared.splits["train"]
    batch = collate(split, list(range(min(32, len(split)))))
    _, loss = model(batch.ids, batch.lengths, batch.targets, **batch.extra_inputs())
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None] == []


def _lm_stream(tmp: Path, name: str, **train) -> dict:
    """configs/lm_stream.yaml (truncated BPTT over one character stream, 8 rows), data paths made absolute."""
    raw = yaml.safe_load((ROOT / "configs" / "lm_stream.yaml").read_text(encoding="utf-8"))
    for split in ("train", "validation"):
        raw["data"][split] = str(ROOT / raw["data"][split])
    raw["train"].update({"epochs": 1, "num_threads": 1, **train})
    raw["output_dir"] = str(tmp / name)
    return raw


def test_a_stream_lm_shards_by_rows_so_each_rank_carries_its_own_state(tmp_path):
    from grutool import load_config, train

    # Rank r reads rows r, r+2, ... of every chunk, in order (distributed.shard_streams): every chunk has the
    # same length on both ranks, so the averaged gradient is the single process's over all 8 rows.
    # Kernel fused here: its two runs agree to ~5e-6 on an AMD EPYC and 2.0e-5 on an Intel Xeon (MKL rounds
    # the 4- and 8-row GEMMs differently per CPU); under native and compiled (auto's choice) float32 GEMM
    # rounding of 4 vs 8 rows, amplified by Adam on near-zero gradients, leaves ~9e-5 after 6 steps (measured).
    # One Adam step (lr 0.01) moves these weights by up to 1.0e-2, so rows given to the wrong rank would
    # differ by ~1e-2: atol 1e-4 keeps a factor 100 from both.
    two_raw, one_raw = (_lm_stream(tmp_path, name, max_steps=6) for name in ("two", "one"))
    for raw in (two_raw, one_raw):
        raw["model"]["kernel"] = "fused"
    two, one = _write(tmp_path, "two", two_raw), _write(tmp_path, "one", one_raw)
    # Resume mid-epoch: each rank's carried state (and RNG, for dropout) must come back as that rank's.
    full = _lm_stream(tmp_path, "full", epochs=2)
    full["model"]["embedding_dropout"] = 0.2
    cut = {**full, "output_dir": str(tmp_path / "cut")}
    few = _write(tmp_path, "few", _lm_stream(tmp_path, "few", batch_size=1))
    jobs = [{"config": two}, {"config": _write(tmp_path, "full", full)},
            {"config": _write(tmp_path, "cut", cut), "interrupt_at": 10},
            {"config": str(tmp_path / "cut.yaml"), "resume": True}, {"config": few}]
    results = launch(tmp_path, jobs)
    _ok(results, len(jobs))
    outcomes = [row["outcome"] for row in results[0]["rows"]]
    assert outcomes == ["ok", "ok", "interrupted", "ok", "error"], results[0]["rows"]
    assert "1 parallel row(s), fewer than the 2 processes" in results[0]["rows"][4]["message"]
    assert not (tmp_path / "few").exists()  # refused before the run directory is written

    train(load_config(one))
    _assert_same(_weights(tmp_path / "two"), _weights(tmp_path / "one"), atol=1e-4)
    for name in ("last.pt", "best.pt"):
        _assert_same(_weights(tmp_path / "full", name), _weights(tmp_path / "cut", name), atol=0)
    carry = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["carry"]
    assert len(carry["ranks"]) == 2 and carry["ranks"][0] is not None


def test_more_processes_than_batches_is_refused_before_anything_is_written():
    """150 examples in batches of 16 on 12 processes: every rank got 0 batches, trained nothing and ended with
    `nothing usable was saved (no epoch gave a finite validation accuracy)` after writing the run's first files.
    Checked with rank 0's data, before the run directory is written (grutool.training.startup)."""
    from grutool.errors import UserError
    from grutool.training import distributed

    split = type("Split", (), {"streams": None, "__len__": lambda self: 150})()
    with pytest.raises(UserError) as refused:
        distributed.check_shares(distributed.Dist(0, 12), split, 16)
    message = str(refused.value)
    assert message.startswith("train.batch_size:") and "10 batch(es)" in message and "12 processes" in message
    fits = int(message.split("at most ")[1].split()[0])
    assert -(-150 // fits) >= 12 > -(-150 // (fits + 1)), "the batch size it suggests is the largest that fits"
    for rank in (0, 5):  # every rank refuses alike
        with pytest.raises(UserError):
            distributed.check_shares(distributed.Dist(rank, 12), split, 16)
    distributed.check_shares(distributed.Dist(0, 12), split, fits)  # the suggestion is accepted
    distributed.check_shares(distributed.SINGLE, split, 1000)  # one process: one short batch is fine
    with pytest.raises(UserError, match="use at most 150 processes"):
        distributed.check_shares(distributed.Dist(0, 151), split, 1)


def test_a_lost_peer_is_said_in_gloo_s_first_sentence_without_its_source_path():
    # The `lost its peers` line carried gloo's whole text: "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/
    # tcp/pair.cc:553] Connection closed by peer ... Check the logs of the remote worker ... GLHF! 🏖️".
    from grutool.errors import PeerFailure
    from grutool.training.distributed import Dist, peers

    gloo = RuntimeError("[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed "
                        "by peer [127.0.0.1]:24997. This is typically caused by a remote worker crashing. Check the "
                        "logs of the remote worker before reporting an error. GLHF! 🏖️")
    with pytest.raises(PeerFailure) as caught:
        with peers(Dist(rank=0, world_size=2), "training"):
            raise gloo
    said = str(caught.value)
    assert "(another process died, was killed or hung past train.dist_timeout_s; RuntimeError: Connection " \
           "closed by peer [127.0.0.1]:24997)" in said, said
    assert "pair.cc" not in said and "GLHF" not in said
