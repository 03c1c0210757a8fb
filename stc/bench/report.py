"""Write a benchmark result (``stc.bench.suite.run_suite``) as JSON, Markdown and PNG plots.

Files (in ``out_dir``, prefixed by ``stem``): ``<stem>.json`` (everything), ``<stem>.md``
(tables with device, versions and the command), ``<stem>_throughput.png`` (samples/s vs batch
size with min..max error bars, stc solid, baseline dashed, and a speedup panel),
``<stem>_energy.png`` (energy per inference in mJ, log scale: paper formula, Loihi 1
estimate, Loihi 2 bound as one range, GPU only where measured; every bar labelled) and
``<stem>_latency.png`` (latency histograms, when the timings kept their samples); see
stc.bench.plots.
"""

from __future__ import annotations

import json
from pathlib import Path


def _fmt_mj(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4g}"


def energy_rows(result: dict) -> list[dict]:
    """One row per model: energy per inference (mJ) of each kind, None where missing."""
    rows = []
    for name, m in result["models"].items():
        e = m.get("energy", {})
        gpu = e.get("gpu_stc")
        gpu_b = e.get("gpu_baseline")
        rows.append({
            "model": name,
            "gpu_stc_total_mj": gpu["total_mj"] if gpu else None,
            "gpu_stc_dynamic_mj": gpu["dynamic_mj"] if gpu else None,
            "gpu_baseline_total_mj": gpu_b["total_mj"] if gpu_b else None,
            "loihi1_mj": e["loihi1"]["total_mj"] if "loihi1" in e else None,
            "loihi2_low_mj": e["loihi2"]["low_mj"] if "loihi2" in e else None,
            "loihi2_high_mj": e["loihi2"]["total_mj"] if "loihi2" in e else None,
            "formula_mj": e["formula"]["total_mj"] if "formula" in e else None,
            "mean_in_firing_rate": e.get("mean_in_firing_rate"),
        })
    return rows


