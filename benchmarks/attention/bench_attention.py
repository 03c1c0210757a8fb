"""Spike-attention speed: fused Triton SSA / SDSA / DSFormer vs the official PyTorch
formulations and torch's scaled_dot_product_attention (dense yardstick), in one process.

    python benchmarks/attention/bench_attention.py            # picks CUDA if present
    python benchmarks/attention/bench_attention.py --device cpu

CUDA: ImageNet shape (T=4, B=32, H=8, N=196, d=64) and longer sequences, fp16 spikes; for
each op the fused Triton forward (backend="triton"), the official-code formulation
(backend="torch", the op's reference.py) and SDPA in fp16 on the same [T*B, H, N, d] tensors;
forward and forward+backward, CUDA-event timing, median of repeats.

CPU (no GPU): small shapes, PyTorch paths only, labelled as CPU figures. The Triton kernels
only run on CPU under TRITON_INTERPRET=1, a NumPy interpreter for testing, which is not a
performance path, so no fused figure is measured on CPU.

Writes JSON + Markdown to benchmarks/results/attention_<device>.{json,md} with the device,
library versions, command and every timing; ratios are against SDPA measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from stc.kernels.attention import dsformer, sdsa, ssa

RESULTS = Path(__file__).resolve().parents[1] / "results"

GPU_SHAPES = [(4, 32, 8, 196, 64), (4, 8, 8, 784, 64), (4, 2, 8, 3136, 64)]
CPU_SHAPES = [(4, 2, 4, 64, 32), (4, 1, 4, 256, 32)]


def spikes(shape, device, dtype, rate=0.2, seed=0):
    g = torch.Generator(device="cpu").manual_seed(seed)
    return (torch.rand(shape, generator=g) < rate).to(device=device, dtype=dtype)


def timed(fn, device, warmup, reps):
    """(min, median) wall time of ``fn()`` in milliseconds over ``reps`` calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return min(times), statistics.median(times)


def make_cases(backends):
    """(name, backend, fn(q, k, v)) for every op formulation measured."""
    cases = []
    for backend in backends:
        tag = "fused-triton" if backend == "triton" else "official-torch"
        cases += [
            (f"ssa {tag}", lambda q, k, v, b=backend: ssa(q, k, v, backend=b)),
            (f"sdsa {tag}", lambda q, k, v, b=backend: sdsa(q, k, v, backend=b)),
            (f"dsformer w1 r1.0 {tag}",
             lambda q, k, v, b=backend: dsformer(q, k, v, 1, 1.0, backend=b)),
            (f"dsformer w2 r0.25 {tag}",
             lambda q, k, v, b=backend: dsformer(q, k, v, 2, 0.25, backend=b)),
        ]
    cases.append(("ssa official-cifar-order (q@k^T)@v",
                  lambda q, k, v: (q @ k.transpose(-2, -1)) @ v * 0.125))
    return cases


def sdpa(q, k, v):
    T, B, H, N, d = q.shape
    return F.scaled_dot_product_attention(q.reshape(T * B, H, N, d), k.reshape(T * B, H, N, d),
                                          v.reshape(T * B, H, N, d))


