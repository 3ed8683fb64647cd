"""Server load: requests/s and p50/p99 latency of `grutool serve` on loopback at 1, 8 and 64 concurrent
clients, each request one text, with dynamic batching on (window 2 ms) and off (window 0, max batch 1).

A bounded load generator: each level runs for --seconds (default 10) or --requests per client, whichever
comes first, then the server is stopped.

    OMP_NUM_THREADS=1 python benchmarks/serve_load.py runs/sst2 [--seconds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from grutool.config_file import load_config
from grutool.families.classifier.task import read_examples
import script_args  # noqa: E402  (benchmarks/ is sys.path[0])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def load(url: str, texts: list[str], clients: int, seconds: float, per_client: int) -> dict:
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client(i: int, http: httpx.AsyncClient):
        for k in range(per_client):
            if time.perf_counter() > stop:
                return
            t = time.perf_counter()
            r = await http.post(url, json={"texts": [texts[(i * 7919 + k) % len(texts)]]})
            r.raise_for_status()
            latencies.append(time.perf_counter() - t)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60) as http:
        t0 = time.perf_counter()
        await asyncio.gather(*(client(i, http) for i in range(clients)))
        wall = time.perf_counter() - t0
    q = statistics.quantiles(latencies, n=100)
    return {"clients": clients, "requests": len(latencies), "requests_per_s": len(latencies) / wall,
            "p50_ms": 1000 * statistics.median(latencies), "p99_ms": 1000 * q[98]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--requests", type=script_args.positive, default=2000)
    ap.add_argument("--json")
    args = ap.parse_args()
    cfg = load_config(Path(args.run) / "config.yaml")
    texts, _ = read_examples(cfg.data, cfg.data.validation)
    rows = []
    for mode, batching in (("batched", ["--max-batch", "64", "--batch-window-ms", "2"]),
                           ("unbatched", ["--max-batch", "1", "--batch-window-ms", "0"])):
        # The server in its own process (as deployed): the load generator does not share its GIL.
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "grutool", "serve", args.run, "--port", str(port),
                                   "--backend", args.backend, *batching], stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.time() > deadline or server.poll() is not None:
                    raise SystemExit("server did not start")
                time.sleep(0.2)
            for clients in (1, 8, 64):
                row = {"mode": mode, **asyncio.run(load(f"http://127.0.0.1:{port}/predict", texts, clients,
                                                        args.seconds, args.requests))}
                rows.append(row)
                print(json.dumps(row), flush=True)
        finally:
            server.terminate()
            server.wait(10)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    sys.exit(script_args.run(main))
