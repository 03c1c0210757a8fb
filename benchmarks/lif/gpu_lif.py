"""LIF forward and forward+backward at HBM scale against a device copy of the same bytes.

For each dtype and T: x [T, N] with T * N >= ``elements`` (default 2**28 = 268M, far beyond a
60 MB L2), two rotated input buffers (consecutive calls never hit a warm cache), timed with
``triton.testing.do_bench`` on CUDA. Methods, one process, same buffers:

- ``device copy``: ``dst.copy_(x)`` of the T * N elements (read + write: the bandwidth bound);
- ``stc triton fwd`` / ``fwd+bwd``: the fused kernels (``LIFTritonFn``, launcher level);
- ``torch.compile(reference)``: inductor on stc's reference loop (optional, compile time);
- ``spikingjelly <backend>``: SpikingJelly's ``LIFNode(step_mode="m")`` for each of its
  backends that loads ("triton", "cupy", "torch"), skipped with the reason when absent.

Reported per row: min/median ms, GB/s of the minimal traffic (forward 2 T N b + 4 N bytes,
forward+backward 5 T N b + 4 N), that as a share of the copy's GB/s, and the ratio against
SpikingJelly's fastest backend for the same T and mode; the stc spikes are compared with the
reference (``flip_rate``; 0 expected except at fp32 ties under GPU fma contraction).

``run(device, dtypes, ts, elements, toy)`` returns a dict (used by ``make gpu-check``);
``toy=True`` uses 4096 neurons and one repetition so the whole path runs on CPU (stc rows need
TRITON_INTERPRET=1 there and are labelled interpreted: no speed claimed).
"""

from __future__ import annotations

import statistics
import time

import torch

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _bench(fn, device, reps):
    """(min, median) ms: triton.testing.do_bench on CUDA, a perf_counter loop elsewhere."""
    if device.type == "cuda":
        import triton.testing

        times = triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="all")
        return min(times), statistics.median(times)
    fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return min(times), statistics.median(times)


def _sj_methods(tau, device):
    out = {}
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except Exception as exc:
        return {"spikingjelly": (None, f"not installed: {type(exc).__name__}")}
    kw = dict(tau=tau, detach_reset=True, step_mode="m",
              surrogate_function=surrogate.Sigmoid(alpha=4.0))
    try:
        neuron.LIFNode(backend="torch", **kw)
        backends = ("triton", "cupy", "torch")
    except TypeError:  # SpikingJelly 2.0.0: no backend argument, it dispatches itself
        backends = (None,)
    for backend in backends:
        name = f"spikingjelly {backend or 'own dispatch'}"
        try:
            extra = {} if backend is None else {"backend": backend}
            node = neuron.LIFNode(**kw, **extra).to(device)

            def run(x, node=node):
                node.reset()
                return node(x)
            run(torch.zeros((2, 8), device=device))
            out[name] = (run, "")
        except Exception as exc:
            out[name] = (None, f"unavailable: {str(exc)[:100]}")
    return out


def _alternating(bufs):
    """A callable returning bufs[1], bufs[0], bufs[1], ... (rotated inputs)."""
    state = {"i": 0}

    def nxt():
        state["i"] = (state["i"] + 1) % len(bufs)
        return bufs[state["i"]]
    return nxt


def _fwd_bwd(fn, leaves, grad):
    """A callable running fn(leaf).backward(grad) on alternating leaves."""
    nxt = _alternating(leaves)

    def call():
        out = fn(nxt())
        torch.autograd.backward(out[0] if isinstance(out, tuple) else out, grad)
    return call


def _cases(T, n, dtype, device, tau, run_stc, on_gpu, compile_reference):
    """Buffers and {name: (mode, callable | None, note)} for one dtype and T."""
    from stc.kernels.lif import lif_reference
    from stc.kernels.lif.triton_lif import LIFTritonFn

    gen = torch.Generator().manual_seed(T)
    xs = [(torch.randn((T, n), generator=gen) * 1.5 + 0.8).to(device, dtype) for _ in range(2)]
    grad = torch.randn((T, n), generator=gen).to(device, dtype)
    dst = torch.empty_like(xs[0])
    next_x = _alternating(xs)
    methods = {"device copy": ("forward", lambda: dst.copy_(next_x()), "")}
    args = (tau, 1.0, 0.0, True, False, True, True, 0, 4.0, dtype)

    def stc(x):
        return LIFTritonFn.apply(x, None, *args)
    if run_stc:
        note = "" if on_gpu else "interpreted (TRITON_INTERPRET=1): not a speed figure"
        methods["stc triton fwd"] = ("forward", lambda: stc(next_x()), note)
        leaves = [x.clone().requires_grad_() for x in xs]
        methods["stc triton fwd+bwd"] = ("forward+backward", _fwd_bwd(stc, leaves, grad), note)
    if compile_reference:
        try:
            comp = torch.compile(lif_reference)
            methods["torch.compile(reference) fwd"] = (
                "forward", lambda: comp(next_x(), tau), "inductor")
        except Exception as exc:  # pragma: no cover - toolchain dependent
            methods["torch.compile(reference) fwd"] = ("forward", None, str(exc)[:100])
    for name, (fn, note) in _sj_methods(tau, device).items():
        if fn is None:
            methods[name] = ("forward", None, note)
            continue
        methods[f"{name} fwd"] = ("forward", _apply_next(fn, next_x), note)
        leaves = [x.clone().requires_grad_() for x in xs]
        methods[f"{name} fwd+bwd"] = ("forward+backward", _fwd_bwd(fn, leaves, grad), note)
    flip = None
    if run_stc:
        with torch.no_grad():
            flip = float((stc(xs[0])[0] != lif_reference(xs[0], tau)[0]).float().mean())
    return methods, flip


