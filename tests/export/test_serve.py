"""grutool serve on real loopback: start, health, info, predict equals infer, concurrent requests batched
and answered correctly, bad requests get 4xx (never 500) with {"error"}, bodies bounded while they arrive,
trickling clients closed, Ctrl-C exits 130, a taken port is one line, clean shutdown."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import assert_user_error, invoke, shipped_config, tiny_config
from grutool.config_file import parse_config
from grutool.predict import Predictor
from grutool.training.loop import train

uvicorn = pytest.importorskip("uvicorn", reason="the serve extra: pip install -e '.[serve]'")
httpx = pytest.importorskip("httpx")


HEADER_TIMEOUT, BODY_TIMEOUT = 1.5, 1.5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running(predictor, limits):
    """A real server for `predictor` on 127.0.0.1 in a thread, as `serve` builds it: (url, app); stopped (and
    joined) at the end."""
    from grutool.serve import build_app, listen, make_server

    app = build_app(predictor, limits)
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    srv = make_server(app, limits, "127.0.0.1", port)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started:
        assert time.time() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
    assert not thread.is_alive(), "server did not shut down"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from grutool.serve import Limits

    tmp = tmp_path_factory.mktemp("serve")
    raw = tiny_config(tmp)
    train(parse_config(raw, "serve"), progress=False)
    predictor = Predictor(raw["output_dir"], "cpu")
    limits = Limits(max_texts=8, max_chars=200, max_body=20_000, max_batch=16, window_ms=20,
                    header_timeout=HEADER_TIMEOUT, body_timeout=BODY_TIMEOUT)
    with running(predictor, limits) as (url, app):
        yield url, predictor, app


def test_health_info_and_docs(server):
    url, predictor, _ = server
    assert httpx.get(f"{url}/health").json() == {"status": "ok"}
    head = httpx.head(f"{url}/health")  # what some health checkers send: it was 405
    assert head.status_code == 200 and head.content == b"", head
    info = httpx.get(f"{url}/info").json()
    assert info["task"] == "classifier" and info["labels"] == ["neg", "pos"] and info["limits"]["max_texts"] == 8
    assert info["options"] == {} and "columns" not in info["data"]  # text: tokens, no columns
    assert "/predict" in httpx.get(f"{url}/openapi.json").json()["paths"]


def test_info_and_the_first_line_name_the_export_that_answers(server, tmp_path):
    """`/info` said only `"backend": "onnx"`: not which of a run's exports (model.onnx, model.int8.onnx, one
    written with -o elsewhere) answered, nor whether it was int8."""
    from grutool.serve import Limits, describe

    _, predictor, _ = server
    result = invoke("export", predictor.run.path, "--format", "torchscript", "--int8", "-o", tmp_path / "q.pt")
    assert result.exit_code == 0, result.output
    (tmp_path / "x").mkdir()
    exported = Predictor(predictor.run.path, "cpu", backend="torchscript",
                         exported=tmp_path / "x" / ".." / "q.pt")  # named as typed: the file, resolved
    with running(exported, Limits(max_texts=8, max_chars=200)) as (url, _):
        info = httpx.get(f"{url}/info").json()
    where = (tmp_path / "q.pt").resolve()
    assert info["backend"] == "torchscript" and info["export"] == {"file": str(where), "int8": True}
    assert describe(exported) == f"torchscript {where}, int8" and describe(predictor) == "torch"
    assert "export" not in httpx.get(f"{server[0]}/info").json()  # the checkpoint: no file to name


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
    (b'{"texts": ["a"], "temperature": 0.5}', 422), (b'{"texts": ["a"], "beam": 2}', 422),
])
def test_bad_requests_get_4xx_with_a_reason(server, body, status):
    url, _, _ = server
    r = httpx.post(f"{url}/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert r.json()["error"]


def test_a_body_that_is_not_json_says_so(server):
    """Before, `{bad` got "1: JSON decode error": the decoder's character offset read as a field name."""
    url, _, _ = server
    r = httpx.post(f"{url}/predict", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error.startswith("body: not valid JSON (") and error.endswith(" at character 1)"), error


def test_a_lone_surrogate_is_422_naming_its_text(server):
    # JSON's "\ud800" parses to no character: the answer echoing it back failed to serialise, a 500 after the
    # model had run. Paired escapes (an emoji) are characters and answered.
    url, _, _ = server
    r = httpx.post(f"{url}/predict", content=b'{"texts": ["fine", "bad \\ud800 one"]}',
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"].startswith("texts[1]: holds a lone surrogate"), r.text
    r = httpx.post(f"{url}/predict", content=b'{"texts": ["good \\ud83d\\ude00 film"]}',
                   headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["results"][0]["text"] == "good \U0001F600 film", r.text


@pytest.mark.parametrize("body,content_type,status,error", [
    (b'{"texts": ["a good film"]}', "text/plain", 415,
     "content-type: 'text/plain', not JSON; send the body as JSON with the header 'content-type: application/json'"),
    (b'{"texts": ["a good film"]}', None, 415, "content-type: none given, not JSON; send the body as JSON"),
    (b"", "application/json", 422, 'body: empty, not a JSON object; send {"texts": [...]}'),
    (b'["a good film"]', "application/json", 422, 'body: a JSON array, not a JSON object; send {"texts": [...]}'),
    (b"null", "application/json", 422, 'body: a JSON null, not a JSON object; send {"texts": [...]}'),
])
def test_a_body_that_is_no_json_object_says_what_it_was(server, body, content_type, status, error):
    """Before, each of these got "body: Input should be a valid dictionary or object to extract fields from" (422,
    a JSON object sent as text/plain too, as if its JSON were wrong), or "body: Field required" for no body."""
    url, _, _ = server
    r = httpx.post(f"{url}/predict", content=body, headers={"content-type": content_type} if content_type else {})
    assert r.status_code == status and r.json()["error"].startswith(error), r.text
    ok = httpx.post(f"{url}/predict", content=b'{"texts": ["a"]}',
                    headers={"content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200, ok.text


@pytest.mark.parametrize("texts,error", [("one string", "texts: a JSON string, not an array"),
                                         ({"a": 1}, "texts: a JSON object, not an array"),
                                         (None, "texts: a JSON null, not an array")])
def test_a_misshapen_field_says_what_it_was_in_json_s_words(server, texts, error):
    """Before: "texts: Input should be a valid list" (Python's word, where the body's own check said "array")."""
    url, _, _ = server
    r = httpx.post(f"{url}/predict", json={"texts": texts})
    assert r.status_code == 422 and r.json() == {"error": error}, r.text


def test_a_text_over_max_chars_names_its_length_the_limit_and_the_option(server):
    # Before: "texts[1]: over 200 characters", without the option that sets the limit.
    url, _, _ = server
    r = httpx.post(f"{url}/predict", json={"texts": ["a", "x" * 1201]})
    assert r.status_code == 413 and r.json() == {"error": "texts[1]: 1,201 characters, over this server's 200 "
                                                          "(grutool serve --max-chars); send a shorter text"}, r.text


def test_a_text_run_takes_strings_only(server):
    """An array where a text belongs is a misshapen body (422) saying what an entry is; before, a text run read
    the array's JSON as a sentence and answered 200."""
    url, _, _ = server
    r = httpx.post(f"{url}/predict", json={"texts": ["a good film", [[0.1, 0.2]]]})
    assert r.status_code == 422 and r.json() == {"error": "texts[1]: a text is one JSON string"}, r.text


def test_an_input_the_model_refuses_fails_its_own_request_only():
    """A refusal found only while the batch runs (a forecast table, an lm prompt's unseen characters): the
    batch is run again request by request, so the others get their results and the bad one its error."""
    import asyncio

    from grutool.errors import UserError
    from grutool.serve import Batcher, Limits

    def predict(texts, options, positions):
        if "bad" in texts:
            raise UserError(f"input {texts.index('bad') + 1}: refused")
        return [{"text": t} for t in texts]

    async def main():
        batcher = Batcher(predict, Limits(window_ms=50))
        return await asyncio.gather(*(batcher.submit([t]) for t in ["a", "bad", "b"]), return_exceptions=True)

    a, bad, b = asyncio.run(main())
    assert a == [{"text": "a"}] and b == [{"text": "b"}]
    assert isinstance(bad, UserError) and str(bad) == "input 1: refused"


def _connect(url: str) -> socket.socket:
    host, port = url.rsplit("/", 1)[-1].split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _response(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    return data


def test_a_chunked_body_over_the_limit_is_refused_while_it_arrives(server):
    """No Content-Length: the limit is counted as the chunks arrive; the 413 comes (and the connection closes)
    long before the client has sent its 2 MB (100 times the limit)."""
    url, _, _ = server
    chunk = b"x" * 4_000
    total, sent = 500, 0
    with _connect(url) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            for sent in range(1, total + 1):
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                if select.select([sock], [], [], 0.02)[0]:  # the server answered: stop sending
                    break
        except (BrokenPipeError, ConnectionResetError, socket.timeout):  # it closed, or stopped reading
            pass
        data = _response(sock)
    assert sent < total // 2, f"the server let the client send {sent} of {total} chunks"
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), data[:300]
    assert b"connection: close" in head.lower()
    assert "over 20,000 bytes, this server's limit; send fewer or shorter texts" in json.loads(body)["error"]


def test_a_body_with_a_content_length_over_the_limit_is_refused_unread(server):
    url, _, _ = server
    with _connect(url) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 300000000\r\n\r\n" + b"x" * 1000)
        data = _response(sock)
    assert data.startswith(b"HTTP/1.1 413") and b"connection: close" in data.lower(), data[:300]


def test_connections_trickling_headers_are_closed(server):
    """Slowloris: three connections that send part of their headers, one header every 0.2 s, and one that sends
    nothing, and a keep-alive connection trickling its second request: all closed within the header timeout,
    while ordinary requests are answered meanwhile."""
    url, _, _ = server
    socks = [_connect(url) for _ in range(4)]
    keep = _connect(url)
    keep.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
    keep.settimeout(10)
    assert keep.recv(65536).startswith(b"HTTP/1.1 200")
    trickling = socks[:3] + [keep]
    for s in trickling:
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\n")
    t0 = time.monotonic()
    closed = {}
    try:
        while len(closed) < len(socks) + 1 and time.monotonic() - t0 < HEADER_TIMEOUT + 5:
            for i, s in enumerate(socks + [keep]):
                if i in closed:
                    continue
                if select.select([s], [], [], 0)[0]:
                    try:
                        gone = s.recv(65536) == b""
                    except ConnectionResetError:
                        gone = True
                    if gone:
                        closed[i] = time.monotonic() - t0
                        continue
                if s in trickling:
                    try:
                        s.sendall(b"X-Slow: %d\r\n" % i)
                    except (BrokenPipeError, ConnectionResetError):
                        closed[i] = time.monotonic() - t0
            assert httpx.get(f"{url}/health", timeout=10).status_code == 200
            time.sleep(0.2)
    finally:
        for s in socks + [keep]:
            s.close()
    assert len(closed) == len(socks) + 1, f"still open after {HEADER_TIMEOUT + 5} s: {len(socks) + 1 - len(closed)}"
    assert max(closed.values()) < HEADER_TIMEOUT + 3, closed


def test_a_trickling_body_gets_408_and_the_connection_closes(server):
    url, _, _ = server
    with _connect(url) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
        t0 = time.monotonic()
        data = b""
        try:
            while time.monotonic() - t0 < BODY_TIMEOUT + 5 and not data:
                sock.sendall(b" ")
                if select.select([sock], [], [], 0.2)[0]:
                    data = _response(sock)
        except (BrokenPipeError, ConnectionResetError):
            data = data or _response(sock)
    assert data.startswith(b"HTTP/1.1 408"), data[:300]
    assert time.monotonic() - t0 < BODY_TIMEOUT + 3


@pytest.mark.parametrize("method,path,body,content_type,status", [
    ("GET", "/nowhere", None, None, 404),
    ("PUT", "/predict", b'{"texts": ["a"]}', "application/json", 405),
    ("GET", "/predict", None, None, 405),
    ("DELETE", "/health", None, None, 405),
    ("POST", "/predict", b"\xff\xfe{", "application/json", 422),  # was 400, FastAPI's "error parsing the body"
    ("POST", "/predict", b"texts=a", "application/x-www-form-urlencoded", 415),
    ("POST", "/predict", b"a good film", "text/plain", 415),
])
def test_every_error_body_is_error_not_detail(server, method, path, body, content_type, status):
    url, _, _ = server
    headers = {"content-type": content_type} if content_type else {}
    r = httpx.request(method, f"{url}{path}", content=body, headers=headers, follow_redirects=False)
    assert r.status_code == status, r.text
    assert set(r.json()) == {"error"} and r.json()["error"], r.text


def test_limits_say_the_way_round_them(server):
    # Before: "texts: List should have at most 8 items after validation, not 9" (pydantic's words, no fix), and
    # bytes no JSON decoder could read a bare 400 "There was an error parsing the body" naming nothing.
    url, _, _ = server
    r = httpx.post(f"{url}/predict", json={"texts": ["a"] * 9})
    assert r.status_code == 422 and r.json() == {"error": "texts: 9 texts, more than the 8 this server takes in a "
                                                          "request (grutool serve --max-texts); send them in several "
                                                          "requests"}, r.text
    r = httpx.post(f"{url}/predict", content=b'{"texts": ["\xff"]}', headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["error"].startswith("body: not readable as JSON (not UTF-8"), r.text


def test_a_text_within_max_chars_is_not_refused_for_its_body(server):
    # Before: --max-chars 3,000,000 left the body bound at 2 MB, so a 2.5 MB text it allowed got 413 "request
    # body over 2000000 bytes", a bound no option moves. The body bound now holds a text of --max-chars.
    from fastapi.testclient import TestClient

    from grutool.serve import Limits, build_app

    _, predictor, _ = server

    class Counting:  # the served run, answering without the model (a 2.5 MB text would take it minutes)
        def __getattr__(self, name):
            return getattr(predictor, name)

        def predict(self, texts, batch_size):
            return [{"chars": len(t)} for t in texts]

    text = "good film " * 250_000
    with TestClient(build_app(Counting(), Limits(max_chars=3_000_000))) as client:
        r = client.post("/predict", json={"texts": [text]})
        assert r.status_code == 200 and r.json() == {"results": [{"chars": len(text)}]}, r.text[:200]
        r = client.post("/predict", json={"texts": [text + "x" * 600_000]})
        assert r.status_code == 413 and "--max-chars" in r.json()["error"], r.text[:200]


def test_an_unexpected_failure_is_500_with_error(server):
    from fastapi.testclient import TestClient

    from grutool.serve import Limits, build_app

    _, predictor, _ = server

    class Broken:
        def __getattr__(self, name):
            return getattr(predictor, name)

        def predict(self, texts, batch_size):
            raise RuntimeError("a bug")

    with TestClient(build_app(Broken(), Limits()), raise_server_exceptions=False) as client:
        r = client.post("/predict", json={"texts": ["a"]})
    assert r.status_code == 500 and set(r.json()) == {"error"}, r.text


def _serve_process(run: Path, port: int) -> subprocess.Popen:
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "grutool", "serve", str(run), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_exits_130_without_a_traceback(server, presses):
    _, predictor, _ = server
    port = free_port()
    proc, busy = _serve_process(predictor.run.path, port), None
    try:
        deadline = time.time() + 60
        while True:
            assert time.time() < deadline and proc.poll() is None, proc.communicate(timeout=10)
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        # A request in progress (its body still arriving): one Ctrl-C waits for it, a second drops it.
        busy = socket.create_connection(("127.0.0.1", port), timeout=10) if presses == 2 else None
        if busy is not None:
            busy.sendall(b"POST /predict HTTP/1.1\r\nHost: test\r\nContent-Length: 100\r\n\r\n{")
            time.sleep(0.3)
        for _ in range(presses):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.05)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if busy is not None:
            busy.close()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Error" not in stderr, stderr
    assert stderr.startswith(f"serving {predictor.run.path} (torch) on http://127.0.0.1:{port}"), stderr


def test_a_load_error_comes_before_the_serving_line(server, tmp_path):
    _, predictor, _ = server
    result = invoke("serve", predictor.run.path, "--backend", "onnx", "--model", tmp_path / "missing.onnx",
                    "--host", "192.0.2.1")  # an address this machine cannot bind: a regression fails, not serves
    assert_user_error(result, "missing.onnx")


def test_a_taken_port_is_one_line_and_exit_2(server):
    _, predictor, _ = server
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke("serve", predictor.run.path, "--port", port)
    assert_user_error(result, f"--port: port {port} on 127.0.0.1 is in use; choose another --port")


def test_model_without_backend_is_refused_as_infer_refuses_it(server, tmp_path):
    _, predictor, _ = server
    for command in ("infer", "serve"):
        args = ["a text"] if command == "infer" else ["--host", "192.0.2.1"]
        result = invoke(command, predictor.run.path, *args, "--model", tmp_path / "x.onnx")
        assert_user_error(result, "--model: names an exported file; add --backend onnx or --backend torchscript")


# --- language models: the condition and the generation options in the request body -------------------------

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lm_servers(tmp_path_factory):
    """Servers for a tiny conditioned line model (configs/lm.yaml) and a stream model (configs/lm_stream.yaml)."""
    from grutool.serve import Limits

    root = tmp_path_factory.mktemp("serve_lm")
    small = {"embedding_dim": 8, "hidden_size": 16}
    train(parse_config(shipped_config("lm.yaml", root / "cond", model={**small, "condition_dim": 4},
                                 train={"epochs": 1})), progress=False)
    train(parse_config(shipped_config("lm_stream.yaml", root / "stream", model=small,
                                 train={"epochs": 1, "max_steps": 5})), progress=False)
    limits = Limits(max_texts=8, max_chars=200, window_ms=20)
    cond, stream = Predictor(root / "cond", "cpu"), Predictor(root / "stream", "cpu")
    with running(cond, limits) as (cond_url, _), running(stream, limits) as (stream_url, _):
        yield {"cond": (cond_url, cond), "stream": (stream_url, stream)}


def _infer_jsonl(run: Path, *args) -> list[dict]:
    result = invoke("infer", run, *args, "--jsonl", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("kind,texts,options,flags", [
    ("cond", ["Ka", "Zu"], {"condition": "kalo", "num": 3, "seed": 7, "temperature": 0.8, "top_k": 5,
                            "top_p": 0.9, "max_length": 12},
     ["--condition", "kalo", "--num", 3, "--seed", 7, "--temperature", 0.8, "--top-k", 5, "--top-p", 0.9,
      "--max-length", 12]),
    ("cond", [""], {"condition": "zuri", "greedy": True, "max_length": 8},
     ["--condition", "zuri", "--greedy", "--max-length", 8]),
    ("cond", ["Kalo"], {"condition": "pelt", "score": True}, ["--condition", "pelt", "--score"]),
    ("stream", ["the "], {"num": 2, "seed": 3, "max_length": 20}, ["--num", 2, "--seed", 3, "--max-length", 20]),
    ("stream", ["the cat"], {"score": True}, ["--score"]),
])
def test_an_lm_request_with_options_equals_infer(lm_servers, kind, texts, options, flags):
    url, predictor = lm_servers[kind]
    r = httpx.post(f"{url}/predict", json={"texts": texts, **options})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == len(texts) * options.get("num", 1)
    assert results == _infer_jsonl(predictor.run.path, *texts, *flags)


def test_the_seed_decides_the_samples(lm_servers):
    url, _ = lm_servers["cond"]

    def texts(seed):
        body = {"texts": ["K"], "condition": "kalo", "num": 4, "max_length": 12, "seed": seed}
        return [x["text"] for x in httpx.post(f"{url}/predict", json=body).json()["results"]]

    assert texts(1) == texts(1)
    assert len({tuple(texts(s)) for s in (1, 2, 3)}) > 1


def test_concurrent_lm_requests_with_different_options_each_get_their_own(lm_servers):
    """Requests queued together but with other options run as separate model calls; each answer equals the
    request sent alone."""
    url, predictor = lm_servers["cond"]
    bodies = [{"texts": [p], "condition": c, "num": n, "seed": s, "max_length": 10}
              for p in ("K", "Pe", "Z") for c in ("kalo", "zuri") for n, s in ((1, 0), (2, 5))]
    want = [json.loads(json.dumps(predictor.predict(b["texts"], **{k: v for k, v in b.items() if k != "texts"})))
            for b in bodies]
    with httpx.Client() as client, ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda b: client.post(f"{url}/predict", json=b).json()["results"], bodies))
    assert got == want


def test_info_lists_the_conditions_and_the_options(lm_servers):
    info = httpx.get(f"{lm_servers['cond'][0]}/info").json()
    assert info["task"] == "lm" and info["conditions"] == ["kalo", "pelt", "zuri"] and info["labels"] is None
    assert set(info["options"]) == {"condition", "num", "max_length", "temperature", "top_k", "top_p", "seed",
                                    "greedy", "score"}
    assert info["options"]["temperature"]["type"] == "float" and info["options"]["num"]["max"] == 64
    stream = httpx.get(f"{lm_servers['stream'][0]}/info").json()
    assert "conditions" not in stream and set(stream["options"]) == set(info["options"])
    assert "temperature" in httpx.get(f"{lm_servers['cond'][0]}/openapi.json").text


@pytest.mark.parametrize("kind,body,message", [
    ("cond", {"texts": ["Ka"]}, "condition: "),  # a conditioned model needs one
    ("cond", {"texts": ["Ka"], "condition": "nope"}, "condition: unknown 'nope'; known: kalo, pelt, zuri"),
    ("stream", {"texts": ["Ka"], "condition": "kalo"}, "condition: "),  # an unconditioned model takes none
    ("cond", {"texts": ["Ka"], "condition": "kalo", "temperature": 0}, "temperature: must be > 0"),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "temperature": -1.5}, "temperature: must be > 0"),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "temperature": "hot"}, "temperature: "),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "top_k": 0}, "top_k: must be at least 1"),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "top_p": 1.5}, "top_p: must be in (0, 1]"),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "num": 0}, "num: must be at least 1"),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "num": 65},  # the server's bound, and the way round it
     "num: at most 64 in a request to this server (got 65); send several requests"),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "num": "2"}, "num: "),  # strict: a string is no number
    ("cond", {"texts": ["Ka"], "condition": "kalo", "max_length": 0}, "max_length: must be at least 1"),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "max_length": 10_000}, "max_length: "),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "seed": 2**64}, "seed: must be between"),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "greedy": "yes"}, "greedy: "),
    ("cond", {"texts": ["Ka"], "condition": "kalo", "beam": 3}, "beam: not an option of a task lm model (it is "
                                                                "for seq2seq runs)"),
    ("stream", {"texts": ["Ka"], "top_q": 0.5}, "top_q: not an option of a task lm model; a request takes texts "
                                                "and the options condition, num"),
])
def test_bad_lm_options_are_422_naming_the_field(lm_servers, kind, body, message):
    url, _ = lm_servers[kind]
    r = httpx.post(f"{url}/predict", json=body)
    assert r.status_code == 422, r.text
    assert set(r.json()) == {"error"} and r.json()["error"].startswith(message), r.text


