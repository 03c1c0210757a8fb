"""gRPC overhead at batch 1 with the server in its own process, against the transport floor.

Measures, in one run on this machine (p50 over paired, interleaved calls):
  1. the floor: a bare grpcio server (health Check only) in another process;
  2. stc serve in another process: ServerLive, and ModelInfer of a small LIF network;
  3. the same bundle called in-process (stc.runtime.load_bundle(...).infer).
overhead = (2, ModelInfer) - (3); the floor says how much of it is grpcio's own round trip.

Usage: python benchmarks/server/overhead_floor.py [--calls 400] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from concurrent import futures
from pathlib import Path

import numpy as np


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _bare_server(port: int) -> None:  # child process: grpcio with only the health service
    import grpc
    from grpc_health.v1 import health, health_pb2_grpc

    server = grpc.server(futures.ThreadPoolExecutor(8))
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    server.wait_for_termination()


def _p50_ms(fn, calls: int) -> float:
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def _wait(fn, seconds: float = 60.0) -> None:
    end = time.monotonic() + seconds
    while True:
        try:
            fn()
            return
        except Exception:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)


def _bundle(folder: Path) -> Path:
    import torch
    from torch import nn

    from stc.bundle import write_bundle
    from stc.ir.frontends.torch import from_torch
    from stc.nn import LIF

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), LIF(backend="torch"), nn.Linear(128, 10),
                          LIF(backend="torch")).eval()
    (folder / "m" / "1").mkdir(parents=True)
    return write_bundle(folder / "m" / "1" / "model.stcb",
                        from_torch(model, (64,), time_steps=4), name="m")


def main(argv: list[str] | None = None) -> dict:
    """Run the measurement; write JSON + Markdown under --out; return the result dict."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=400)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = ap.parse_args(argv)
    import grpc
    import torch
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from stc.client import Client
    from stc.runtime import load_bundle

    torch.set_num_threads(1)
    procs = []
    try:
        bare_port = _free_port()
        procs.append(subprocess.Popen([sys.executable, __file__, "--bare-server",
                                       str(bare_port)]))
        stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(f"127.0.0.1:{bare_port}"))
        _wait(lambda: stub.Check(health_pb2.HealthCheckRequest(), timeout=1))

        folder = Path(tempfile.mkdtemp())
        path = _bundle(folder)
        stc_port = _free_port()
        stc_bin = Path(sys.executable).with_name("stc")
        procs.append(subprocess.Popen([str(stc_bin), "serve", "--repository", str(folder),
                                       "--port", str(stc_port), "--backend", "cpu"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        client = Client(f"127.0.0.1:{stc_port}")
        _wait(client.live)
        exe = load_bundle(path)
        x = np.random.default_rng(0).random((1, 64), dtype=np.float32)
        calls = {
            "bare grpcio health Check": lambda: stub.Check(health_pb2.HealthCheckRequest()),
            "stc ServerLive": client.live,
            "stc ModelInfer": lambda: client.infer("m", {"input": x}),
            "in-process infer": lambda: exe.infer({"input": x}),
        }
        for fn in calls.values():  # warm-up
            for _ in range(50):
                fn()
        rounds = 4  # interleave the four so they share the same background load
        p50 = {k: [] for k in calls}
        for _ in range(rounds):
            for name, fn in calls.items():
                p50[name].append(_p50_ms(fn, args.calls // rounds))
        p50 = {k: float(np.median(v)) for k, v in p50.items()}
        client.close()
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
    overhead = p50["stc ModelInfer"] - p50["in-process infer"]
    result = {
        "device": f"CPU ({platform.machine()}), {os.cpu_count()} cores visible; no GPU",
        "load_average": os.getloadavg(),
        "versions": {"python": platform.python_version(), "grpcio": grpc.__version__,
                     "torch": torch.__version__},
        "command": "python benchmarks/server/overhead_floor.py " + " ".join(argv or sys.argv[1:]),
        "timestamp_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "p50_ms": p50,
        "overhead_ms": overhead,
        "overhead_above_floor_ms": overhead - p50["bare grpcio health Check"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "server_overhead_floor_cpu.json").write_text(json.dumps(result, indent=2))
    rows = "\n".join(f"| {k} | {v:.3f} |" for k, v in p50.items())
    (args.out / "server_overhead_floor_cpu.md").write_text(
        "# gRPC overhead at batch 1, server in its own process (CPU figures)\n\n"
        f"- device: {result['device']}; load average {result['load_average']}\n"
        f"- versions: {result['versions']}\n- command: `{result['command']}`\n"
        f"- timestamp: {result['timestamp_utc']}\n"
        "- model: Linear 64->128, LIF, Linear 128->10, LIF; T=4; batch-1 requests\n\n"
        "| call | p50 ms |\n|---|---|\n" + rows + "\n\n"
        f"stc's gRPC overhead (ModelInfer - in-process): {overhead:+.3f} ms; of this, a bare "
        f"grpcio round trip on this machine costs {p50['bare grpcio health Check']:.3f} ms, "
        f"leaving {result['overhead_above_floor_ms']:+.3f} ms for stc's handler (decode, "
        "validation, metrics, encode) and thread hand-offs.\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--bare-server":
        _bare_server(int(sys.argv[2]))
    else:
        main()
