"""gRPC serving overhead and dynamic-batching throughput of ``stc serve`` (CPU figures).

One process, one run: a real ``.stcb`` bundle (Linear 64->128, LIF, Linear 128->10, LIF; T=4;
built with stc.ir.frontends.torch + stc.bundle.write_bundle) is loaded with
stc.runtime.load_bundle and
  1. called in-process (``executable.infer``, batch 1, sequential): the baseline;
  2. served by stc.server on 127.0.0.1 with dynamic batching OFF (max_batch 1) and ON
     (max_batch 32, max_delay_ms 2), driven by C = 1, 8, 64 closed-loop client threads, each
     sending batch-1 OIP v2 ModelInfer requests (raw tensors) through stc.client's stub.
Reports requests/s and p50/p99 latency per point, gRPC overhead at batch 1, and whether
batching raises throughput at C=64. The overhead is measured PAIRED: in-process and gRPC calls
alternate in one loop, so both see the same machine load (p50 of each, difference and ratio).
Sweep points run OFF then ON for each C, back to back, for the same reason.

Caveat: client threads and server share one Python process (GIL) and the machine's cores, so
the server figures include client-side cost; they are lower bounds for a separate client.

Usage: python -m benchmarks.server.bench_server [--seconds 2.5] [--out benchmarks/results]
Writes <out>/server_cpu.json and <out>/server_cpu.md.
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
CONCURRENCY = (1, 8, 64)


def build_bundle(folder: Path) -> Path:
    """Write the benchmark bundle to ``folder/bench/1/model.stcb``; returns the path."""
    import torch
    from torch import nn

    from stc.bundle import write_bundle
    from stc.ir.frontends.torch import from_torch
    from stc.nn.neurons import LIF

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D_IN, HIDDEN), LIF(backend="torch"),
                          nn.Linear(HIDDEN, D_OUT), LIF(backend="torch")).eval()
    path = folder / "bench" / "1" / "model.stcb"
    path.parent.mkdir(parents=True)
    return write_bundle(path, from_torch(model, (D_IN,), time_steps=T), name="bench")


def _stats(latencies: list[float], seconds: float) -> dict:
    lat = np.asarray(latencies) * 1e3
    return {"requests": int(lat.size), "req_per_s": lat.size / seconds,
            "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99))}


def bench_in_process(exe, x: np.ndarray, seconds: float) -> dict:
    """Sequential batch-1 ``exe.infer`` calls for ``seconds``."""
    for _ in range(20):
        exe.infer({"input": x})
    lats = []
    t_end = time.perf_counter() + seconds
    t0 = time.perf_counter()
    while time.perf_counter() < t_end:
        t = time.perf_counter()
        exe.infer({"input": x})
        lats.append(time.perf_counter() - t)
    return _stats(lats, time.perf_counter() - t0)


def bench_server(port: int, x: np.ndarray, concurrency: int, seconds: float) -> dict:
    """C closed-loop client threads, each with its own channel, for ``seconds``."""
    from stc.proto import inference_pb2 as pb

    from stc.client import Client

    req = pb.ModelInferRequest(model_name="bench")
    req.inputs.add(name="input", datatype="FP32", shape=list(x.shape))
    req.raw_input_contents.append(x.tobytes())
    clients = [Client(f"127.0.0.1:{port}") for _ in range(concurrency)]
    for c in clients:
        c.inference.ModelInfer(req, timeout=30)  # connect + warm up
    lats: list[list[float]] = [[] for _ in clients]
    errors: list[BaseException] = []
    start = threading.Barrier(concurrency + 1)
    t_end = [0.0]

    def worker(i: int) -> None:
        stub = clients[i].inference
        start.wait()
        try:
            while time.perf_counter() < t_end[0]:
                t = time.perf_counter()
                stub.ModelInfer(req, timeout=30)
                lats[i].append(time.perf_counter() - t)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    for th in threads:
        th.start()
    t_end[0] = time.perf_counter() + seconds
    t0 = time.perf_counter()
    start.wait()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    for c in clients:
        c.close()
    if errors:
        raise RuntimeError(f"{len(errors)} client errors, first: {errors[0]!r}")
    return _stats([v for li in lats for v in li], elapsed)


def bench_paired(exe, port: int, x: np.ndarray, seconds: float) -> dict:
    """Alternate one in-process call and one gRPC call (batch 1) for ``seconds``."""
    from stc.client import Client

    ours, grpc_lat = [], []
    with Client(f"127.0.0.1:{port}") as client:
        client.infer("bench", {"input": x})
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            exe.infer({"input": x})
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            client.infer("bench", {"input": x})
            grpc_lat.append(time.perf_counter() - t)
    return {"pairs": len(ours), "in_process_p50_ms": float(np.median(ours) * 1e3),
            "grpc_p50_ms": float(np.median(grpc_lat) * 1e3),
            "in_process_p99_ms": float(np.percentile(ours, 99) * 1e3),
            "grpc_p99_ms": float(np.percentile(grpc_lat, 99) * 1e3)}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark, write JSON + Markdown, return the results dict."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="time per point (s)")
    ap.add_argument("--out", default="benchmarks/results", help="output folder")
    args = ap.parse_args(argv)

    import grpc
    import torch
    from stc.server.app import InferenceServer, ServerConfig

    import stc
    from stc.runtime import load_bundle

    torch.set_num_threads(1)  # one intra-op thread: the cores go to gRPC and the batcher
    x = (np.random.default_rng(0).normal(size=(1, D_IN)) * 4).astype(np.float32)
    results: dict = {"in_process": None, "paired_batch1": None, "server": {}}
    with tempfile.TemporaryDirectory() as tmp:
        path = build_bundle(Path(tmp))
        exe = load_bundle(path, device="cpu")
        results["in_process"] = bench_in_process(exe, x, args.seconds)
        servers = {}
        try:
            for label, max_batch in (("batching_off", 1), ("batching_on", 32)):
                cfg = ServerConfig(host="127.0.0.1", port=0, max_batch=max_batch,
                                   max_delay_ms=2.0, max_workers=96, queue_size=512)
                servers[label] = InferenceServer(cfg, Path(tmp))
                servers[label].start()
            results["paired_batch1"] = bench_paired(exe, servers["batching_off"].port, x,
                                                    args.seconds)
            points: dict = {label: {} for label in servers}
            for c in CONCURRENCY:
                for label, server in servers.items():
                    points[label][str(c)] = bench_server(server.port, x, c, args.seconds)
            for label, server in servers.items():
                m, lab = server.metrics, {"model": "bench:1"}
                points[label]["mean_batch_rows"] = (m.value("stc_batch_size_sum", lab)
                                                    / max(m.value("stc_batch_size_count", lab), 1))
            results["server"] = points
        finally:
            for server in servers.values():
                server.stop(grace=5)
    off, on = results["server"]["batching_off"], results["server"]["batching_on"]
    paired = results["paired_batch1"]
    results["summary"] = {
        "grpc_overhead_p50_ms_batch1": paired["grpc_p50_ms"] - paired["in_process_p50_ms"],
        "grpc_latency_ratio_p50_batch1": paired["grpc_p50_ms"] / paired["in_process_p50_ms"],
        "batching_throughput_ratio_c64": on["64"]["req_per_s"] / off["64"]["req_per_s"],
        "batching_raises_throughput_c64": on["64"]["req_per_s"] > off["64"]["req_per_s"],
    }
    results["meta"] = {
        "device": f"CPU ({os.cpu_count()} cores visible, {platform.processor() or 'unknown'}); "
                  "no GPU",
        "load_average_at_end": os.getloadavg(),
        "python": sys.version.split()[0], "torch": torch.__version__,
        "grpcio": grpc.__version__, "numpy": np.__version__, "stc": stc.__version__,
        "command": "python -m benchmarks.server.bench_server " + shlex.join(argv or sys.argv[1:]),
        "seconds_per_point": args.seconds,
        "model": f"Linear {D_IN}->{HIDDEN}, LIF, Linear {HIDDEN}->{D_OUT}, LIF; T={T}; "
                 "batch-1 requests",
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "server_cpu.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "server_cpu.md").write_text(render_markdown(results))
    print(render_markdown(results))
    return results


def render_markdown(r: dict) -> str:
    """The results as a Markdown report."""
    meta, base, s = r["meta"], r["in_process"], r["summary"]
    lines = [
        "# stc serve: gRPC overhead and dynamic batching (CPU figures)", "",
        f"- Device: {meta['device']}; load average at end {meta['load_average_at_end']}",
        f"- Versions: python {meta['python']}, torch {meta['torch']}, grpcio {meta['grpcio']}, "
        f"numpy {meta['numpy']}, stc {meta['stc']}",
        f"- Command: `{meta['command']}` ({meta['seconds_per_point']} s per point, "
        f"{meta['date_utc']} UTC)",
        f"- Model: {meta['model']}",
        "- Clients are threads in the server's process (shared GIL and cores): server figures "
        "include client cost.",
        "- The 2 cores are shared with other jobs (load average above, far over 2): thread "
        "wake-ups then cost scheduler ticks, and repeated runs of the same point differ by up "
        "to ~3x at C=1. Compare only figures from one run; treat them as rough.", "",
        "| path | concurrency | req/s | p50 ms | p99 ms |", "|---|---|---|---|---|",
        f"| in-process `infer` | 1 | {base['req_per_s']:.0f} | {base['p50_ms']:.3f} | "
        f"{base['p99_ms']:.3f} |",
    ]
    for label, pts in r["server"].items():
        for c in CONCURRENCY:
            p = pts[str(c)]
            lines.append(f"| gRPC, {label.replace('_', ' ')} | {c} | {p['req_per_s']:.0f} | "
                         f"{p['p50_ms']:.3f} | {p['p99_ms']:.3f} |")
    lines += [
        "", f"Mean rows per executed batch: batching off "
        f"{r['server']['batching_off']['mean_batch_rows']:.2f}, batching on "
        f"{r['server']['batching_on']['mean_batch_rows']:.2f}.", "",
        f"- gRPC overhead at batch 1 (paired loop of {r['paired_batch1']['pairs']} in-process / "
        f"gRPC call pairs, p50): in-process {r['paired_batch1']['in_process_p50_ms']:.3f} ms, "
        f"gRPC {r['paired_batch1']['grpc_p50_ms']:.3f} ms: "
        f"+{s['grpc_overhead_p50_ms_batch1']:.3f} ms, "
        f"{s['grpc_latency_ratio_p50_batch1']:.2f}x the in-process latency.",
        f"- Dynamic batching at C=64: {s['batching_throughput_ratio_c64']:.2f}x the throughput "
        f"without batching ({'raises' if s['batching_raises_throughput_c64'] else 'does not raise'}"
        " throughput).", "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