def test_a_prompt_the_model_refuses_is_400_as_a_numeric_input_is(lm_servers):
    """Text families answer an input the model refuses with 400, as numeric and forecast runs now do."""
    url, _ = lm_servers["cond"]
    r = httpx.post(f"{url}/predict", json={"texts": ["Zé"], "condition": "kalo"})
    assert r.status_code == 400 and "characters the model never saw in training" in r.json()["error"], r.text
    # the prompt is named as the body's entry, as numeric and forecast inputs are (infer says `prompt 2 of 2`)
    r = httpx.post(f"{url}/predict", json={"texts": ["Ka", "Zé"], "condition": "kalo"})
    assert r.status_code == 400 and r.json()["error"].startswith("texts[1] ('Zé'): characters the model never saw"), r.text


def test_a_bad_request_does_not_fail_the_requests_queued_with_it(lm_servers):
    url, _ = lm_servers["cond"]
    good = {"texts": ["K"], "condition": "kalo", "max_length": 5}
    bodies = [good, {**good, "temperature": 0}, good, {**good, "condition": "nope"}] * 3
    with httpx.Client() as client, ThreadPoolExecutor(12) as pool:
        codes = list(pool.map(lambda b: client.post(f"{url}/predict", json=b).status_code, bodies))
    assert codes == [200, 422, 200, 422] * 3


