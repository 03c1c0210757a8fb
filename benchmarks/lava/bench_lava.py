"""Time per sample: stc runtime fixed mode (CPU, torch integer path) vs Lava's simulator.

Both run the same fixed-point MLP SNN (an IR graph, Loihi weights) on the same batch and must
agree bit for bit (checked here too). The ratio is lava-sim time / runtime time, measured in
one process on this machine's CPU. Lava's figures include its per-call compile (one per
batch). Lava is timed twice: through the Executable (``infer``: it also converts the batch)
and as the bare pipelined ``run_lava_sim`` (the whole batch in one run, netx reset_interval),
whose output is also compared with the NumPy oracle.

    .venv/bin/python benchmarks/lava/bench_lava.py \
        --out benchmarks/results/lava_sim_vs_runtime_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch

from stc.ir import nodes as N
from stc.ir.graph import Graph


def build_graph(sizes=(64, 128, 10), T=8, seed=0) -> Graph:
    """Input -> Repeat(T) -> (Linear -> LoihiCubaLIF)* -> TimeMean -> Output."""
    rng = np.random.default_rng(seed)
    g = Graph()
    g.add(N.Input(name="x", shape=(sizes[0],)))
    g.add(N.Repeat(name="rep", inputs=["x"], shape=(sizes[0],), time_steps=T))
    prev = "rep"
    for i, (k, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.integers(-32, 32, (o, k)) * 2
        g.add(N.Linear(name=f"fc{i}", inputs=[prev], shape=(o,), in_features=k,
                       out_features=o), weight=torch.tensor(w))
        g.add(N.LoihiCubaLIF(name=f"lif{i}", inputs=[f"fc{i}"], shape=(o,), i_decay=1024,
                             v_decay=256, v_th_mant=150))
        prev = f"lif{i}"
    g.add(N.TimeMean(name="tm", inputs=[prev], shape=(sizes[-1],)))
    g.add(N.Output(name="y", inputs=["tm"], shape=(sizes[-1],)))
    return g


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    from stc.lava.executor import load_lava_executable, run_lava_sim
    from stc.lava.layers import reference_forward
    from stc.runtime.executable import Executable

    g = build_graph(T=args.steps)
    x = np.random.default_rng(1).integers(0, 17, (args.batch, 64)).astype(np.float32)
    runtime = Executable(g, numerics="fixed")
    lava = load_lava_executable(build_graph(T=args.steps), backend="lava-sim")
    t_rt, t_lava, t_pipe = [], [], []
    layers = lava.mapping.network.layers
    xt = np.repeat(x.astype(np.int64)[:, None], args.steps, axis=1)
    try:
        ref = runtime.infer({"x": x})["y"]
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            ref = runtime.infer({"x": x})["y"]
            t_rt.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            got = lava.infer({"x": x})["y"]
            t_lava.append(time.perf_counter() - t0)
            if not np.array_equal(ref, got):
                raise SystemExit("lava-sim and runtime fixed mode disagree")
            t0 = time.perf_counter()
            pipe = run_lava_sim(layers, xt)
            t_pipe.append(time.perf_counter() - t0)
            if not np.array_equal(pipe, reference_forward(layers, xt)):
                raise SystemExit("pipelined lava-sim and the NumPy oracle disagree")
    finally:
        lava.close()
    rt_ms = statistics.median(t_rt) / args.batch * 1e3
    lava_ms = statistics.median(t_lava) / args.batch * 1e3
    pipe_ms = statistics.median(t_pipe) / args.batch * 1e3
    from importlib.metadata import version

    result = {
        "benchmark": "lava-sim vs stc runtime fixed mode, time per sample",
        "device": "CPU (2 cores, shared with other jobs; load average at start "
                  f"{os.getloadavg()[0]:.1f})",
        "network": "MLP SNN 64-128-10, LoihiCubaLIF, graded input, TimeMean readout",
        "batch": args.batch, "time_steps": args.steps, "repeats": args.repeats,
        "runtime_fixed_ms_per_sample": rt_ms,
        "lava_sim_ms_per_sample": lava_ms,
        "ratio_lava_over_runtime": lava_ms / rt_ms,
        "lava_sim_pipelined_ms_per_sample": pipe_ms,
        "ratio_pipelined_lava_over_runtime": pipe_ms / rt_ms,
        "bit_exact": True,
        "lava_includes_compile": True,
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "lava-nc": version("lava-nc"), "lava-dl": version("lava-dl"),
                     "numpy": np.__version__},
        "command": "python benchmarks/lava/bench_lava.py " + " ".join(
            f"--{k} {v}" for k, v in vars(args).items() if v is not None),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
