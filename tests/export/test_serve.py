"""grutool serve on real loopback: start, health, info, predict equals infer, concurrent requests batched
and answered correctly, bad requests get 4xx (never 500), clean shutdown."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import tiny_config
from grutool.config_file import parse_config
from grutool.predict import Predictor
from grutool.training.loop import train

uvicorn = pytest.importorskip("uvicorn", reason="the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A real uvicorn server on 127.0.0.1 in a thread; stopped (and joined) at the end."""
    from grutool.serve import Limits, build_app

    tmp = tmp_path_factory.mktemp("serve")
    raw = tiny_config(tmp)
    train(parse_config(raw, "serve"), progress=False)
    predictor = Predictor(raw["output_dir"], "cpu")
    app = build_app(predictor, Limits(max_texts=8, max_chars=200, max_body=20_000, max_batch=16, window_ms=20))
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", predictor, app
    srv.should_exit = True
    thread.join(timeout=10)
    assert not thread.is_alive(), "server did not shut down"


def test_health_info_and_docs(server):
    url, predictor, _ = server
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    info = httpx.get(f"{url}/info").json()
    assert info["task"] == "classifier" and info["labels"] == ["neg", "pos"] and info["limits"]["max_texts"] == 8
    assert "/predict" in httpx.get(f"{url}/openapi.json").json()["paths"]


def test_predict_equals_infer(server):
    url, predictor, _ = server
    texts = ["a good film", "awful and dull", ""]
    r = httpx.post(f"{url}/predict", json={"texts": texts})
    assert r.status_code == 200
    assert r.json()["results"] == json.loads(json.dumps(predictor.predict(texts)))


def test_concurrent_requests_are_batched_and_answered_correctly(server):
    url, predictor, app = server
    texts = [f"the food was {w} really" for w in ["good", "bad", "superb", "dull", "fine", "poor"] * 5]
    want = {t: r for t, r in zip(texts, json.loads(json.dumps(predictor.predict(texts))))}
    calls = app.state.batcher.calls
    with httpx.Client() as client, ThreadPoolExecutor(12) as pool:
        got = list(pool.map(lambda t: client.post(f"{url}/predict", json={"texts": [t]}).json()["results"][0], texts))
    assert all(g == want[t] for g, t in zip(got, texts))
    assert app.state.batcher.calls - calls < len(texts)  # several requests shared a model call


@pytest.mark.parametrize("body,status", [
    (b"{not json", 422), (b'{"texts": "one string"}', 422), (b'{"texts": [1, 2]}', 422), (b'{"texts": []}', 422),
    (json.dumps({"texts": ["x"] * 9}).encode(), 422), (json.dumps({"texts": ["x" * 201]}).encode(), 413),
    (b'{"text": ["a"]}', 422), (b'[]', 422), (json.dumps({"texts": ["y" * 19_000, "z" * 2_000]}).encode(), 413),
])
def test_bad_requests_get_4xx_with_a_reason(server, body, status):
    url, _, _ = server
    r = httpx.post(f"{url}/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]
