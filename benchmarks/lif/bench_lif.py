"""Benchmark: multi-step LIF forward and forward+backward, stc vs peers, in one process.

Compares, for T in {4, 8, 16} on the same input [T, B, C]:
  - stc triton   : the fused Triton kernels (CUDA; on CPU only when TRITON_INTERPRET=1, and then
                   labelled as interpreted: the interpreter is a correctness path, not a fast one)
  - stc torch    : the pure-PyTorch reference loop (``lif_reference``)
  - torch.compile: ``torch.compile(lif_reference)`` (failures are caught and reported)
  - spikingjelly : SpikingJelly 2.0 ``LIFNode(step_mode="m")`` (its own device dispatch)
  - snntorch     : snnTorch ``Leaky`` looped over T (beta = 1 - 1/tau, input scaled by 1/tau,
                   reset to zero without delay: the same dynamics as LIF with decay_input)

Reported: minimum (and median) milliseconds and achieved GB/s of the minimal traffic, next to
the device's measured copy bandwidth (a ``clone`` of a large tensor: read + write bytes / time).
Minimal traffic (b = bytes per element of x): forward reads X and writes S, plus V[T-1] in fp32:
2*T*N*b + 4*N; forward+backward adds reading X again (state recomputation), reading dL/dS and
writing dL/dX: 5*T*N*b + 4*N.

Run: ``.venv/bin/python benchmarks/lif/bench_lif.py`` (writes benchmarks/results/lif_<device>.json
and .md). Options: ``--quick`` (fewer repetitions), ``--dtype float16``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_ms(fn, device: torch.device, reps: int, warmup: int = 2) -> tuple[float, float]:
    """(median, min) wall time of ``fn()`` in ms (device synchronised around each call)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def copy_bandwidth_gbs(device: torch.device, nbytes: int, reps: int) -> float:
    """Measured device copy bandwidth: (read + write bytes) / median time of ``clone``."""
    buf = torch.empty(nbytes // 4, dtype=torch.float32, device=device).fill_(1.0)
    ms = time_ms(lambda: buf.clone(), device, reps)[1]
    return 2 * buf.numel() * 4 / (ms * 1e-3) / 1e9


def _methods(device: torch.device, tau: float):
    """name -> (callable x -> spikes, or None, note)."""
    from stc.kernels._backend import triton_available, triton_interpreted
    from stc.kernels.lif import lif_multistep, lif_reference

    out = {}
    if triton_available() and (device.type == "cuda" or triton_interpreted()):
        note = "interpreted (TRITON_INTERPRET=1), not a performance path" if (
            device.type != "cuda") else "compiled"
        from stc.kernels.lif.triton_lif import lif_triton

        out["stc triton"] = (
            lambda x: lif_triton(x, tau, 1.0, 0.0, True, True, "sigmoid", 4.0, None, None)[0],
            note + "; launcher called directly (no argument validation, like the other rows)")
    else:
        out["stc triton"] = (None, "skipped on CPU: Triton only runs here under the interpreter, "
                                   "which is a correctness path, not a performance path")
    out["stc torch"] = (lambda x: lif_reference(x, tau)[0],
                        "pure-PyTorch reference loop (lif_reference, no argument validation)")
    out["stc lif_multistep(torch)"] = (
        lambda x: lif_multistep(x, tau=tau, backend="torch")[0],
        "public op: validation (incl. a NaN/inf scan of x) + reference loop")
    try:
        compiled = torch.compile(lif_reference)
        out["torch.compile(reference)"] = (lambda x: compiled(x, tau)[0], "inductor")
    except Exception as exc:  # pragma: no cover - depends on the toolchain
        out["torch.compile(reference)"] = (None, f"failed: {type(exc).__name__}: {exc}")
    try:
        from spikingjelly.activation_based import neuron, surrogate

        sj = neuron.LIFNode(tau=float(tau), detach_reset=True, step_mode="m",
                            surrogate_function=surrogate.Sigmoid(alpha=4.0))

        def run_sj(x):
            sj.reset()
            return sj(x)

        out["spikingjelly LIFNode"] = (run_sj, "SpikingJelly 2.0, step_mode='m', its own "
                                               f"dispatch for {device.type}")
    except Exception as exc:  # pragma: no cover
        out["spikingjelly LIFNode"] = (None, f"failed: {type(exc).__name__}: {exc}")
    try:
        import snntorch

        leaky = snntorch.Leaky(beta=1.0 - 1.0 / tau, threshold=1.0, reset_mechanism="zero",
                               reset_delay=False)

        def run_snn(x):
            mem = torch.zeros_like(x[0])
            spikes = []
            for t in range(x.shape[0]):
                s, mem = leaky(x[t] / tau, mem)
                spikes.append(s)
            return torch.stack(spikes)

        out["snntorch Leaky loop"] = (run_snn, "Leaky looped over T in Python")
    except Exception as exc:  # pragma: no cover
        out["snntorch Leaky loop"] = (None, f"failed: {type(exc).__name__}: {exc}")
    return out


def _timed(call, device: torch.device) -> float:
    t0 = time.perf_counter()
    call()
    _sync(device)
    return (time.perf_counter() - t0) * 1e3


def bench(device: torch.device, dtype: torch.dtype, shape: tuple[int, int], ts, reps: int,
          compile_ts=None):
    """Return result rows (dicts) for every method, T and mode.

    Methods are timed round-robin (one call of each per repetition) so that every method sees
    the same background load; ``compile_ts`` limits torch.compile to those T values (each T and
    mode is a new compilation, minutes on a loaded 2-core CPU).
    """
    tau = 2.0
    rows = []
    b = torch.finfo(dtype).bits // 8
    n = shape[0] * shape[1]
    methods = _methods(device, tau)
    for T in ts:
        gen = torch.Generator(device="cpu").manual_seed(T)
        x0 = (torch.randn((T, *shape), generator=gen) * 1.5 + 0.8).to(device, dtype)
        grad = torch.randn((T, *shape), generator=gen).to(device, dtype)
        traffic = {"forward": 2 * T * n * b + 4 * n, "forward+backward": 5 * T * n * b + 4 * n}
        for mode in ("forward", "forward+backward"):
            calls, mode_rows = {}, {}
            for name, (fn, note) in methods.items():
                row = {"method": name, "T": T, "mode": mode, "note": note, "ms": None,
                       "ms_median": None, "GB/s": None, "min_bytes": traffic[mode]}
                mode_rows[name] = row
                if fn is None:
                    continue
                if name.startswith("torch.compile") and compile_ts is not None and (
                        T not in compile_ts):
                    row["note"] = f"not run for T={T} (compile time; --compile-ts to add)"
                    continue
                if mode == "forward":
                    def call(fn=fn, x0=x0):
                        with torch.no_grad():
                            fn(x0)
                else:
                    x = x0.clone().requires_grad_()

                    def call(fn=fn, x=x, grad=grad):
                        x.grad = None
                        fn(x).backward(grad)
                try:
                    for _ in range(2):  # warm-up (and compilation)
                        _timed(call, device)
                    calls[name] = (call, [])
                except Exception as exc:  # reported, not hidden
                    row["note"] = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
            for _ in range(reps):
                for call, times in calls.values():
                    times.append(_timed(call, device))
            for name, row in mode_rows.items():
                if name in calls:
                    times = calls[name][1]
                    ms = min(times)
                    row["ms"], row["ms_median"] = round(ms, 4), round(statistics.median(times), 4)
                    row["GB/s"] = round(traffic[mode] / (ms * 1e-3) / 1e9, 3)
                rows.append(row)
                print(f"T={T:2d} {mode:16s} {name:26s} "
                      f"{row['ms'] if row['ms'] is not None else '-':>10} ms  {row['note']}",
                      flush=True)
    return rows


def _versions() -> dict:
    vers = {"python": platform.python_version(), "torch": torch.__version__}
    for mod in ("triton", "spikingjelly", "snntorch"):
        try:
            m = __import__(mod)
            vers[mod] = getattr(m, "__version__", "unknown")
        except Exception as exc:  # pragma: no cover
            vers[mod] = f"not importable: {type(exc).__name__}"
    if vers.get("spikingjelly") == "unknown":
        from importlib.metadata import version

        vers["spikingjelly"] = version("spikingjelly")
    return vers


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {torch.get_num_threads()} torch threads"


def write_results(payload: dict, stem: str) -> tuple[Path, Path]:
    """Write ``payload`` as JSON and a Markdown table under benchmarks/results/."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    jpath, mpath = RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"
    jpath.write_text(json.dumps(payload, indent=2) + "\n")
    label = "CPU figures" if payload["device_type"] == "cpu" else "GPU figures"
    lines = [
        f"# Multi-step LIF benchmark ({label})", "",
        f"- device: {payload['device']}",
        f"- dtype: {payload['dtype']}, input [T, {payload['shape'][0]}, {payload['shape'][1]}]",
        f"- measured copy bandwidth (clone): {payload['copy_GBps']:.2f} GB/s",
        f"- versions: {', '.join(f'{k} {v}' for k, v in payload['versions'].items())}",
        f"- command: `{payload['command']}`",
        f"- timestamp: {payload['timestamp']}",
        f"- load average at start (1, 5, 15 min): {payload['loadavg']}"
        + (" (a shared 2-core CPU: figures are indicative only)" if label == "CPU figures"
           else ""),
        "- GB/s = minimal traffic / time (forward 2*T*N*b + 4N bytes; forward+backward "
        "5*T*N*b + 4N); ms = minimum over repetitions (median alongside): the CPU is shared, "
        "so the minimum is the least contended figure.", "",
        "| T | mode | method | ms (min) | ms (median) | GB/s | % of copy BW | vs stc torch "
        "| note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = {(r["T"], r["mode"]): r["ms"] for r in payload["rows"] if r["method"] == "stc torch"}
    for r in payload["rows"]:
        ms, gbs = r["ms"], r["GB/s"]
        ref = base.get((r["T"], r["mode"]))
        speed = f"{ref / ms:.2f}x" if ms and ref else "-"
        pct = f"{100 * gbs / payload['copy_GBps']:.1f}%" if gbs else "-"
        lines.append(f"| {r['T']} | {r['mode']} | {r['method']} | {ms if ms else '-'} | "
                     f"{r['ms_median'] if r['ms_median'] else '-'} | "
                     f"{gbs if gbs else '-'} | {pct} | {speed} | {r['note']} |")
    mpath.write_text("\n".join(lines) + "\n")
    return jpath, mpath


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dtype", default=None, choices=["float32", "float16", "bfloat16"])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--ts", default="4,8,16", help="comma-separated T values")
    p.add_argument("--compile-ts", default=None,
                   help="T values for torch.compile (default: all on CUDA, 4 on CPU)")
    args = p.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    # GPU: SpikingJelly's published table size (N=64, C=65,536); CPU: a small slice of it
    shape = (64, 65536) if device.type == "cuda" else (8, 4096)
    dtype = getattr(torch, args.dtype or ("float16" if device.type == "cuda" else "float32"))
    reps = (10 if args.quick else 30) if device.type == "cuda" else (5 if args.quick else 11)
    ts = [int(t) for t in args.ts.split(",")]
    loadavg = [round(v, 2) for v in os.getloadavg()]
    copy = copy_bandwidth_gbs(device, 256 << 20 if device.type == "cuda" else 32 << 20, reps)
    print(f"device: {_device_name(device)}; copy bandwidth {copy:.2f} GB/s", flush=True)
    if args.compile_ts is not None:
        compile_ts = [int(t) for t in args.compile_ts.split(",")]
    else:
        compile_ts = None if device.type == "cuda" else [4]
    rows = bench(device, dtype, shape, ts, reps, compile_ts)
    payload = {
        "benchmark": "lif_multistep", "device": _device_name(device),
        "device_type": device.type, "loadavg": loadavg, "dtype": str(dtype).replace("torch.", ""),
        "shape": list(shape), "copy_GBps": round(copy, 2), "versions": _versions(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "rows": rows,
    }
    stem = f"lif_{device.type}" + ("" if args.dtype is None else f"_{args.dtype}")
    jpath, mpath = write_results(payload, stem)
    print(f"wrote {jpath.relative_to(ROOT)} and {mpath.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
