"""Every held-out digit: stc runtime fixed mode (CPU) vs Lava's bit-accurate Loihi 2 simulator.

Three digits SNNs are trained briefly (fixed seed, ``stc.train.load_digits_split`` split: 1,437
train / 360 held out), converted with ``from_torch(readout="spikes")``, quantised to Loihi
fixed point (``stc.passes.quantize``), mapped (``stc.lava.map_graph``) and written as ``.stcb``
bundles (``numerics="fixed"``, netx mapping included):

* ``mlp``: 64 -> 64 LIF -> 10 LIF (as ``stc.demo.train_mlp``), T = 4;
* ``cnn``: (1, 8, 8) -> Conv2d 1->8 3x3 pad 1 + LIF -> Flatten -> Linear 512 -> 10 + LIF, T = 4
  (no pooling: a pooling layer adds a step in Lava only, see ``stc.lava.executor``);
* ``cnn_nobias``: the same CNN trained without biases;
* ``spikformer_tiny`` / ``dsformer_tiny``: the digits presets trained with ``stc train``'s
  recipe (8 epochs), attention lowered to LIF layers and quantised (``stc.passes``), run in
  Lava as a process graph (``stc.lava.network``: Dense, LIFReset, DelayedAdd, Route and the
  SSA / DSFormer attention process) with the token mean, classifier and time mean on the host.

All take integer pixels 0..16 (graded input). Each bundle is loaded three ways through
``stc.runtime.load_bundle``: CPU float, CPU fixed and ``lava-sim`` (a spawned worker running
Lava's simulator, fed in chunks). The output spike trains [B, T, 10] of CPU fixed and lava-sim
are compared bit for bit on every held-out sample; accuracy is the argmax of the spike count.
Times are wall-clock per sample of ``infer`` over the whole held-out set (CPU runtime: one
batch, median of 5 passes; lava-sim: one pass), in one process on this machine's CPU; Lava's
time includes its per-call network build/compile (one per chunk) and the worker round
trip. The ratio is lava-sim / CPU fixed.

    .venv/bin/python benchmarks/lava/heldout_exactness.py \
        --out benchmarks/results/lava_heldout_exactness_cpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

T = 4


def _spike_train(model: nn.Sequential, xb: torch.Tensor) -> torch.Tensor:
    """Run ``model`` on the static batch ``xb`` [B, ...] repeated over T (direct encoding);
    returns spikes [T, B, 10]. Stateless layers see [T * B, ...] (one call for all steps, as
    ``from_torch`` treats them per step); LIF layers see [T, B, ...] (state carried over T)."""
    z = xb.unsqueeze(0).repeat(T, *([1] * xb.dim()))  # [T, B, ...]
    for m in model:
        if type(m).__name__ == "LIF":
            z = m(z)
        else:
            z = m(z.flatten(0, 1))
            z = z.reshape(T, -1, *z.shape[1:])
    return z


def train_snn(kind: str, seed: int = 0, epochs: int = 6) -> nn.Sequential:
    """Train the ``kind`` ("mlp" | "cnn") digits LIF SNN briefly with surrogate gradients (the
    recipe of ``stc.demo.train_mlp``: Adam 1e-2, batch 64, cross-entropy on 10 x spike rate),
    then fold the /16 input scaling into the first layer so it takes integer pixels 0..16.

    Input of the returned module: [T, B, 64] (mlp) or, per step, [T * B, 1, 8, 8] (cnn; see
    ``_spike_train``). Raises ValueError for an unknown ``kind``."""
    from stc.nn import LIF
    from stc.train import load_digits_split

    torch.manual_seed(seed)
    d = load_digits_split(seed=seed)
    y = d.y_train
    if kind == "mlp":
        x = d.x_train.reshape(-1, 64)
        net = nn.Sequential(nn.Linear(64, 64), LIF(backend="torch"), nn.Linear(64, 10),
                            LIF(backend="torch"))
    elif kind in ("cnn", "cnn_nobias"):
        x = d.x_train  # [N, 1, 8, 8] in [0, 1]
        bias = kind == "cnn"
        net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=bias), LIF(backend="torch"),
                            nn.Flatten(), nn.Linear(8 * 8 * 8, 10, bias=bias),
                            LIF(backend="torch"))
    else:
        raise ValueError(f"kind must be 'mlp', 'cnn' or 'cnn_nobias', got {kind!r}")
    x = (x * 16).round() / 16  # the integer pixels the fixed-point graph sees
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 64):
            idx = order[i:i + 64]
            rate = _spike_train(net, x[idx]).mean(0)
            loss = nn.functional.cross_entropy(rate * 10, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    net.eval()
    with torch.no_grad():
        net[0].weight /= 16  # the graph takes integer pixels
    return net


def write_fixed_bundle(net: nn.Sequential, kind: str, path: Path,
                       probe: np.ndarray) -> tuple[Path, dict]:
    """IR (spike readout) -> Loihi fixed point -> netx mapping -> ``.stcb``; returns the path
    and the quantiser's report (dict; its spike agreement measured on ``probe``)."""
    from stc.bundle import write_bundle
    from stc.ir.frontends.torch import from_torch
    from stc.lava import map_graph
    from stc.passes.quantize import quantize

    shape = (64,) if kind == "mlp" else (1, 8, 8)
    graph = from_torch(net, shape, time_steps=T, readout="spikes")
    fixed, report = quantize(graph, probe=torch.from_numpy(probe))
    members = map_graph(fixed).members()
    out = write_bundle(path, graph, name=f"digits_{kind}", version="1", fixed_graph=fixed,
                       numerics="fixed", extra_members=members)
    return Path(out), report.to_dict()


