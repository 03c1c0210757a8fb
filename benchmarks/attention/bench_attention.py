"""Spike-attention speed: fused Triton SSA / SDSA / DSFormer vs their PyTorch formulations
and torch's scaled_dot_product_attention (dense yardstick), in one process.

    python benchmarks/attention/bench_attention.py              # CUDA if present
    python benchmarks/attention/bench_attention.py --device cpu
    python benchmarks/attention/bench_attention.py --toy        # tiny sizes, 1 repetition

Every case maps the three token tensors q, k, v [T, B, N, D] (spikes, D = H * d) to the
token output [T, B, N, D], as the attention modules do:

- ``fused-triton``: the op on per-head views of the token tensors (``split_heads``: no copy;
  the kernel writes the token layout, ``merge_heads`` is free), ``max_value=1`` declared
  (binary spikes: exact fp16/bf16 tensor-core dots, no device read);
- ``official-torch``: the official code's formulation (reshape + permute + contiguous head
  split, the op's pure-PyTorch reference, transpose + reshape merge);
- ``sdpa``: F.scaled_dot_product_attention on the same heads (a dense softmax yardstick, not
  the same function).

Each fused row also records whether its output equals the official-torch output bit for bit
(``exact``). GPU timing: CUDA events, median and minimum of repeats. On CPU the fused kernels
run only under TRITON_INTERPRET=1, a NumPy interpreter (a correctness path, not a speed
path): they are included in --toy mode only, labelled as such.

Programmatic entry point (used by ``make gpu-check``): ``run(device, sizes, dtype, ...)``
returns a dict with ``env`` and ``rows``; ``TOY_SIZES`` and ``SPIKFORMER_SIZES`` are ready
size lists. ``main`` writes benchmarks/results/attention_<device>.{json,md} atomically.
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
from stc.kernels._backend import triton_interpreted
from stc.kernels.attention import (
    dsformer,
    dsformer_reference,
    sdsa,
    sdsa_reference,
    ssa,
    ssa_reference,
)

from stc.nn.attention import merge_heads, split_heads

RESULTS = Path(__file__).resolve().parents[1] / "results"

# [T, B, H, N, d]. Spikformer-8-384 at 224x224: N = 196 tokens, H = 12 heads of d = 32
# (SDT-8-384: H = 8, d = 48); then longer sequences.
SPIKFORMER_SIZES = [(4, 1, 12, 196, 32), (4, 32, 12, 196, 32), (4, 128, 12, 196, 32),
                    (4, 32, 8, 196, 48), (4, 8, 8, 784, 64)]
CPU_SIZES = [(4, 2, 4, 64, 32), (4, 1, 4, 256, 32)]
TOY_SIZES = [(2, 1, 2, 20, 16)]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def token_spikes(shape, device, dtype, rate=0.2, seed=0):
    """Token tensor [T, B, N, H * d] of Bernoulli(rate) spikes for a [T, B, H, N, d] size."""
    T, B, H, N, d = shape
    g = torch.Generator(device="cpu").manual_seed(seed)
    return (torch.rand((T, B, N, H * d), generator=g) < rate).to(device=device, dtype=dtype)


def official_split(x, H):
    """The official code's head split: reshape, permute, contiguous (a copy)."""
    T, B, N, D = x.shape
    return x.reshape(T, B, N, H, D // H).permute(0, 1, 3, 2, 4).contiguous()


def official_merge(o):
    T, B, H, N, d = o.shape
    return o.transpose(2, 3).reshape(T, B, N, H * d).contiguous()


def make_cases(H: int, backends: list[str]):
    """(name, fn(q, k, v tokens) -> tokens) for every formulation measured."""
    ops = [
        ("ssa", lambda q, k, v, b: ssa(q, k, v, backend=b, max_value=1), ssa_reference),
        ("sdsa", lambda q, k, v, b: sdsa(q, k, v, backend=b), sdsa_reference),
        ("dsformer w1 r1.0", lambda q, k, v, b: dsformer(q, k, v, 1, 1.0, backend=b,
                                                          max_value=1),
         lambda q, k, v: dsformer_reference(q, k, v, 1, 1.0)),
        ("dsformer w2 r0.25", lambda q, k, v, b: dsformer(q, k, v, 2, 0.25, backend=b,
                                                           max_value=1),
         lambda q, k, v: dsformer_reference(q, k, v, 2, 0.25)),
    ]
    cases = []
    for name, op, ref in ops:
        cases.append((f"{name} official-torch", None,
                      lambda q, k, v, ref=ref: official_merge(
                          ref(official_split(q, H), official_split(k, H), official_split(v, H)))))
        if "triton" in backends:
            cases.append((f"{name} fused-triton", f"{name} official-torch",
                          lambda q, k, v, op=op: merge_heads(
                              op(split_heads(q, H), split_heads(k, H), split_heads(v, H),
                                 "triton"))))
    cases.append(("sdpa dense yardstick", None, lambda q, k, v: official_merge(
        _sdpa(official_split(q, H), official_split(k, H), official_split(v, H)))))
    return cases


def _sdpa(q, k, v):
    T, B, H, N, d = q.shape
    o = F.scaled_dot_product_attention(q.reshape(T * B, H, N, d), k.reshape(T * B, H, N, d),
                                       v.reshape(T * B, H, N, d))
    return o.reshape(T, B, H, N, d)


def timed(fn, device, warmup, reps):
    """(min, median) time of ``fn()`` in milliseconds over ``reps`` calls."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times = []
    for _ in range(reps):
        if device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return min(times), statistics.median(times)


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
                triton_interpreted=triton_interpreted(),
                load_average_1min_at_start=round(os.getloadavg()[0], 2),
                command=" ".join([Path(sys.executable).name] + sys.argv),
                date_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def run(device: torch.device | str, sizes=None, dtype="fp16", warmup: int | None = None,
        reps: int | None = None, backward: bool = True, toy: bool = False) -> dict:
    """Time every case on ``device`` for each size [T, B, H, N, d] in ``sizes``.

    Args:
        device: "cuda" / "cpu" or a torch.device.
        sizes: list of (T, B, H, N, d); default SPIKFORMER_SIZES on CUDA, CPU_SIZES on CPU,
            TOY_SIZES with toy=True.
        dtype: "fp32" | "fp16" | "bf16" or a torch float dtype (spikes are exact in each).
        warmup, reps: per case (defaults: CUDA 10 / 50, CPU 2 / 7, toy 0 / 1).
        backward: also time forward+backward.
        toy: tiny default sizes and one repetition; on CPU the fused kernels then run under
            the interpreter (when TRITON_INTERPRET=1) to check the whole path end to end.

    Returns:
        {"env": environment, "dtype": str, "rows": [{shape, op, mode, ms, median_ms,
        vs_sdpa, vs_official, exact, note}]}; vs_* = baseline time / this time (> 1: faster),
        from minimum times in this run.

    Raises:
        ValueError: unknown dtype name or a size that is not 5 positive ints.
    """
    device = torch.device(device)
    on_gpu = device.type == "cuda"
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
        dtype = DTYPES[dtype]
    sizes = sizes or (TOY_SIZES if toy else SPIKFORMER_SIZES if on_gpu else CPU_SIZES)
    for s in sizes:
        if len(s) != 5 or not all(isinstance(v, int) and v > 0 for v in s):
            raise ValueError(f"each size must be 5 positive ints [T, B, H, N, d], got {s}")
    warmup = warmup if warmup is not None else (0 if toy else 10 if on_gpu else 2)
    reps = reps if reps is not None else (1 if toy else 50 if on_gpu else 7)
    backends = ["torch"]
    if on_gpu or (toy and triton_interpreted()):
        backends.append("triton")
    rows = []
    for shape in sizes:
        H = shape[2]
        base = [token_spikes(shape, device, dtype, seed=i) for i in range(3)]
        outputs = {}
        for name, baseline, fn in make_cases(H, backends):
            with torch.no_grad():
                try:
                    outputs[name] = fn(*base)
                except RuntimeError as exc:  # e.g. an op without a kernel for this dtype
                    outputs[name] = exc
            for mode in ("forward", "forward+backward") if backward else ("forward",):
                note = ""
                if isinstance(outputs[name], Exception):
                    ms = med = None
                    note = f"failed: {str(outputs[name]).splitlines()[0][:120]}"
                else:
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
                        ms = med = None
                        note = f"failed: {str(exc).splitlines()[0][:120]}"
                exact = None
                if baseline and not isinstance(outputs[name], Exception):
                    exact = bool(torch.equal(outputs[name], outputs[baseline]))
                if "fused" in name and not on_gpu:
                    note = (note + " interpreted (TRITON_INTERPRET=1): not a speed figure").strip()
                rows.append(dict(shape=list(shape), op=name, mode=mode, baseline=baseline,
                                 ms=ms, median_ms=med, exact=exact, note=note))
                print(f"{str(shape):24s} {name:32s} {mode:17s} "
                      f"{'-' if ms is None else f'{ms:9.3f} ms (median {med:.3f})'} "
                      f"{'' if exact is None else 'exact' if exact else 'NOT EXACT'} {note}",
                      flush=True)
    for row in rows:
        same = [r for r in rows if r["shape"] == row["shape"] and r["mode"] == row["mode"]]
        for key, ref_name in (("vs_sdpa", "sdpa dense yardstick"),
                              ("vs_official", row["baseline"])):
            ref = next((r for r in same if r["op"] == ref_name), None)
            row[key] = (None if ref is None or row["ms"] is None or ref["ms"] is None
                        else round(ref["ms"] / row["ms"], 3))
    return dict(env=environment(device), dtype=str(dtype).replace("torch.", ""),
                warmup=warmup, reps=reps, rows=rows)


def markdown(result: dict) -> str:
    env = result["env"]
    lines = [f"# Spike attention speed ({env['device_type'].upper()} figures)", ""]
    lines += [f"- device: {env['device']}", f"- torch {env['torch']}, triton {env['triton']}, "
              f"Python {env['python']}, {env['torch_threads']} torch threads",
              f"- machine load average (1 min) at start: {env['load_average_1min_at_start']} "
              "(other jobs share the cores: figures are noisy)",
              f"- dtype: {result['dtype']} spikes (rate 0.2); warmup {result['warmup']}, "
              f"repetitions {result['reps']}", f"- command: `{env['command']}`",
              f"- date: {env['date_utc']}",
              "- every case: q, k, v token tensors [T, B, N, D] -> token output; fused = the "
              "Triton op on per-head views (no copies), official = the official code's "
              "split/op/merge in PyTorch, sdpa = dense softmax attention on the same heads."]
    if env["device_type"] != "cuda":
        lines += ["- CPU run: fused Triton rows (if any) ran under TRITON_INTERPRET=1, a NumPy "
                  "interpreter for testing: correctness only, no speed claimed."]
    lines += ["- `vs_official` / `vs_sdpa` = baseline time / op time in the same run and shape "
              "(> 1: faster), from minimum times; `exact` = output equal bit for bit to the "
              "official formulation.", "",
              "| shape [T,B,H,N,d] | op | mode | ms (min) | ms (median) | vs_official | "
              "vs_sdpa | exact | note |", "|---|---|---|---:|---:|---:|---:|---|---|"]
    for r in result["rows"]:
        def f(x, fmt="{:.3f}"):
            return "-" if x is None else fmt.format(x)
        lines.append(f"| {r['shape']} | {r['op']} | {r['mode']} | {f(r['ms'])} | "
                     f"{f(r['median_ms'])} | {f(r['vs_official'], '{}')} | "
                     f"{f(r['vs_sdpa'], '{}')} | {f(r['exact'], '{}')} | {r['note']} |")
    return "\n".join(lines) + "\n"


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", choices=["auto", "gpu", "cuda", "cpu"])
    parser.add_argument("--dtype", default=None, choices=sorted(DTYPES),
                        help="spike dtype (default fp16 on CUDA, fp32 on CPU)")
    parser.add_argument("--toy", action="store_true", help="tiny sizes, one repetition")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--reps", type=int, default=None)
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="output stem (default benchmarks/results/attention_<device>)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default 1 on CPU: steadier on a shared "
                             "machine; torch's own choice on CUDA)")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device("cuda" if args.device == "gpu" else args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device gpu but no CUDA device is available", file=sys.stderr)
        return 2
    on_gpu = device.type == "cuda"
    if args.threads is not None or not on_gpu:
        torch.set_num_threads(args.threads or 1)
    result = run(device, dtype=args.dtype or ("fp16" if on_gpu else "fp32"),
                 warmup=args.warmup, reps=args.reps, toy=args.toy)
    stem = args.output or RESULTS / f"attention_{device.type}{'_toy' if args.toy else ''}"
    stem.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(stem.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    _atomic_write(stem.with_suffix(".md"), markdown(result))
    print(f"wrote {stem}.json and {stem}.md")
    bad = [r for r in result["rows"] if r["exact"] is False]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
