"""End-to-end inference benchmark: stc vs the SpikingJelly-style baseline, plus energy.

For each model preset and batch size: latency and throughput of stc's model (``backend="auto"``:
fused Triton kernels on GPU, PyTorch references on CPU) and of the baseline
(:func:`stc.bench.baseline.spikingjelly_baseline`: same weights, SpikingJelly LIF, dense
PyTorch attention) in the same process on the same device; their predictions must agree.
Energy per inference: the papers' formula (estimate), Loihi 1 per-op estimate and Loihi 2
Hala Point bound (from the operations counted by ``stc.models.stats.collect`` in the same run),
and GPU energy measured with the energy counter when a GPU and zeus / nvidia-ml-py are present.
Every figure that cannot be produced here is listed under ``missing`` with the reason.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from stc.bench.baseline import spikingjelly_baseline
from stc.bench.timing import time_paired

GPU_MODELS = ("spikformer_8_384", "sdt_8_512", "dsformer_8_384")
GPU_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class BenchConfig:
    """What to run. Defaults are the GPU suite (224 x 224, T = 4, batch 1..256).

    Attributes:
        models: preset names for ``stc.models.create_model``.
        batch_sizes: batch sizes to time.
        img_size: input side in pixels; T: timesteps.
        overrides: further ModelConfig overrides (e.g. ``{"depths": 2}``).
        device: "auto" (cuda if available) | "cpu" | "cuda".
        warmup / repeats: timing calls per point.
        energy_batch: batch size for the GPU energy window (default: the largest).
        energy_seconds: minimum GPU energy window (s); energy_repeats: windows.
        precision: formula preset ("fp32" | "fp16" | "int8").
        encoding_times_T: the formula's choice for the encoding layer (see stc.energy.formula).
        loihi_timestep_s: ASSUMED Loihi timestep duration for the static-power term (s).
        seed: RNG seed for weights and the random input images.
        threads: torch intra-op CPU threads during the run (None: leave torch's setting).
            On a shared CPU, 1 thread avoids OpenMP spin-wait slowdowns (measured 20x).
        stc_impl: "runtime" (``SpikeCompiler(target="gpu"|"cpu").compile(model).run``, the
            stc runtime; falls back to "eager" with the reason if compilation fails) or
            "eager" (the ``stc.models`` module itself, backend from its config).
    """

    models: tuple[str, ...] = GPU_MODELS
    batch_sizes: tuple[int, ...] = GPU_BATCHES
    img_size: int = 224
    T: int = 4
    overrides: dict = field(default_factory=dict)
    device: str = "auto"
    warmup: int = 3
    repeats: int = 10
    energy_batch: int | None = None
    energy_seconds: float = 5.0
    energy_repeats: int = 3
    precision: str = "fp32"
    encoding_times_T: bool = True
    loihi_timestep_s: float = 1e-3
    seed: int = 0
    threads: int | None = None
    stc_impl: str = "runtime"


def small_cpu_config() -> BenchConfig:
    """The reduced CPU run: the three GPU presets at 32 x 32 input, batch 1..8, few repeats."""
    return BenchConfig(img_size=32, batch_sizes=(1, 2, 4, 8), device="cpu", warmup=1,
                       repeats=7, threads=1)


def environment(device: torch.device) -> dict:
    """Device and package versions for the report."""
    import numpy

    import stc

    versions = {"python": sys.version.split()[0], "stc": stc.__version__,
                "torch": torch.__version__, "numpy": numpy.__version__}
    for mod in ("triton", "spikingjelly"):
        try:
            from importlib.metadata import version

            __import__(mod)
            versions[mod] = version(mod)
        except Exception:  # noqa: BLE001 - report what is importable
            versions[mod] = "not installed"
    if device.type == "cuda":
        name = f"GPU: {torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    else:
        name = f"CPU: {platform.processor() or platform.machine()}"
    load = round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None
    return {"device": name, "device_type": device.type, "platform": platform.platform(),
            "versions": versions, "load_average_1min_at_start": load,
            "cpu_count": os.cpu_count()}


def _records(model: torch.nn.Module, x: torch.Tensor) -> tuple[list | None, str | None]:
    try:
        from stc.models import stats
    except ImportError:
        return None, "stc.models.stats is not available: no operation counts, no energy"
    with torch.no_grad():
        return list(stats.collect(model, x)), None


def _mapping(model: torch.nn.Module, T: int) -> tuple[object | None, str | None]:
    """The Lava mapping report (cores_used, chips_used) of ``model``, or why there is none.

    Compiles with ``SpikeCompiler(target="lava-sim")`` (quantisation lowers SSA / DSFormer
    attention) and maps with ``stc.lava.map_graph``; for a model that cannot be mapped (SDT's
    SDSA) this returns the MappingError's message.
    """
    try:
        from stc.compiler.api import SpikeCompiler
        from stc.lava import map_graph

        # the fixed graph as lava-sim would get it (level 3 quantises), without the
        # compile-time check that Lava can run it: a placement report is enough here
        compiled = SpikeCompiler(target="cpu", optimization_level=3, time_steps=T).compile(model)
        return map_graph(compiled.fixed_graph).allocation.report(), None
    except Exception as e:  # noqa: BLE001 - an unmappable model is a missing figure
        msg = str(e).splitlines()[0] if str(e) else ""
        return None, (f"Loihi mapping unavailable ({type(e).__name__}: {msg[:160]}): cores/"
                      "chips unknown, Loihi static energy not charged")


def calibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of one forward pass on ``x``.

    Random-initialised models have running mean 0 / variance 1, which leaves most LIF neurons
    silent (firing rate ~0), so the firing rates, energy counts and the prediction check would
    be meaningless. Calibrating on the (random) benchmark input gives normalised
    pre-activations and nonzero spiking, as in a trained network. Leaves the model in eval mode.
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration pass
    model.train()
    with torch.no_grad():
        model(x)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    model.eval()


def _stc_runner(cfg: BenchConfig, model, device) -> tuple[Callable, str, str | None]:
    """(run(x) -> logits, label, why-not-runtime) for the stc side of the comparison."""
    if cfg.stc_impl == "runtime":
        try:
            from stc.compiler.api import SpikeCompiler

            target = "gpu" if device.type == "cuda" else "cpu"
            compiled = SpikeCompiler(target=target, time_steps=cfg.T).compile(model)
            return compiled.run, f"stc runtime (SpikeCompiler target={target!r})", None
        except Exception as e:  # noqa: BLE001 - reported, eager model used instead
            why = (f"stc runtime unavailable ({type(e).__name__}: {str(e)[:160]}); "
                   "timed the eager stc model instead")
            return model, "stc eager model", why
    return model, f"stc eager model (backend={model.config.backend!r})", None


def _energy(cfg: BenchConfig, model, x_rec) -> tuple[dict, list[str]]:
    from stc.energy import counts_from_records, estimate_loihi_energy, paper_energy

    out: dict = {}
    missing: list[str] = []
    recs, why = _records(model, x_rec)
    if recs is None:
        return out, [why]
    out["formula"] = paper_energy(recs, precision=cfg.precision,
                                  encoding_times_T=cfg.encoding_times_T).to_dict()
    rates = [r.in_firing_rate for r in recs if r.kind != "neuron" and not r.is_encoding_layer]
    out["mean_in_firing_rate"] = sum(rates) / len(rates) if rates else None
    report, why = _mapping(model, cfg.T)
    if why:
        missing.append(why)
    counts = counts_from_records(recs, mapping=report)
    out["loihi1"] = estimate_loihi_energy(counts, chip="loihi1",
                                          timestep_s=cfg.loihi_timestep_s).to_dict()
    out["loihi2"] = estimate_loihi_energy(counts, chip="loihi2").to_dict()
    return out, missing


def _gpu_energy(cfg, fn, batch, device) -> tuple[dict | None, str | None]:
    from stc.energy import GpuEnergyUnavailable, measure_gpu_energy

    if device.type != "cuda":
        return None, "GPU energy: not measured (no CUDA GPU in this run)"
    try:
        r = measure_gpu_energy(fn, batch_size=batch, min_seconds=cfg.energy_seconds,
                               repeats=cfg.energy_repeats,
                               device=torch.cuda.get_device_name(device))
    except GpuEnergyUnavailable as e:
        return None, f"GPU energy: not measured ({e})"
    return r.to_dict(), None


def run_suite(cfg: BenchConfig, *, log: Callable[[str], None] = print) -> dict:
    """Run the benchmark; return a JSON-serialisable result (see module doc).

    Returns:
        ``{"environment", "config", "models": {name: {"rows": [...], "energy": {...},
        "agree": bool, "missing": [...]}}, "missing": [...]}``; rows hold per batch size
        ``stc`` and ``baseline`` timings (ms, samples/s), ``speedup`` (baseline / stc median
        latency), ``agree`` (same argmax) and ``max_abs_diff`` of the logits.

    Raises:
        ValueError: unknown device / preset, empty models or batch sizes.
        RuntimeError: device "cuda" requested without CUDA.
    """
    if not cfg.models or not cfg.batch_sizes:
        raise ValueError("models and batch_sizes must be non-empty")
    if any(b < 1 for b in cfg.batch_sizes):
        raise ValueError(f"batch_sizes must be >= 1; got {cfg.batch_sizes}")
    if cfg.stc_impl not in ("runtime", "eager"):
        raise ValueError(f"stc_impl must be 'runtime' or 'eager'; got {cfg.stc_impl!r}")
    if cfg.device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda'; got {cfg.device!r}")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device='cuda' but torch.cuda.is_available() is False")
    use_cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if use_cuda else "cpu")
    sync = torch.cuda.synchronize if use_cuda else (lambda: None)
    saved_threads = torch.get_num_threads()
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    try:
        result: dict = {"environment": environment(device), "config": dataclasses.asdict(cfg),
                        "models": {}, "missing": []}
        result["environment"]["torch_threads"] = torch.get_num_threads()
        if not use_cuda:
            result["missing"].append(
                "GPU figures (224 x 224, batch 1..256, measured GPU energy): no CUDA GPU in "
                "this run; these are CPU figures at the reduced sizes in 'config'")
        for name in cfg.models:
            result["models"][name] = _bench_model(cfg, name, device, sync, log)
    finally:
        torch.set_num_threads(saved_threads)
    return result


def _bench_model(cfg: BenchConfig, name: str, device: torch.device, sync, log) -> dict:
    from stc.models import create_model

    torch.manual_seed(cfg.seed)
    model = create_model(name, img_size=cfg.img_size, T=cfg.T, **cfg.overrides)
    model = model.to(device)
    gen = torch.Generator().manual_seed(cfg.seed)
    x_all = torch.rand(max(cfg.batch_sizes), model.config.in_channels, cfg.img_size,
                       cfg.img_size, generator=gen).to(device)
    calibrate_batchnorm(model, x_all[: max(2, min(8, len(x_all)))])
    base = spikingjelly_baseline(model).eval()
    run_stc, label, why = _stc_runner(cfg, model, device)
    n_params = sum(p.numel() for p in model.parameters())
    entry: dict = {"params_M": n_params / 1e6, "config": model.config.to_dict(),
                   "stc_impl": label, "rows": [], "missing": [why] if why else []}
    agree_all = True
    with torch.no_grad():
        for b in cfg.batch_sizes:
            x = x_all[:b]
            y_stc, y_base = torch.as_tensor(run_stc(x)), base(x)
            agree = bool((y_stc.argmax(-1) == y_base.argmax(-1)).all())
            diff = float((y_stc - y_base).abs().max())
            agree_all &= agree
            t_stc, t_base = time_paired(lambda x=x: run_stc(x), lambda x=x: base(x), batch_size=b,
                                        warmup=cfg.warmup, repeats=cfg.repeats, sync=sync)
            row = {"batch": b, "stc": t_stc.to_dict(), "baseline": t_base.to_dict(),
                   "speedup": t_base.median_s / t_stc.median_s, "agree": agree,
                   "max_abs_diff": diff}
            entry["rows"].append(row)
            log(f"{name} batch {b}: stc {t_stc.median_s * 1e3:.2f} ms, baseline "
                f"{t_base.median_s * 1e3:.2f} ms, speedup {row['speedup']:.2f}x, "
                f"agree={agree} (max |diff| {diff:.2e})")
        energy, missing = _energy(cfg, model, x_all[: min(4, len(x_all))])
        entry["missing"] += missing
        eb = cfg.energy_batch or max(cfg.batch_sizes)
        xe = x_all[:eb]
        for impl, net in (("stc", run_stc), ("baseline", base)):
            g, why = _gpu_energy(cfg, lambda net=net, xe=xe: net(xe), eb, device)
            energy[f"gpu_{impl}"] = g
            if why and why not in entry["missing"]:
                entry["missing"].append(why)
    entry["energy"] = energy
    entry["agree"] = agree_all
    return entry