def _batch_first(y: np.ndarray, n: int) -> np.ndarray:
    """Spike outputs as [B, T, 10] whichever of [T, B, 10] / [B, T, 10] the backend returns."""
    y = np.asarray(y)
    if y.shape[:2] == (n, T):
        return y
    if y.shape[:2] == (T, n):
        return y.transpose(1, 0, *range(2, y.ndim))
    raise ValueError(f"unexpected output shape {y.shape} for batch {n}, T {T}")


def run_backend(bundle: Path, x: np.ndarray, backend: str, numerics: str,
                chunk: int, repeats: int = 1) -> tuple[np.ndarray, list[float]]:
    """Infer all of ``x`` [N, ...] in chunks, ``repeats`` times; return (spikes [N, T, 10],
    seconds of each pass). Raises RuntimeError when two passes differ."""
    from stc.runtime import load_bundle

    exe = load_bundle(bundle, backend=backend, numerics=numerics)
    name = exe.inputs[0].name
    times, first = [], None
    try:
        for _ in range(repeats):
            outs = []
            t0 = time.perf_counter()
            for i in range(0, len(x), chunk):
                (y,) = exe.infer({name: x[i:i + chunk]}).values()
                outs.append(_batch_first(y, len(x[i:i + chunk])))
            times.append(time.perf_counter() - t0)
            out = np.concatenate(outs)
            if first is not None and not np.array_equal(out, first):
                raise RuntimeError(f"{backend}/{numerics} is not deterministic")
            first = out
    finally:
        exe.close()
    return first, times