@pytest.fixture(scope="module")
def seq2seq_server(tmp_path_factory):
    """A server for a briefly trained configs/reverse.yaml: the family's options are beam and attention."""
    from grutool.config_file import load_config
    from grutool.serve import Limits

    run = tmp_path_factory.mktemp("serve_seq2seq") / "run"
    train(load_config(ROOT / "configs" / "reverse.yaml", [f"output_dir={run}", "train.device=cpu", "train.epochs=1",
                                                          "train.max_steps=5", "model.hidden_size=16",
                                                          f"data.train={ROOT}/data/reverse/train",
                                                          f"data.validation={ROOT}/data/reverse/validation",
                                                          f"data.test={ROOT}/data/reverse/test"]), progress=False)
    predictor = Predictor(run, "cpu")
    with running(predictor, Limits(window_ms=20)) as (url, _):
        yield url, predictor


@pytest.mark.parametrize("options,flags", [({"beam": 3}, ["--beam", 3]), ({"attention": True}, ["--attention-weights"])])
def test_a_seq2seq_request_with_options_equals_infer(seq2seq_server, options, flags):
    url, predictor = seq2seq_server
    texts = ["12345", "908"]
    r = httpx.post(f"{url}/predict", json={"texts": texts, **options})
    assert r.status_code == 200, r.text
    assert r.json()["results"] == _infer_jsonl(predictor.run.path, *texts, *flags)
    info = httpx.get(f"{url}/info").json()
    assert set(info["options"]) == {"beam", "attention"} and info["labels"] is None


@pytest.mark.parametrize("body,message", [
    ({"texts": ["12"], "beam": 0}, "beam: must be at least 1 (got 0)"),  # it said "1 to 256", past the cap below
    ({"texts": ["12"], "beam": 1000}, "beam: at most 64 in a request to this server (got 1000)"),
    ({"texts": ["12"], "temperature": 0.5}, "temperature: not an option of a task seq2seq model (it is for lm runs)"),
])
def test_bad_seq2seq_options_are_422_naming_the_field(seq2seq_server, body, message):
    r = httpx.post(f"{seq2seq_server[0]}/predict", json=body)
    assert r.status_code == 422 and r.json()["error"].startswith(message), r.text