def _apply_next(fn, next_x):
    return lambda: fn(next_x())


def run(device="cuda", dtypes=("fp32", "fp16"), ts=(4, 8, 16, 32), elements=1 << 28,
        toy=False, compile_reference=None, reps=5) -> dict:
    """Measure every method for each dtype and T; returns {"rows": [...], ...}.

    Args:
        device: "cuda" or "cpu". dtypes: names in DTYPES. ts: timesteps.
        elements: T * N per input (>= 2**28 on the H200: 4x its L2 at fp16, and two rotated
            inputs). toy: N = 4096 and one repetition (CPU dry run).
        compile_reference: time torch.compile of the reference (default: not in toy mode).
        reps: repetitions off CUDA (CUDA uses do_bench's own).

    Raises:
        ValueError: unknown dtype name.
    """
    from stc.kernels._backend import triton_interpreted

    device = torch.device(device)
    on_gpu = device.type == "cuda"
    compile_reference = (not toy) if compile_reference is None else compile_reference
    run_stc = on_gpu or triton_interpreted()
    rows = []
    for dname in dtypes:
        if dname not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {dname!r}")
        dtype = DTYPES[dname]
        b = torch.finfo(dtype).bits // 8
        for T in ts:
            n = 4096 if toy else -(-elements // T)
            methods, flip = _cases(T, n, dtype, device, 2.0, run_stc, on_gpu, compile_reference)
            traffic = {"forward": 2 * T * n * b + 4 * n, "forward+backward": 5 * T * n * b + 4 * n}
            for name, (mode, fn, note) in methods.items():
                row = dict(dtype=dname, T=T, N=n, method=name, mode=mode, ms=None,
                           median_ms=None, note=note)
                if fn is not None:
                    try:
                        row["ms"], row["median_ms"] = _bench(fn, device, 1 if toy else reps)
                    except Exception as exc:  # reported, not hidden
                        row["note"] = f"failed: {type(exc).__name__}: {str(exc)[:150]}"
                nbytes = 2 * T * n * b if name == "device copy" else traffic[mode]
                row["GBps"] = None if row["ms"] is None else nbytes / (row["ms"] * 1e-3) / 1e9
                if name.startswith("stc"):
                    row["flip_rate"] = flip
                rows.append(row)
    for r in rows:
        same = [q for q in rows if q["dtype"] == r["dtype"] and q["T"] == r["T"]]
        copy = next(q for q in same if q["method"] == "device copy")
        r["pct_of_copy_bw"] = (None if r["GBps"] is None or copy["GBps"] is None
                               else round(100 * r["GBps"] / copy["GBps"], 1))
        sj = [q["ms"] for q in same if q["method"].startswith("spikingjelly")
              and q["mode"] == r["mode"] and q["ms"] is not None]
        r["vs_spikingjelly_best"] = (None if not sj or r["ms"] is None
                                     or r["method"] == "device copy"
                                     else round(min(sj) / r["ms"], 3))
    return {"device": str(device), "elements": elements, "toy": toy, "rows": rows}


def markdown(result: dict) -> str:
    lines = ["| dtype | T | N | method | mode | ms (min) | ms (median) | GB/s | % copy BW "
             "| vs SpikingJelly best | flip rate | note |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]

    def f(x, fmt="{:.4f}"):
        return "-" if x is None else fmt.format(x)
    for r in result["rows"]:
        lines.append(f"| {r['dtype']} | {r['T']} | {r['N']} | {r['method']} | {r['mode']} | "
                     f"{f(r['ms'])} | {f(r['median_ms'])} | {f(r['GBps'], '{:.1f}')} | "
                     f"{f(r['pct_of_copy_bw'], '{}')} | {f(r['vs_spikingjelly_best'], '{}')} | "
                     f"{f(r.get('flip_rate'), '{:.2e}')} | {r['note']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # toy smoke run: python benchmarks/lif/gpu_lif.py
    res = run("cuda" if torch.cuda.is_available() else "cpu", ts=(4,),
              toy=not torch.cuda.is_available())
    print(markdown(res))