def evaluate(kind: str, workdir: Path, chunk: int, n_samples: int, seed: int) -> dict:
    """Train, bundle and compare CPU fixed with lava-sim on the held-out digits."""
    from stc.train import load_digits_split

    t0 = time.perf_counter()
    net = train_snn(kind, seed=seed)
    train_s = time.perf_counter() - t0
    d = load_digits_split(seed=seed)
    x = (d.x_test * 16).round().numpy().astype(np.float32)[:n_samples]
    if kind == "mlp":
        x = x.reshape(len(x), 64)
    bundle, qreport = write_fixed_bundle(net, kind, workdir / f"digits_{kind}.stcb", x)
    y = d.y_test.numpy()[:n_samples]
    with torch.no_grad():  # independent float reference: the torch module itself
        ref = _spike_train(net, torch.from_numpy(x)).numpy().transpose(1, 0, 2)
    flt, t_float = run_backend(bundle, x, "cpu", "float", chunk=len(x), repeats=5)
    fix, t_fixed = run_backend(bundle, x, "cpu", "fixed", chunk=len(x), repeats=5)
    lava, (t_lava,) = run_backend(bundle, x, "lava-sim", "fixed", chunk=chunk)
    equal = np.all(fix == lava, axis=tuple(range(1, fix.ndim)))
    n = len(x)

    def acc(s):
        return float((s.sum(1).argmax(1) == y).mean())

    return {
        "model": kind,
        "network": ("64 -> 64 LIF -> 10 LIF" if kind == "mlp" else
                    "(1,8,8) -> Conv2d 1->8 3x3 p1 + LIF -> Flatten -> Linear 512->10 + LIF"
                    + (", no biases" if kind == "cnn_nobias" else "")),
        "time_steps": T,
        "train_seconds": round(train_s, 1),
        "samples": n,
        "samples_bit_exact": int(equal.sum()),
        "all_bit_exact": bool(equal.all()),
        "output_spikes_fixed": int(fix.sum()),
        "accuracy_float_module": acc(ref),
        "accuracy_float_runtime": acc(flt),
        "float_runtime_equals_module": bool(np.array_equal(flt, ref)),
        "accuracy_fixed_runtime": acc(fix),
        "accuracy_lava_sim": acc(lava),
        "fixed_minus_float_points": round(100 * (acc(fix) - acc(flt)), 2),
        "runtime_float_ms_per_sample": 1e3 * float(np.median(t_float)) / n,
        "runtime_fixed_ms_per_sample": 1e3 * float(np.median(t_fixed)) / n,
        "runtime_fixed_ms_per_sample_min": 1e3 * min(t_fixed) / n,
        "lava_sim_ms_per_sample": 1e3 * t_lava / n,
        "ratio_lava_over_runtime_fixed": t_lava / float(np.median(t_fixed)),
        "ratio_lava_over_runtime_fixed_min": t_lava / min(t_fixed),
        "lava_chunk": chunk,
        "quantizer": {"layers": [{k: v for k, v in la.items()
                                  if k in ("name", "exponent", "weight_rel_error", "v_th_mant")}
                                 for la in qreport["layers"]],
                      "heldout_spike_agreement_fixed_vs_float":
                          qreport["spike_agreement"]},
    }


TRANSFORMERS = ("spikformer_tiny", "dsformer_tiny")


