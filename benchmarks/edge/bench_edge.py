"""Edge nodes on one CPU machine: roll-out time, requests lost during a version switch, and
streaming per-step latency (issue 14's targets).

Three ``stc edge agent`` processes (own stores, 127.0.0.1, free ports) are started; the client
side runs in this process.
  1. Roll-out: ``stc.edge.fleet.deploy`` (what ``stc fleet deploy`` runs) of a bundle to the 3
     nodes (canary 1, then the other 2 in parallel), each node verifying and self-testing it
     before the A/B switch. Timed from the first byte pushed to the last node's answer, for a
     LIF MLP and for spikformer_tiny (float + fixed graph), each as a first install and as an
     upgrade.
  2. Version switch under load: 2 client threads send batch-1 ModelInfer requests to node 0
     without pause while node 0 switches versions 5 times (alternating outputs); every
     answer must be a success from the old or the new version.
  3. Streaming: per-step latency of a sequence of one-step requests over tritonclient's
     streaming API (send, wait for the answer) against one ModelInfer call of all T steps at
     batch 1 (the baseline), interleaved in one loop so both see the same load; p50 of each
     and the ratio (target <= 2x), for the MLP and spikformer_tiny.

Usage: python -m benchmarks.edge.bench_edge [--rounds 60] [--out benchmarks/results]
Writes <out>/edge_cpu.json and <out>/edge_cpu.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

T = 4
_LISTEN = re.compile(r"listening on 127\.0\.0\.1:(\d+)")


def mlp_graphs(seed: int):
    """Linear(16, 64) -> LIF -> Linear(64, 10) -> LIF, T = 4, float and fixed graphs."""
    from torch import nn

    from stc.ir.frontends import from_torch
    from stc.nn import LIF
    from stc.passes import quantize

    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(16, 64), LIF(backend="torch"), nn.Linear(64, 10),
                      LIF(backend="torch")).eval()
    with torch.no_grad():
        m[0].weight.mul_(4)
        m[0].bias.add_(0.5)
        m[2].weight.mul_(4)
        m[2].bias.add_(0.5)
    g = from_torch(m, (16,), time_steps=T)
    q, _ = quantize(g, probe=torch.randint(0, 4, (16, 16)).float())
    return g, q


def spikformer_graphs(seed: int):
    """spikformer_tiny (digits preset, random weights; BN statistics drawn so layers fire)."""
    from stc.ir.frontends.models import from_model
    from stc.models import create_model
    from stc.passes import fold_batchnorm, quantize

    torch.manual_seed(seed)
    m = create_model("spikformer_tiny", backend="torch")
    gen = torch.Generator().manual_seed(seed)
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            n = mod.num_features
            mod.weight.data = 3 + 4 * torch.rand(n, generator=gen)
            mod.bias.data = -0.5 + 1.5 * torch.rand(n, generator=gen)
            mod.running_var.data = 0.5 + torch.rand(n, generator=gen)
    g = from_model(m.eval())
    gf, _ = fold_batchnorm(g)
    q, _ = quantize(gf, probe=torch.randint(0, 17, (8, 1, 8, 8)).float())
    return g, q


def write(folder: Path, kind: str, version: int) -> Path:
    """Bundle ``kind`` ("mlp" | "spikformer") at ``version`` with a self-test section."""
    from stc.bundle import write_bundle
    from stc.bundle.selftest import bundle_section

    g, q = (mlp_graphs if kind == "mlp" else spikformer_graphs)(version)
    return write_bundle(folder / f"{kind}-{version}.stcb", g, name=kind, version=str(version),
                        fixed_graph=q, selftest=bundle_section(g, q))


class Agent:
    """An ``stc edge agent`` process."""

    def __init__(self, store: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stc.cli.main", "edge", "agent", "--store", str(store),
             "--port", "0", "--host", "127.0.0.1"], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.port = None
        self._ready = threading.Event()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            m = _LISTEN.search(line)
            if m and self.port is None:
                self.port = int(m.group(1))
                self._ready.set()
        self._ready.set()

    def address(self, timeout: float = 60) -> str:
        if not self._ready.wait(timeout) or self.port is None:
            raise RuntimeError("agent did not start")
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def rollout(bundle: Path, nodes) -> dict:
    from stc.edge.fleet import deploy

    t0 = time.perf_counter()
    res = deploy(bundle, nodes, canary=1)
    secs = time.perf_counter() - t0
    return {"seconds": secs, "ok": all(r.ok for r in res),
            "per_node_s": [round(r.seconds, 3) for r in res],
            "selftest_ms_per_case": [round(r.latency_ms, 3) for r in res],
            "status": [r.status for r in res], "version": [r.version for r in res]}


def switch_under_load(folder: Path, node, switches: int = 5) -> dict:
    from stc.edge.client import EdgeClient

    from stc.client import Client

    x = np.random.default_rng(0).integers(0, 4, (1, 16)).astype(np.float32)
    ok, errors, outputs, stop = [0], [], set(), threading.Event()
    lock = threading.Lock()

    def client():
        with Client(node.address) as c:
            while not stop.is_set():
                try:
                    out = c.infer("mlp", {"input": x})["output"]
                    with lock:
                        ok[0] += 1
                        outputs.add(out.tobytes())
                except Exception as e:  # noqa: BLE001 - counted as lost
                    with lock:
                        errors.append(repr(e)[:200])

    threads = [threading.Thread(target=client) for _ in range(2)]
    for t in threads:
        t.start()
    times = []
    try:
        time.sleep(0.3)
        with EdgeClient(node.address) as ec:
            for v in range(10, 10 + switches):
                b = write(folder, "mlp", v)
                t0 = time.perf_counter()
                ec.deploy(b)
                times.append(time.perf_counter() - t0)
                time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    return {"switches": switches, "requests_ok": ok[0], "requests_failed": len(errors),
            "errors": errors[:5], "distinct_outputs_seen": len(outputs),
            "deploy_s": [round(t, 3) for t in times]}


def streaming(address: str, model: str, x: np.ndarray, rounds: int) -> dict:
    import tritonclient.grpc as grpcclient

    c = grpcclient.InferenceServerClient(url=address)

    def inp():
        i = grpcclient.InferInput("input", list(x.shape), "FP32")
        i.set_data_from_numpy(x)
        return i

    got: queue.Queue = queue.Queue()
    c.start_stream(callback=lambda result, error: got.put((result, error)))
    one_call, step = [], []
    exact = True
    try:
        for _ in range(3):  # warm-up
            c.infer(model, [inp()])
        for r in range(rounds):
            t0 = time.perf_counter()
            ref = c.infer(model, [inp()]).as_numpy("output")
            one_call.append(time.perf_counter() - t0)
            for t in range(T):
                t0 = time.perf_counter()
                c.async_stream_infer(model, [inp()], sequence_id=r + 1, sequence_start=t == 0,
                                     sequence_end=t == T - 1)
                result, error = got.get(timeout=30)
                step.append(time.perf_counter() - t0)
                if error is not None:
                    raise RuntimeError(f"stream error: {error}")
            exact &= bool(np.array_equal(result.as_numpy("output"), ref))
    finally:
        c.stop_stream()
    p50 = float(np.median(step) * 1e3)
    base = float(np.median(one_call) * 1e3)
    return {"model": model, "rounds": rounds, "T": T, "one_call_p50_ms": base,
            "step_p50_ms": p50, "step_p90_ms": float(np.percentile(step, 90) * 1e3),
            "ratio_step_over_one_call": p50 / base, "final_output_equals_one_call": exact}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--out", default="benchmarks/results")
    ns = ap.parse_args(argv)
    from stc.edge.fleet import Node

    folder = Path(tempfile.mkdtemp(prefix="stc-edge-bench-"))
    agents = [Agent(folder / f"store{i}") for i in range(3)]
    try:
        nodes = [Node(f"n{i}", a.address()) for i, a in enumerate(agents)]
        bundles = {k: [write(folder, k, v) for v in (1, 2)] for k in ("mlp", "spikformer")}
        results = {"rollout": {}}
        for kind, (b1, b2) in bundles.items():
            results["rollout"][kind] = {"first install": rollout(b1, nodes),
                                        "upgrade": rollout(b2, nodes),
                                        "bundle_bytes": b1.stat().st_size}
        results["switch_under_load"] = switch_under_load(folder, nodes[0])
        x_mlp = np.random.default_rng(1).integers(0, 4, (1, 16)).astype(np.float32)
        x_sf = np.random.default_rng(1).integers(0, 17, (1, 1, 8, 8)).astype(np.float32)
        results["streaming"] = [streaming(nodes[1].address, "mlp", x_mlp, ns.rounds),
                                streaming(nodes[1].address, "spikformer", x_sf, ns.rounds)]
    finally:
        for a in agents:
            a.stop()
    import grpc

    import stc

    results["meta"] = {
        "device": f"CPU ({os.cpu_count()} cores visible, shared), no GPU",
        "load_average_at_end": os.getloadavg(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "grpcio": grpc.__version__, "stc": stc.__version__},
        "command": "python -m benchmarks.edge.bench_edge " + shlex.join(argv or sys.argv[1:]),
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "edge_cpu.json").write_text(json.dumps(results, indent=1))
    (out / "edge_cpu.md").write_text(render(results))
    print(render(results))
    return results


def render(r: dict) -> str:
    m = r["meta"]
    load = tuple(round(x, 2) for x in m["load_average_at_end"])
    lines = ["# Edge nodes on one CPU machine: roll-out, version switch, streaming", "",
             f"- Device: {m['device']}; load average at end {load}",
             f"- Versions: {', '.join(f'{k} {v}' for k, v in m['versions'].items())}",
             f"- Command: `{m['command']}` ({m['when']})",
             "- Three `stc edge agent` processes (own stores) on 127.0.0.1; clients in the "
             "benchmark process. The 2 cores are shared with other jobs: treat figures as "
             "rough, compare only within this run.", "",
             "## Roll-out to 3 nodes (canary 1, then 2 in parallel; verify + self-test + "
             "A/B switch on each)", "",
             "| bundle | kind | bytes | seconds (target < 10) | per node s | self-test ms/case "
             "| all ok |",
             "|---|---|---|---|---|---|---|"]
    for kind, d in r["rollout"].items():
        for what in ("first install", "upgrade"):
            x = d[what]
            lines.append(f"| {kind} | {what} | {d['bundle_bytes']} | {x['seconds']:.2f} | "
                         f"{x['per_node_s']} | {x['selftest_ms_per_case']} | {x['ok']} |")
    s = r["switch_under_load"]
    lines += ["", "## Version switch under load (node 0, 2 client threads, batch 1)", "",
              f"- {s['switches']} switches (deploy times {s['deploy_s']} s): "
              f"{s['requests_ok']} requests answered, **{s['requests_failed']} failed**; "
              f"{s['distinct_outputs_seen']} distinct outputs seen (old and new versions).",
              "", "## Streaming: one-step requests vs one ModelInfer of all T steps (batch 1)",
              "", "| model | T | one call p50 ms | step p50 ms | step p90 ms | step / call "
              "(target <= 2) | T steps / call | stream == one call |",
              "|---|---|---|---|---|---|---|---|"]
    for x in r["streaming"]:
        lines.append(f"| {x['model']} | {x['T']} | {x['one_call_p50_ms']:.3f} | "
                     f"{x['step_p50_ms']:.3f} | {x['step_p90_ms']:.3f} | "
                     f"{x['ratio_step_over_one_call']:.2f}x | "
                     f"{x['T'] * x['step_p50_ms'] / x['one_call_p50_ms']:.2f}x | "
                     f"{x['final_output_equals_one_call']} |")
    lines += ["", "A step runs 1 timestep, the one call all T: a whole streamed sequence costs "
              "the 'T steps / call' column (one round trip per step), the price of keeping the "
              "state on the server between frames."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