def run(device: torch.device, warmup: int, reps: int) -> dict:
    on_gpu = device.type == "cuda"
    dtype = torch.float16 if on_gpu else torch.float32
    shapes = GPU_SHAPES if on_gpu else CPU_SHAPES
    cases = make_cases(["triton", "torch"] if on_gpu else ["torch"])
    rows = []
    for shape in shapes:
        base = [spikes(shape, device, dtype, seed=i) for i in range(3)]
        for name, fn in [("sdpa dense yardstick", sdpa)] + cases:
            for mode in ("forward", "forward+backward"):
                if mode == "forward":
                    def step(fn=fn, base=base):
                        with torch.no_grad():
                            fn(*base)
                else:
                    leaves = [x.clone().requires_grad_() for x in base]

                    def step(fn=fn, leaves=leaves):
                        fn(*leaves).float().sum().backward()
                try:
                    ms, med = timed(step, device, warmup, reps)
                except (RuntimeError, torch.OutOfMemoryError) as exc:
                    ms, med, note = None, None, f"failed: {str(exc).splitlines()[0][:120]}"
                else:
                    note = ""
                rows.append(dict(shape=list(shape), op=name, mode=mode, ms=ms, median_ms=med,
                                 note=note))
                print(f"{str(shape):24s} {name:40s} {mode:17s} "
                      f"{'-' if ms is None else f'{ms:9.3f} ms (median {med:.3f})'} {note}",
                      flush=True)
    for row in rows:
        ref = next(r for r in rows if r["shape"] == row["shape"] and r["mode"] == row["mode"]
                   and r["op"] == "sdpa dense yardstick")
        row["vs_sdpa"] = (None if row["ms"] is None or ref["ms"] is None
                          else round(ref["ms"] / row["ms"], 3))
    return dict(rows=rows, dtype=str(dtype).replace("torch.", ""))


def environment(device: torch.device) -> dict:
    try:
        import triton
        triton_version = triton.__version__
    except Exception:  # pragma: no cover - triton missing
        triton_version = None
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU ({platform.processor() or platform.machine()}), "
                 f"{len(os.sched_getaffinity(0))} cores available to the process")
    return dict(device=name, device_type=device.type, torch=torch.__version__,
                triton=triton_version, python=platform.python_version(),
                torch_threads=torch.get_num_threads(),
                load_average_1min_at_start=round(os.getloadavg()[0], 2),
                command=" ".join([Path(sys.executable).name] + sys.argv),
                date_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def markdown(env: dict, result: dict) -> str:
    lines = [f"# Spike attention speed ({env['device_type'].upper()} figures)", ""]
    lines += [f"- device: {env['device']}", f"- torch {env['torch']}, triton {env['triton']}, "
              f"Python {env['python']}, {env['torch_threads']} torch threads",
              f"- machine load average (1 min) at start: {env['load_average_1min_at_start']} "
              "(other jobs share the cores: figures are noisy)",
              f"- dtype: {result['dtype']} spikes (rate 0.2)", f"- command: `{env['command']}`",
              f"- date: {env['date_utc']}"]
    if env["device_type"] != "cuda":
        lines += ["- CPU run: PyTorch formulations only. The fused Triton kernels run on CPU "
                  "only under TRITON_INTERPRET=1 (a NumPy interpreter for testing), which is "
                  "not a performance path; no fused figure is claimed here."]
    lines += ["- `vs_sdpa` = SDPA time / op time in the same run and shape (> 1: faster "
              "than the dense yardstick), from the minimum times (the least disturbed run on a "
              "shared machine); medians are listed beside them.", "",
              "| shape [T,B,H,N,d] | op | mode | ms (min) | ms (median) | vs_sdpa |",
              "|---|---|---|---:|---:|---:|"]
    for r in result["rows"]:
        ms = "-" if r["ms"] is None else f"{r['ms']:.3f}"
        med = "-" if r["median_ms"] is None else f"{r['median_ms']:.3f}"
        lines.append(f"| {r['shape']} | {r['op']} | {r['mode']} | {ms} | {med} | "
                     f"{'-' if r['vs_sdpa'] is None else r['vs_sdpa']} {r['note']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--threads", type=int, default=None,
                            help="torch CPU threads (default 1 on CPU: steadier on a shared "
                             "machine; torch's own choice on CUDA)")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    warmup = args.warmup if args.warmup is not None else (10 if on_gpu else 2)
    reps = args.reps if args.reps is not None else (50 if on_gpu else 7)
    if args.threads is not None or not on_gpu:
        torch.set_num_threads(args.threads or 1)
    env = environment(device)
    result = run(device, warmup, reps)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"attention_{device.type}"
    stem.with_suffix(".json").write_text(json.dumps(dict(env=env, warmup=warmup, reps=reps,
                                                         **result), indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(env, result))
    print(f"wrote {stem}.json and {stem}.md")


if __name__ == "__main__":
    main()