def evaluate_transformer(kind: str, workdir: Path, chunk: int, n_samples: int,
                         seed: int) -> dict:
    """Train a tiny transformer preset (``stc train``'s recipe), quantise it (attention
    lowered, host readout), and compare on the held-out digits: the integer values Lava reads
    back (the last residual sum, [B, T, N, D]) and the logits of the host readout, CPU fixed
    (``stc.runtime``) against lava-sim (``stc.lava.network.run_process_graph``, in chunks)."""
    from stc.bundle import write_bundle
    from stc.cli.train import RECIPES
    from stc.ir.frontends.models import from_model
    from stc.lava import map_graph
    from stc.lava.network import run_process_graph, with_tap
    from stc.models import create_model
    from stc.passes import fold_batchnorm, quantize
    from stc.runtime.interpreter import execute
    from stc.train import load_digits_split
    from stc.train.loop import TrainConfig, train_model

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    d = load_digits_split(seed=seed)
    model = create_model(kind, backend="torch")
    train_model(model, d, TrainConfig(seed=seed, **RECIPES[kind]))
    train_s = time.perf_counter() - t0
    model.eval()
    graph, _ = fold_batchnorm(from_model(model))
    conv0 = next(n for n in graph.nodes if n.OP == "Conv2d")
    graph.tensors[conv0.params["weight"]] = graph.tensors[conv0.params["weight"]] / 16
    x = (d.x_test * 16).round()[:n_samples]  # integer pixels 0..16
    y = d.y_test.numpy()[:n_samples]
    fixed, qreport = quantize(graph, probe=x[:32])
    mapping = map_graph(fixed)
    pg = mapping.process_graph
    write_bundle(workdir / f"{kind}.stcb", graph, name=kind, version="1", fixed_graph=fixed,
                 numerics="fixed", extra_members=mapping.members())
    tapped = with_tap(fixed, pg.boundary, "boundary")
    with torch.no_grad():
        ref = model(x / 16).numpy()
        t_float, t_fixed = [], []
        for _ in range(5):
            a = time.perf_counter()
            flt = execute(graph, {"input": x}, numerics="float").outputs["output"].numpy()
            t_float.append(time.perf_counter() - a)
            a = time.perf_counter()
            res = execute(tapped, {"input": x}, numerics="fixed").outputs
            t_fixed.append(time.perf_counter() - a)
    fix = res["output"].numpy()
    fix_vals = res["boundary"].transpose(0, 1).numpy()  # [B, T, N, D]
    a = time.perf_counter()
    lava_vals, lava_out = [], []
    for i in range(0, len(x), chunk):
        v, o = run_process_graph(pg, x[i:i + chunk].numpy())
        lava_vals.append(v)
        lava_out.append(o["output"])
    t_lava = time.perf_counter() - a
    lava_vals, lava = np.concatenate(lava_vals), np.concatenate(lava_out)
    equal = np.all(fix_vals == lava_vals, axis=(1, 2, 3)) & np.all(fix == lava, axis=1)
    n = len(x)

    def acc(logits):
        return float((logits.argmax(1) == y).mean())

    report = mapping.allocation.report()
    return {
        "model": kind,
        "network": (f"{kind}: stem 4 conv + LIF (8 x 8 -> 4 x 4 tokens), 1 block, D 64, 4 heads"
                    ", attention lowered; host readout: token mean + Linear + time mean"),
        "time_steps": pg.time_steps,
        "train_seconds": round(train_s, 1),
        "samples": n,
        "samples_bit_exact": int(equal.sum()),
        "all_bit_exact": bool(equal.all()),
        "compared": f"Lava read-back {pg.boundary} [B, T, {', '.join(map(str, pg.boundary_shape))}]"
                    " and the logits",
        "output_spikes_fixed": int(fix_vals.sum()),
        "accuracy_float_module": acc(ref),
        "accuracy_float_runtime": acc(flt),
        "float_runtime_equals_module": bool(np.allclose(flt, ref, atol=1e-5)),
        "accuracy_fixed_runtime": acc(fix),
        "accuracy_lava_sim": acc(lava),
        "fixed_minus_float_points": round(100 * (acc(fix) - acc(flt)), 2),
        "runtime_float_ms_per_sample": 1e3 * float(np.median(t_float)) / n,
        "runtime_fixed_ms_per_sample": 1e3 * float(np.median(t_fixed)) / n,
        "runtime_fixed_ms_per_sample_min": 1e3 * min(t_fixed) / n,
        "lava_sim_ms_per_sample": 1e3 * t_lava / n,
        "ratio_lava_over_runtime_fixed": t_lava / float(np.median(t_fixed)),
        "ratio_lava_over_runtime_fixed_min": t_lava / min(t_fixed),
        "lava_chunk": chunk,
        "lava_processes": len(pg.specs),
        "lava_latency_steps": pg.latency,
        "loihi_mapping": {k: report[k] for k in ("chips_used", "cores_used",
                                                 "mean_neuron_utilisation", "host_layers",
                                                 "inter_chip_spikes_per_step")},
        "quantizer": {"layers": [{k: v for k, v in la.items()
                                  if k in ("name", "exponent", "gain", "weight_rel_error",
                                           "v_th_mant")} for la in qreport.layers],
                      "host_readout": qreport.host_readout,
                      "probe_spike_agreement_fixed_vs_float": qreport.overall_agreement},
    }


