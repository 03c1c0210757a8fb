"""The prepared GPU check (issue 11): one command, under 8 minutes of wall time on an H200.

    make gpu-check                 # on the GPU machine (installs .whl/ first, see Makefile)
    make gpu-check DRY_RUN=1       # every step at toy size on CPU (CI proves the script)
    python benchmarks/gpu_check/run.py [--dry-run] [--out DIR] [--budget-s 450]

Steps (each one recorded as ok / failed / skipped with its reason; a failing step never stops
the others, and a step that would overrun the wall-time budget is skipped and says so):

1. ``pytest -m gpu`` (the GPU-marked tests, e.g. CUDA graphs that must really capture).
2. LIF forward and forward+backward, T = 4, 8, 16, 32, fp32 and fp16, T*N = 2**28 elements,
   rotated input buffers, ``triton.testing.do_bench``: stc's Triton op, the PyTorch reference
   loop, ``torch.compile`` of the reference (T = 8, fp16: compile time), SpikingJelly's
   ``LIFNode`` (its own CUDA dispatch: triton where its native build is absent), against a
   device copy of the same bytes (``copy_`` of the input: read + write), reported as GB/s of
   the minimal traffic and as a fraction of the copy's.
3. SSA / SDSA / DSFormer at Spikformer-8-384 sizes (T=4, B=32, H=12, N=196, d=32, fp16
   spikes): fused Triton vs the PyTorch formulation (backend="torch") vs SDPA.
4. Spikformer-8-384, 224 x 224, batch 1 / 32 / 128, fp32 and bf16 (stc.precision): the stc
   model (Triton kernels) and the stc runtime (CUDA graphs for batch 1 and 32) against the
   PyTorch + SpikingJelly formulation on the same weights (stc.bench.baseline), predictions
   compared sample by sample.
5. Fixed-point throughput per sample: the runtime's fixed numerics on GPU and CPU, and
   lava-sim (absent on the H200 image: skipped with the reason).
6. NVML energy per inference (stc.energy.gpu) of Spikformer-8-384 at batch 32, stc and the
   baseline, fp32 and bf16.

Writes gpu_check_<device>.json and .md (device name, versions, command, every figure) into
``--out`` (default $OUT if set, else benchmarks/results/). The dry run uses toy sizes, a
perf_counter timer instead of do_bench (which needs CUDA), ``torch.compile(backend="eager")``
and a synthetic energy counter, each labelled in the results.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def log(msg: str) -> None:
    print(f"[gpu-check {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Check:
    """Shared state of one check run: sizes, device, timer, budget and the results."""

    def __init__(self, dry: bool, budget_s: float) -> None:
        import torch

        self.torch = torch
        self.dry = dry
        self.t0 = time.perf_counter()
        self.budget_s = budget_s
        self.cuda = torch.cuda.is_available() and not dry
        self.device = torch.device("cuda" if self.cuda else "cpu")
        self.steps: dict[str, dict] = {}

    def left(self) -> float:
        return self.budget_s - (time.perf_counter() - self.t0)

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def bench_ms(self, fn, *, rep_ms: int = 60) -> float:
        """Median milliseconds of fn(): triton.testing.do_bench on CUDA, else perf_counter."""
        if self.cuda:
            import triton.testing

            return float(triton.testing.do_bench(fn, warmup=max(5, rep_ms // 4), rep=rep_ms,
                                                 return_mode="median"))
        fn()
        times = []
        for _ in range(3):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        return statistics.median(times)

    def step(self, name: str, fn, *, need_s: float) -> None:
        """Run one step; record ok / failed / skipped (over budget) with timings."""
        if self.left() < need_s:
            self.steps[name] = {"status": "skipped", "reason": f"wall-time budget: "
                                f"{self.left():.0f} s left, step needs about {need_s:.0f} s"}
            log(f"{name}: skipped (budget)")
            return
        log(f"{name}: start ({self.left():.0f} s left)")
        t = time.perf_counter()
        try:
            res = fn()
            entry = {"status": "ok", **(res or {})}
        except Exception as e:  # noqa: BLE001 - recorded, the next step still runs
            entry = {"status": "failed", "error": f"{type(e).__name__}: {str(e)[:400]}",
                     "traceback": traceback.format_exc()[-1500:]}
            log(f"{name}: FAILED {type(e).__name__}: {str(e)[:200]}")
        entry["seconds"] = round(time.perf_counter() - t, 1)
        self.steps[name] = entry
        log(f"{name}: {entry['status']} in {entry['seconds']} s")
        if self.cuda:
            self.torch.cuda.empty_cache()


# -- 1. pytest -m gpu ------------------------------------------------------------------------

def step_pytest(c: Check) -> dict:
    paths = ["tests/runtime"] if c.dry else ["tests"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "-p", "no:cacheprovider",
           "--continue-on-collection-errors", *paths]
    timeout = 60 if c.dry else 130
    try:
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        raise RuntimeError(f"pytest -m gpu ran past {timeout} s; last output: "
                           f"{out[-800:]}") from None
    tail = (p.stdout + p.stderr).strip().splitlines()
    summary = tail[-1] if tail else ""
    failed = [ln for ln in tail if ln.startswith("FAILED")]
    errors = [ln for ln in tail if ln.startswith("ERROR")]   # e.g. a module that needs Lava
    if failed or p.returncode not in (0, 1, 5) or (p.returncode == 1 and not errors):
        raise RuntimeError(f"pytest -m gpu exit {p.returncode}: {summary}; "
                           + "; ".join((failed + errors)[:12]))
    return {"command": " ".join(cmd[1:]), "returncode": p.returncode, "summary": summary,
            "collection_errors": errors}


# -- 2. LIF -------------------------------------------------------------------------------------

def _rotating(make, count: int):
    """A list of ``count`` buffers and a callable that returns the next one (round robin)."""
    bufs = [make(i) for i in range(count)]
    state = {"i": 0}

    def nxt():
        state["i"] = (state["i"] + 1) % count
        return bufs[state["i"]]
    return bufs, nxt


def _sj_lif(c: Check):
    """SpikingJelly 2.0 LIFNode(step_mode='m') (its own dispatch) and the chosen backend."""
    from spikingjelly.activation_based import neuron, surrogate

    node = neuron.LIFNode(tau=2.0, detach_reset=True, step_mode="m",
                          surrogate_function=surrogate.Sigmoid(alpha=4.0))
    impl = "auto"
    try:  # which implementation its CUDA dispatch picked (private; for the record only)
        from spikingjelly._ops.lif import _selection

        impl = f"auto (env SJ_LIF_CUDA_IMPLEMENTATION={_selection._requested!r})"
    except Exception:  # noqa: BLE001
        pass

    def run(x):
        node.reset()
        return node(x)
    return run, impl


def step_lif(c: Check) -> dict:
    torch = c.torch
    from stc.kernels.lif import lif_multistep, lif_reference

    elems = 2 ** 16 if c.dry else 2 ** 28
    ts = (4, 8) if c.dry else (4, 8, 16, 32)
    dtypes = (torch.float32,) if c.dry else (torch.float32, torch.float16)
    l2 = 60 * 2 ** 20
    rows = []
    try:
        sj, sj_note = _sj_lif(c)
    except Exception as e:  # noqa: BLE001
        sj, sj_note = None, f"unavailable: {type(e).__name__}: {e}"
    compiled = {}
    for dtype in dtypes:
        b = torch.finfo(dtype).bits // 8
        for T in ts:
            N = elems // T
            nbuf = max(2, math.ceil(3 * l2 / (elems * b)))
            gen = torch.Generator(device="cpu").manual_seed(T)
            base = (torch.randn(T, N, generator=gen) * 1.5 + 0.8).to(c.device, dtype)
            xs, next_x = _rotating(lambda i, base=base: base.roll(i, 1).contiguous(), nbuf)
            grad = torch.randn(T, N, generator=gen).to(c.device, dtype)
            dst = torch.empty_like(base)
            copy_ms = c.bench_ms(lambda dst=dst, nx=next_x: dst.copy_(nx()))
            copy_gbs = 2 * elems * b / (copy_ms * 1e-3) / 1e9
            traffic = {"forward": 2 * elems * b + 4 * N,
                       "forward+backward": 5 * elems * b + 4 * N}
            methods = {
                "stc triton": lambda x: lif_multistep(x, tau=2.0, backend="triton")[0],
                "torch reference": lambda x: lif_reference(x, 2.0)[0],
            }
            if T == 8 and dtype == (torch.float32 if c.dry else torch.float16) \
                    and c.left() > 200 - (150 if c.dry else 0):
                if "fn" not in compiled:
                    compiled["fn"] = torch.compile(
                        lif_reference, **({"backend": "eager"} if c.dry else {}))
                methods["torch.compile(reference)"] = (
                    lambda x, f=compiled["fn"]: f(x, 2.0)[0])
            if sj is not None:
                methods["spikingjelly LIFNode"] = sj
            for mode in ("forward", "forward+backward"):
                for name, fn in methods.items():
                    row = {"T": T, "N": N, "dtype": str(dtype).replace("torch.", ""),
                           "mode": mode, "method": name, "ms": None}
                    try:
                        if mode == "forward":
                            def call(fn=fn, nx=next_x):
                                with torch.no_grad():
                                    fn(nx())
                        else:
                            leaves = [x.detach().clone().requires_grad_() for x in xs[:2]]
                            state = {"i": 0}

                            def call(fn=fn, leaves=leaves, grad=grad, state=state):
                                state["i"] ^= 1
                                x = leaves[state["i"]]
                                x.grad = None
                                fn(x).backward(grad)
                        ms = c.bench_ms(call)
                        row["ms"] = round(ms, 4)
                        row["GB/s"] = round(traffic[mode] / (ms * 1e-3) / 1e9, 1)
                        row["copy_GB/s"] = round(copy_gbs, 1)
                        row["of_copy"] = round(row["GB/s"] / copy_gbs, 3)
                    except Exception as e:  # noqa: BLE001
                        row["note"] = f"failed: {type(e).__name__}: {str(e)[:160]}"
                    rows.append(row)
                    log(f"  LIF T={T:2d} {row['dtype']} {mode:16s} {name:26s} "
                        f"{row['ms']} ms {row.get('of_copy', '')} of copy {row.get('note', '')}")
            del xs, grad, dst, base
    return {"rows": rows, "spikingjelly": sj_note,
            "elements": elems, "note": "do_bench median; minimal traffic: forward 2*T*N*b + "
            "4*N bytes, forward+backward 5*T*N*b + 4*N; copy = dst.copy_(x) of the same "
            "input bytes (read + write)"}


# -- 3. attention -------------------------------------------------------------------------------

def step_attention(c: Check) -> dict:
    torch = c.torch
    import torch.nn.functional as F
    from stc.kernels.attention import dsformer, sdsa, ssa

    shape = (2, 1, 2, 16, 8) if c.dry else (4, 32, 12, 196, 32)
    dtype = torch.float32 if c.dry else torch.float16
    gen = torch.Generator(device="cpu").manual_seed(0)
    q, k, v = ((torch.rand(shape, generator=gen) < 0.2).to(c.device, dtype) for _ in range(3))
    T, B, H, N, d = shape

    def sdpa(q, k, v):
        return F.scaled_dot_product_attention(*(z.reshape(T * B, H, N, d) for z in (q, k, v)))

    cases = [("sdpa (dense yardstick)", sdpa)]
    for be in ("triton", "torch"):
        tag = "stc triton" if be == "triton" else "pytorch formulation"
        cases += [(f"ssa {tag}", lambda q, k, v, be=be: ssa(q, k, v, backend=be)),
                  (f"sdsa {tag}", lambda q, k, v, be=be: sdsa(q, k, v, backend=be)),
                  (f"dsformer w2 r0.5 {tag}",
                   lambda q, k, v, be=be: dsformer(q, k, v, 2, 0.5, backend=be))]
    rows = []
    for mode in ("forward", "forward+backward"):
        for name, fn in cases:
            row = {"op": name, "mode": mode, "ms": None}
            try:
                if mode == "forward":
                    def call(fn=fn):
                        with torch.no_grad():
                            fn(q, k, v)
                else:
                    leaves = [z.clone().requires_grad_() for z in (q, k, v)]

                    def call(fn=fn, leaves=leaves):
                        fn(*leaves).float().sum().backward()
                row["ms"] = round(c.bench_ms(call), 4)
            except Exception as e:  # noqa: BLE001
                row["note"] = f"failed: {type(e).__name__}: {str(e)[:160]}"
            rows.append(row)
            log(f"  attention {mode:16s} {name:34s} {row['ms']} ms {row.get('note', '')}")
    for row in rows:
        op = row["op"].split(" ")[0]
        ref = next((r for r in rows if r["mode"] == row["mode"] and r["op"].startswith(op)
                    and "pytorch formulation" in r["op"]), None)
        if ref and ref["ms"] and row["ms"]:
            row["speedup_vs_pytorch"] = round(ref["ms"] / row["ms"], 2)
    return {"shape_TBHNd": list(shape), "dtype": str(dtype).replace("torch.", ""),
            "rows": rows}


# -- 4. Spikformer end to end -----------------------------------------------------------------

def _spikformer(c: Check):
    torch = c.torch
    from stc.bench.baseline import spikingjelly_baseline
    from stc.bench.suite import calibrate_batchnorm
    from stc.models import create_model

    over = dict(img_size=32, embed_dim=64, num_heads=4, depths=1, num_classes=10) if c.dry \
        else {}
    torch.manual_seed(0)
    model = create_model("spikformer_8_384", backend="auto" if c.cuda else "torch",
                         **over).to(c.device)
    cfg = model.config
    gen = torch.Generator(device="cpu").manual_seed(1)
    calib = torch.rand(2 if c.dry else 16, cfg.in_channels, cfg.img_size, cfg.img_size,
                       generator=gen).to(c.device)
    calibrate_batchnorm(model, calib)
    base = spikingjelly_baseline(model).eval()
    return model.eval(), base, cfg


def step_e2e(c: Check) -> dict:
    torch = c.torch
    from stc.compiler import SpikeCompiler
    from stc.precision import gemm_precision

    model, base, cfg = _spikformer(c)
    batches = (1, 2) if c.dry else (1, 32, 128)
    rows, graphs = [], {}
    gen = torch.Generator(device="cpu").manual_seed(2)
    for precision in ("fp32", "bf16"):
        model.set_precision(precision)
        runtime = None
        try:
            comp = SpikeCompiler(target="gpu" if c.cuda else "cpu", time_steps=cfg.T,
                                 precision=precision).compile(model)
            runtime = comp
        except Exception as e:  # noqa: BLE001
            rows.append({"precision": precision, "impl": "stc runtime",
                         "note": f"compile failed: {type(e).__name__}: {str(e)[:160]}"})
        for B in batches:
            x = torch.rand(B, cfg.in_channels, cfg.img_size, cfg.img_size,
                           generator=gen).to(c.device)
            if c.left() < 40:
                rows.append({"precision": precision, "batch": B,
                             "note": f"skipped: wall-time budget ({c.left():.0f} s left)"})
                continue
            with torch.no_grad():
                y_stc = model(x)
                with gemm_precision(precision, c.device.type):
                    y_base = base(x)
            pred_stc, pred_base = y_stc.argmax(-1), y_base.argmax(-1)
            agree = int((pred_stc == pred_base).sum())
            impls = {"stc model": lambda x=x: model(x)}
            if runtime is not None:
                impls["stc runtime"] = lambda x=x, rt=runtime: rt.run(x)

            def run_base(x=x, p=precision):
                with gemm_precision(p, c.device.type):
                    return base(x)
            impls["pytorch+spikingjelly"] = run_base
            times = {}
            for name, fn in impls.items():
                row = {"precision": precision, "batch": B, "impl": name, "ms": None}
                try:
                    with torch.no_grad():
                        fn()
                        row["ms"] = round(c.bench_ms(lambda fn=fn: fn(), rep_ms=200), 3)
                    times[name] = row["ms"]
                    row["samples_per_s"] = round(B / (row["ms"] * 1e-3), 1)
                except Exception as e:  # noqa: BLE001
                    row["note"] = f"failed: {type(e).__name__}: {str(e)[:160]}"
                rows.append(row)
            for row in rows[-len(impls):]:
                if row["ms"] and times.get("pytorch+spikingjelly"):
                    row["speedup_vs_baseline"] = round(times["pytorch+spikingjelly"] /
                                                       row["ms"], 2)
                row["predictions_equal"] = f"{agree}/{B}"
            log(f"  spikformer {precision} B={B}: {times} ms; predictions equal {agree}/{B}")
        if runtime is not None:
            for exe in runtime._executables.values():
                graphs[precision] = {f"batch {k[0]}": v for k, v in exe.graph_status.items()}
    model.set_precision("fp32")
    return {"model": "spikformer_8_384" + (" (toy overrides)" if c.dry else ""),
            "img_size": cfg.img_size, "T": cfg.T, "rows": rows,
            "runtime_cuda_graphs": graphs or "none (CPU)"}


# -- 5. fixed-point throughput --------------------------------------------------------------

def step_fixed(c: Check) -> dict:
    torch = c.torch
    from torch import nn

    from stc.ir.frontends import from_torch
    from stc.nn import LIF
    from stc.passes import quantize
    from stc.runtime import Executable

    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 256), LIF(backend="torch"), nn.Linear(256, 256),
                        LIF(backend="torch"), nn.Linear(256, 10), LIF(backend="torch")).eval()
    with torch.no_grad():
        for lin in (net[0], net[2], net[4]):
            lin.weight.mul_(3)
            lin.bias.add_(0.3)
    graph = from_torch(net, (64,), time_steps=4)
    fixed, _ = quantize(graph)
    B = 8 if c.dry else 1024
    x = torch.round(torch.rand(B, 64, generator=torch.Generator().manual_seed(3)) * 4).numpy()
    rows, outs = [], {}
    for dev in (["cuda"] if c.cuda else []) + ["cpu"]:
        row = {"where": f"runtime fixed ({dev})", "batch": B}
        try:
            exe = Executable(fixed.copy(), device=dev, numerics="fixed")
            outs[dev] = exe.infer({"input": x})["output"]
            ms = c.bench_ms(lambda exe=exe: exe.infer({"input": x}), rep_ms=200) \
                if dev == "cuda" else _cpu_ms(lambda exe=exe: exe.infer({"input": x}))
            row.update(ms=round(ms, 3), us_per_sample=round(ms * 1e3 / B, 2))
        except Exception as e:  # noqa: BLE001
            row["note"] = f"failed: {type(e).__name__}: {str(e)[:200]}"
        rows.append(row)
        log(f"  fixed {row}")
    if len(outs) == 2:
        import numpy as np

        rows[0]["equal_to_cpu"] = bool(np.array_equal(outs["cuda"], outs["cpu"]))
    row = {"where": "lava-sim", "batch": 2}
    try:
        import lava  # noqa: F401  (absent on the H200 image: recorded as skipped)

        from stc.lava.isolated import IsolatedLavaExecutable

        exe = IsolatedLavaExecutable(fixed.copy(), "lava-sim", name="mlp", version="1")
        try:
            t = time.perf_counter()
            y = exe.infer({"input": x[:2]})["output"]
            row["us_per_sample"] = round((time.perf_counter() - t) * 1e6 / 2, 1)
            row["note"] = "one call of 2 samples, Lava's process start-up included"
            row["equal_to_cpu"] = bool((y == outs["cpu"][:2]).all()) if "cpu" in outs else None
        finally:
            exe.close()
    except Exception as e:  # noqa: BLE001
        row["skipped"] = f"{type(e).__name__}: {str(e)[:200]}"
    rows.append(row)
    log(f"  fixed {row}")
    return {"network": "MLP 64-256-256-10, LIF, T=4, quantised (stc.passes.quantize)",
            "rows": rows}


def _cpu_ms(fn) -> float:
    fn()
    times = []
    for _ in range(3):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


# -- 6. energy -----------------------------------------------------------------------------------

def step_energy(c: Check) -> dict:
    torch = c.torch
    from stc.energy.gpu import CounterMeter, measure_gpu_energy
    from stc.precision import gemm_precision

    model, base, cfg = _spikformer(c)
    B = 2 if c.dry else 32
    x = torch.rand(B, cfg.in_channels, cfg.img_size, cfg.img_size).to(c.device)
    meter, sync, source = None, None, "NVML (stc.energy.gpu default meter)"
    if not c.cuda:
        clock = time.perf_counter
        meter = CounterMeter(lambda: clock() * 50e3, source="synthetic 50 W counter (dry run)")
        sync, source = (lambda: None), "synthetic 50 W counter (dry run: no GPU)"
    rows = []
    for precision in ("fp32", "bf16"):
        model.set_precision(precision)

        def run_base(x=x, p=precision):
            with gemm_precision(p, c.device.type):
                return base(x)
        for name, fn in (("stc model", lambda: model(x)), ("pytorch+spikingjelly", run_base)):
            row = {"impl": name, "precision": precision, "batch": B}
            try:
                with torch.no_grad():
                    e = measure_gpu_energy(fn, batch_size=B, meter=meter, sync=sync,
                                           warmup=2, min_seconds=0.2 if c.dry else 1.5,
                                           repeats=2, idle_s=0.2 if c.dry else 1.0,
                                           device=str(c.device))
                row.update(total_mJ=round(e.total_mj, 4), dynamic_mJ=round(e.dynamic_mj, 4),
                           idle_W=round(e.idle_power_w, 1))
            except Exception as ex:  # noqa: BLE001
                row["note"] = f"failed: {type(ex).__name__}: {str(ex)[:200]}"
            rows.append(row)
            log(f"  energy {row}")
    model.set_precision("fp32")
    return {"source": source, "rows": rows, "unit": "mJ per inference (one sample)"}


# -- report -------------------------------------------------------------------------------------

def environment(c: Check) -> dict:
    torch = c.torch
    env = {"python": platform.python_version(), "torch": torch.__version__,
           "platform": platform.platform(), "dry_run": c.dry,
           "command": " ".join([Path(sys.executable).name, *sys.argv]),
           "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    for mod in ("triton", "numpy", "spikingjelly", "snntorch", "nir", "lava"):
        try:
            m = __import__(mod)
            env[mod] = getattr(m, "__version__", "installed")
        except Exception as e:  # noqa: BLE001
            env[mod] = f"absent ({type(e).__name__})"
    env["device"] = torch.cuda.get_device_name(0) if c.cuda else \
        f"CPU ({os.cpu_count()} cores; dry run)"
    if c.cuda:
        env["cuda"] = torch.version.cuda
    try:
        env["load_average"] = os.getloadavg()
    except OSError:
        pass
    return env


def markdown(result: dict) -> str:
    env = result["environment"]
    lines = [f"# GPU check ({'DRY RUN, toy sizes on CPU' if env['dry_run'] else env['device']})",
             "", f"Command: `{env['command']}`; {env['date_utc']}; wall time "
             f"{result['wall_s']} s.", "",
             "Versions: " + ", ".join(f"{k} {env[k]}" for k in (
                 "python", "torch", "triton", "numpy", "spikingjelly", "lava") if k in env),
             f"; device: {env['device']}.", ""]
    for name, st in result["steps"].items():
        lines.append(f"## {name}: {st['status']} ({st.get('seconds', 0)} s)")
        for key in ("reason", "error", "summary", "collection_errors", "spikingjelly", "note",
                    "source", "network", "model", "runtime_cuda_graphs"):
            if st.get(key):
                lines.append(f"- {key}: {st[key]}")
        rows = st.get("rows") or []
        if rows:
            cols = []
            for r in rows:
                cols += [k for k in r if k not in cols]
            lines += ["", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
            lines += ["| " + " | ".join(str(r.get(k, "")) for k in cols) + " |" for r in rows]
        lines.append("")
    return "\n".join(lines) + "\n"


def write(result: dict, out: Path) -> tuple[Path, Path]:
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_check_" + ("dryrun_cpu" if result["environment"]["dry_run"] else "cuda")
    paths = (out / f"{stem}.json", out / f"{stem}.md")
    for p, text in zip(paths, (json.dumps(result, indent=1, default=str), markdown(result)),
                       strict=True):
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, p)
    return paths


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="toy sizes on CPU")
    ap.add_argument("--out", type=Path, default=None, help="output folder")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="wall-time budget (default 450 s; dry run 150 s)")
    ap.add_argument("--steps", default="pytest,lif,attention,e2e,fixed,energy",
                    help="comma-separated subset of steps")
    a = ap.parse_args(argv)
    if a.dry_run:
        os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is imported
    c = Check(a.dry_run, a.budget_s or (150.0 if a.dry_run else 450.0))
    if not a.dry_run and not c.cuda:
        log("no CUDA GPU here: run with --dry-run (make gpu-check DRY_RUN=1)")
        return 2
    env = environment(c)
    log(f"device {env['device']}, torch {env['torch']}, triton {env['triton']}")
    plan = [("pytest -m gpu", step_pytest, 20 if a.dry_run else 60),
            ("LIF", step_lif, 5 if a.dry_run else 60),
            ("attention", step_attention, 5 if a.dry_run else 15),
            ("spikformer_8_384 e2e", step_e2e, 10 if a.dry_run else 60),
            ("fixed-point throughput", step_fixed, 5 if a.dry_run else 15),
            ("energy", step_energy, 5 if a.dry_run else 30)]
    keys = {"pytest": 0, "lif": 1, "attention": 2, "e2e": 3, "fixed": 4, "energy": 5}
    chosen = {keys[s.strip()] for s in a.steps.split(",") if s.strip()}
    for i, (name, fn, need) in enumerate(plan):
        if i in chosen:
            c.step(name, lambda fn=fn: fn(c), need_s=need)
    result = {"environment": env, "wall_s": round(time.perf_counter() - c.t0, 1),
              "steps": c.steps}
    out = a.out or Path(os.environ.get("OUT") or ROOT / "benchmarks" / "results")
    paths = write(result, out)
    log(f"wrote {paths[0]} and {paths[1]}")
    failed = [k for k, v in c.steps.items() if v["status"] == "failed"]
    if failed:
        log(f"failed steps: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