def markdown(result: dict, command: str) -> str:
    """The Markdown report (device, versions, command, throughput and energy tables)."""
    env = result["environment"]
    cfg = result["config"]
    lines = [
        "# stc end-to-end inference benchmark", "",
        f"- device: **{env['device']}** ({env['platform']}); torch threads "
        f"{env.get('torch_threads')}, {env.get('cpu_count')} CPUs, 1-min load average at "
        f"start {env.get('load_average_1min_at_start')} (a shared machine makes timings noisy)",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in env["versions"].items()),
        f"- command: `{command}`",
        f"- input: random images {cfg['img_size']}x{cfg['img_size']}, T = {cfg['T']}, "
        f"random-initialised weights (seed {cfg['seed']}); firing rates are not those of "
        "trained models",
        "- stc: " + "; ".join(sorted({f"{n}: {m.get('stc_impl', 'stc')}"
                                      for n, m in result["models"].items()}))
        + " (backend auto: Triton kernels on GPU, PyTorch references on CPU)",
        "- baseline: the same weights with SpikingJelly LIFNode(step_mode='m') neurons and dense "
        "PyTorch attention (stc.bench.baseline), as the official code computes them",
        "- BatchNorm statistics calibrated on the input so that neurons fire "
        "(stc.bench.suite.calibrate_batchnorm)",
        "- speedup = baseline median latency / stc median latency, same process, same device, "
        "the two timed interleaved (A B, B A, ...)",
        "",
    ]
    if env["device_type"] != "cuda":
        lines += ["**These are CPU figures at reduced sizes, not GPU figures.**", ""]
    lines += ["## Throughput and latency", "",
              "| model | batch | stc ms/batch | stc samples/s | baseline ms/batch | "
              "baseline samples/s | speedup | predictions agree | max abs logit diff |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, m in result["models"].items():
        for r in m["rows"]:
            lines.append(
                f"| {name} | {r['batch']} | {r['stc']['median_ms']:.2f} | "
                f"{r['stc']['throughput_per_s']:.1f} | {r['baseline']['median_ms']:.2f} | "
                f"{r['baseline']['throughput_per_s']:.1f} | {r['speedup']:.2f}x | "
                f"{'yes' if r['agree'] else 'NO'} | {r['max_abs_diff']:.1e} |")
    if any(r["max_abs_diff"] > 0 for m in result["models"].values() for r in m["rows"]):
        lines += ["", "Nonzero logit differences: the stc runtime folds BatchNorm into the weights "
                  "(stc.passes), which changes float rounding and can flip a spike whose "
                  "membrane potential sits at the threshold; predictions are compared by argmax."]
    lines += ["", "## Energy per inference (one sample, all T timesteps), mJ", "",
              "| model | GPU measured, stc (total / dynamic) | GPU measured, baseline | "
              "Loihi 1 estimate | Loihi 2 bound (low - high) | paper formula estimate | "
              "mean input firing rate |",
              "|---|---|---|---|---|---|---|"]
    for r in energy_rows(result):
        gpu = ("n/a" if r["gpu_stc_total_mj"] is None else
               f"{r['gpu_stc_total_mj']:.4g} / {r['gpu_stc_dynamic_mj']:.4g}")
        fr = r["mean_in_firing_rate"]
        lines.append(
            f"| {r['model']} | {gpu} | {_fmt_mj(r['gpu_baseline_total_mj'])} | "
            f"{_fmt_mj(r['loihi1_mj'])} | {_fmt_mj(r['loihi2_low_mj'])} - "
            f"{_fmt_mj(r['loihi2_high_mj'])} | {_fmt_mj(r['formula_mj'])} | "
            f"{'n/a' if fr is None else f'{fr:.3f}'} |")
    lines += ["", "Labels and sources:", "",
              "- GPU: MEASURED with the energy counter (NVML nvmlDeviceGetTotalEnergyConsumption "
              "or Zeus), warm-up, >= several seconds back to back, counter difference / "
              "inferences; dynamic = total minus idle power x time.",
              "- Loihi 1: ESTIMATE from counted operations x Davies et al., IEEE Micro 2018, "
              "Table 2 (Loihi 1, pre-silicon, 14 nm); static ~104 mW/chip (3.34 W / 32 chips, "
              f"Frady 2020) charged only with a mapping's chip count, at an ASSUMED timestep "
              f"of {cfg['loihi_timestep_s']:g} s.",
              "- Loihi 2: BOUND from Hala Point's announced system figures (> 15 TOPS/W 8-bit; "
              "380T synaptic ops/s at 2,600 W max), not a per-op model (Intel published none).",
              f"- Formula: ESTIMATE E = E_MAC x FL_enc{' x T' if cfg['encoding_times_T'] else ''}"
              f" + E_AC x SUM SOP, {cfg['precision']} (Horowitz ISSCC 2014); ignores memory "
              "access (arXiv 2505.11151).", ""]
    missing = list(result.get("missing", []))
    for name, m in result["models"].items():
        missing += [f"{name}: {why}" for why in m.get("missing", [])]
    if missing:
        lines += ["## Missing figures", ""] + [f"- {w}" for w in missing] + [""]
    return "\n".join(lines)


def plot_throughput(result: dict, path: Path) -> None:
    """samples/s vs batch size with min..max error bars, and a speedup panel."""
    from .plots import throughput_figure

    throughput_figure(result, path)


def plot_energy(result: dict, path: Path) -> None:
    """Energy per inference per model, Loihi 2 as one range bar, GPU only where measured."""
    from .plots import energy_figure

    cfg = result["config"]
    gpu = any(r["gpu_stc_total_mj"] for r in energy_rows(result))
    energy_figure(energy_rows(result), path,
                  title=f"Energy per inference, {cfg['img_size']}x{cfg['img_size']}, "
                        f"T={cfg['T']}: estimates" + (" and GPU measurements" if gpu else ""),
                  note="" if gpu else "GPU energy not measured here (no GPU); "
                       "device: " + result["environment"]["device"])


def write_report(result: dict, out_dir: str | Path, *, command: str,
                 stem: str = "e2e") -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and the two PNGs to ``out_dir``; return their paths.

    Raises:
        OSError: ``out_dir`` cannot be created or written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / f"{stem}.json", "md": out / f"{stem}.md",
             "throughput_png": out / f"{stem}_throughput.png",
             "energy_png": out / f"{stem}_energy.png"}
    payload = dict(result, command=command)
    paths["json"].write_text(json.dumps(payload, indent=1, default=str) + "\n")
    md = markdown(result, command)
    md += (f"\n![throughput]({paths['throughput_png'].name})\n\n"
           f"![energy]({paths['energy_png'].name})\n")
    paths["md"].write_text(md)
    plot_throughput(result, paths["throughput_png"])
    plot_energy(result, paths["energy_png"])
    from .plots import latency_histogram

    lat = latency_histogram(result, out / f"{stem}_latency.png")
    if lat is not None:
        paths["latency_png"] = lat
        with paths["md"].open("a") as f:
            f.write(f"\n![latency]({lat.name})\n")
    return paths


def main(argv: list[str] | None = None) -> int:
    """``python -m stc.bench.report RESULT.json``: redraw the PNGs of a recorded result."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m stc.bench.report RESULT.json", file=sys.stderr)
        return 2
    src = Path(args[0])
    result = json.loads(src.read_text())
    stem = src.stem
    plot_throughput(result, src.with_name(f"{stem}_throughput.png"))
    plot_energy(result, src.with_name(f"{stem}_energy.png"))
    from .plots import latency_histogram

    latency_histogram(result, src.with_name(f"{stem}_latency.png"))
    print(f"redrew the plots of {src}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