def _versions() -> dict:
    from importlib.metadata import version

    out = {"python": platform.python_version(), "numpy": np.__version__,
           "torch": torch.__version__}
    for pkg in ("lava-nc", "lava-dl"):
        try:
            out[pkg] = version(pkg)
        except Exception:  # noqa: BLE001 - a missing package is reported, not fatal
            out[pkg] = "missing"
    return out


def _markdown(res: dict) -> str:
    lines = [f"# {res['benchmark']}", "",
             f"Device: {res['device']}. Command: `{res['command']}`", "",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in res["versions"].items()), "",
             "| model | samples bit-exact | float acc | fixed acc (CPU) | fixed - float "
             "(points) | lava-sim acc | CPU fixed ms/sample | lava-sim ms/sample | "
             "ratio lava/CPU |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in res["models"]:
        lines.append(
            f"| {r['model']}: {r['network']} | {r['samples_bit_exact']} / {r['samples']} | "
            f"{r['accuracy_float_runtime']:.4f} | {r['accuracy_fixed_runtime']:.4f} | "
            f"{r['fixed_minus_float_points']:+.2f} | {r['accuracy_lava_sim']:.4f} | "
            f"{r['runtime_fixed_ms_per_sample']:.3f} | "
            f"{r['lava_sim_ms_per_sample']:.1f} | {r['ratio_lava_over_runtime_fixed']:.0f}x |")
    lines += ["", res["notes"], ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; exit code 1 when any held-out sample differs."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,cnn,cnn_nobias,spikformer_tiny,dsformer_tiny")
    ap.add_argument("--chunk", type=int, default=120, help="samples per lava-sim call")
    ap.add_argument("--samples", type=int, default=360, help="held-out samples (max 360)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="path stem for .json and .md results")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    start = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="stc-heldout-") as tmp:
        for kind in args.models.split(","):
            run = evaluate_transformer if kind in TRANSFORMERS else evaluate
            r = run(kind, Path(tmp), args.chunk, args.samples, args.seed)
            print(json.dumps(r, indent=1), flush=True)
            rows.append(r)
    res = {
        "benchmark": "held-out digits: stc runtime fixed mode (CPU) vs lava-sim, bit for bit",
        "device": f"CPU ({os.cpu_count()} cores, shared with other jobs; load average at "
                  f"start {os.getloadavg()[0]:.1f})",
        "models": rows,
        "total_seconds": round(time.perf_counter() - start, 1),
        "versions": _versions(),
        "command": "python " + " ".join([sys.argv[0]] + (argv if argv is not None
                                                         else sys.argv[1:])),
        "notes": ("Accuracy: argmax of the output spike count over T (MLP/CNN; ties -> "
                  "lowest class) or of the logits (transformers). Float = the bundle's float "
                  "graph on the CPU runtime (checked equal to the torch module). Timing is "
                  "delay-free in the runtime's fixed mode and pipelined with staggered resets "
                  "in Lava (stc.lava.executor, stc.lava.network): a neuron bias acts from its "
                  "sample's first input on. MLP/CNN: output spike trains compared through the "
                  "bundles (lava-sim in a spawned worker). Transformers: the integer values Lava "
                  "reads back (the last residual sum [B, T, 16, 64]) and the host readout's "
                  "logits compared, lava-sim run in-process through "
                  "stc.lava.network.run_process_graph. Timings: wall clock over all samples "
                  "(CPU runtime: one batch of all samples, median of 5 passes, minimum in the "
                  "JSON: the machine is shared, so CPU figures are noisy; lava-sim: one pass in "
                  "chunks of --chunk, including each chunk's network build and compile). "
                  "The quantiser's per-layer figures and spike agreement are in the JSON."),
    }
    if args.out:
        stem = Path(args.out)
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text(json.dumps(res, indent=1) + "\n")
        stem.with_suffix(".md").write_text(_markdown(res))
    print(_markdown(res))
    return 0 if all(r["all_bit_exact"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
