"""stc on Ray Serve and Ray Data against the plain server and the plain runtime (CPU figures).

One job, one machine: a real ``.stcb`` bundle (Linear 64->128, LIF, Linear 128->10, LIF; T=4)
  1. overhead at batch 1, concurrency 1: p50/p99 of tritonclient.grpc ModelInfer against the
     plain ``stc serve`` core (stc.server.app.InferenceServer) and against Ray Serve's gRPC
     proxy (stc.serve_ray.app), the two alternating in rounds so both see the same load;
  2. throughput at concurrency 32 (closed-loop client threads, batch-1 requests) with 1 and 2
     Ray Serve replicas (the replica count is changed by redeploying);
  3. Ray Data (stc.serve_ray.batch.infer_dataset, 2 actors) against one plain
     ``load_bundle(...).infer`` over the same 20,000 rows, per core used.
Client threads run in this process; on a 2-core machine they compete with the replicas, so the
throughput figures are lower bounds. The load average before and after is recorded.

Usage: python -m benchmarks.ray.bench_ray [--requests 300] [--seconds 8] [--out DIR]
Writes <out>/ray_cpu.json and <out>/ray_cpu.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

D_IN, HIDDEN, D_OUT, T = 64, 128, 10, 4


def _bundle(root: Path) -> Path:
    import torch
    from torch import nn

    from stc.bundle import write_bundle
    from stc.ir.frontends.torch import from_torch
    from stc.nn.neurons import LIF

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D_IN, HIDDEN), LIF(backend="torch"),
                          nn.Linear(HIDDEN, D_OUT), LIF(backend="torch")).eval()
    path = root / "mlp" / "1" / "model.stcb"
    path.parent.mkdir(parents=True)
    return write_bundle(path, from_torch(model, (D_IN,), time_steps=T), name="mlp", version="1")


def _client(port: int):
    import tritonclient.grpc as grpcclient

    return grpcclient.InferenceServerClient(f"127.0.0.1:{port}")


def _request(client, x):
    import tritonclient.grpc as grpcclient

    inp = grpcclient.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer("mlp", [inp], client_timeout=60)


def _wait_ready(client, seconds=90.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if client.is_model_ready("mlp"):
                return
        except Exception:  # noqa: BLE001 - still starting
            pass
        time.sleep(0.3)
    raise RuntimeError("server did not become ready")


def _latencies(client, x, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        _request(client, x)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def _throughput(port, x, threads, seconds):
    done = [0] * threads
    errors = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i):
        client = _client(port)
        while time.monotonic() < stop:
            try:
                _request(client, x)
                done[i] += 1
            except Exception:  # noqa: BLE001 - counted
                errors[i] += 1
        client.close()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(done) / (time.perf_counter() - t0), sum(errors)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=300, help="requests per overhead round")
    p.add_argument("--seconds", type=float, default=8.0, help="seconds per throughput point")
    p.add_argument("--rows", type=int, default=20_000, help="Ray Data rows")
    p.add_argument("--out", type=Path, default=Path("runs/bench_ray"))
    args = p.parse_args(argv)

    from stc.server.app import InferenceServer, ServerConfig

    import ray
    from ray import serve
    from stc.runtime import load_bundle
    from stc.serve_ray.app import RayServeConfig, build_application, free_port, serve_repository
    from stc.serve_ray.batch import infer_dataset

    load_before = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="stc-bench-ray-"))
    bundle = _bundle(tmp)
    x1 = np.random.default_rng(0).uniform(0, 1, size=(1, D_IN)).astype(np.float32)
    result: dict = {"device": f"CPU ({os.cpu_count()} cores, {platform.machine()}), shared",
                    "python": sys.version.split()[0], "ray": ray.__version__,
                    "command": "python -m benchmarks.ray.bench_ray " + shlex.join(argv or
                                                                                   sys.argv[1:])}

    plain = InferenceServer(ServerConfig(host="127.0.0.1", port=0, max_batch=32,
                                         max_delay_ms=2.0), tmp)
    plain_port = plain.start()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    cfg = RayServeConfig(repository=str(tmp), grpc_port=free_port(), replicas=1,
                         max_batch=32, max_delay_ms=2.0)
    ray_port = serve_repository(cfg)
    pc, rc = _client(plain_port), _client(ray_port)
    _wait_ready(pc)
    _wait_ready(rc)
    _latencies(pc, x1, 30)
    _latencies(rc, x1, 30)
    lat = {"plain": [], "ray": []}
    for _ in range(3):  # alternate rounds: both see the same machine load
        lat["plain"] += _latencies(pc, x1, args.requests // 3)
        lat["ray"] += _latencies(rc, x1, args.requests // 3)
    result["overhead_ms"] = {k: {"p50": float(np.percentile(v, 50)),
                                 "p99": float(np.percentile(v, 99)), "n": len(v)}
                             for k, v in lat.items()}
    result["overhead_ms"]["p50_delta"] = (result["overhead_ms"]["ray"]["p50"]
                                          - result["overhead_ms"]["plain"]["p50"])
    live = {"plain": [], "ray": []}  # a no-op RPC: the proxy hop alone, without inference
    for _ in range(3):
        for key, c in (("plain", pc), ("ray", rc)):
            for _ in range(args.requests // 3):
                t0 = time.perf_counter()
                c.is_server_live()
                live[key].append((time.perf_counter() - t0) * 1e3)
    result["server_live_p50_ms"] = {k: float(np.percentile(v, 50)) for k, v in live.items()}

    tput = {}
    for replicas in (1, 2):
        cfg.replicas = replicas
        serve.run(build_application(cfg), name="stc", route_prefix="/", blocking=False)
        _wait_ready(rc)
        _throughput(ray_port, x1, 32, 1.0)  # warm every replica
        tput[replicas] = _throughput(ray_port, x1, 32, args.seconds)
    result["throughput_c32"] = {f"{r}_replicas": {"req_per_s": v[0], "errors": v[1]}
                                for r, v in tput.items()}
    result["throughput_c32"]["ratio_2_over_1"] = tput[2][0] / tput[1][0]
    pc.close()
    rc.close()
    plain.stop(grace=2)
    serve.shutdown()

    x = np.resize(np.random.default_rng(1).uniform(0, 1, size=(997, D_IN)).astype(np.float32),
                  (args.rows, D_IN))
    exe = load_bundle(bundle, device="cpu")
    t0 = time.perf_counter()
    want = exe.infer({"input": x})
    plain_s = time.perf_counter() - t0
    exe.close()
    infer_dataset(bundle, x[:2000], actors=2, batch_size=1000)  # warm actors' imports
    t0 = time.perf_counter()
    got = infer_dataset(bundle, x, actors=2, batch_size=4096)
    ray_s = time.perf_counter() - t0
    ray.shutdown()
    same = all(np.array_equal(got[k], want[k]) for k in want)
    result["ray_data"] = {"rows": args.rows, "plain_s": plain_s, "ray_s": ray_s, "actors": 2,
                          "equal_outputs": bool(same),
                          # the plain run uses torch's threads on every core; per core used:
                          "per_core_ratio": (plain_s * min(2, os.cpu_count())) / (ray_s * 2)}
    result["loadavg_before"] = load_before
    result["loadavg_after"] = os.getloadavg()

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray_cpu.json").write_text(json.dumps(result, indent=2))
    o, t, d = result["overhead_ms"], result["throughput_c32"], result["ray_data"]
    md = [
        "# stc on Ray (CPU)", "",
        f"Device: {result['device']}; Python {result['python']}; Ray {result['ray']}.",
        f"Command: `{result['command']}`.",
        f"Load average before {load_before[0]:.1f}, after {result['loadavg_after'][0]:.1f} "
        "(other work shared the machine).", "",
        "| measure | plain stc | Ray | ratio / delta | target |", "|---|---|---|---|---|",
        f"| p50 ms, batch 1, concurrency 1 | {o['plain']['p50']:.2f} | {o['ray']['p50']:.2f} | "
        f"{o['p50_delta']:+.2f} ms | within +2 ms |",
        f"| p99 ms, batch 1, concurrency 1 | {o['plain']['p99']:.2f} | {o['ray']['p99']:.2f} | "
        "| |",
        f"| p50 ms of a no-op ServerLive (the proxy hop alone) | "
        f"{result['server_live_p50_ms']['plain']:.2f} | {result['server_live_p50_ms']['ray']:.2f}"
        f" | {result['server_live_p50_ms']['ray'] - result['server_live_p50_ms']['plain']:+.2f}"
        " ms | |",
        f"| req/s at concurrency 32 | 1 replica: {t['1_replicas']['req_per_s']:.0f} | "
        f"2 replicas: {t['2_replicas']['req_per_s']:.0f} | {t['ratio_2_over_1']:.2f}x | "
        ">= 1.5x |",
        f"| Ray Data, {d['rows']} rows (s) | {d['plain_s']:.3f} | {d['ray_s']:.3f} "
        f"({d['actors']} actors) | {d['per_core_ratio']:.2f}x per core | >= 0.8x |", "",
        f"Ray Data outputs equal the plain run: {d['equal_outputs']}. Errors at concurrency 32: "
        f"{t['1_replicas']['errors']} (1 replica), {t['2_replicas']['errors']} (2 replicas).",
    ]
    (args.out / "ray_cpu.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return result


if __name__ == "__main__":
    main()
