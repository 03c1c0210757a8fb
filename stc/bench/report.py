"""Write a benchmark result (``stc.bench.suite.run_suite``) as JSON, Markdown and PNG plots.

Files (in ``out_dir``, prefixed by ``stem``): ``<stem>.json`` (everything), ``<stem>.md``
(tables with device, versions and the command), ``<stem>_throughput.png`` (samples/s vs batch
size, stc solid, baseline dashed) and ``<stem>_energy.png`` (energy per inference in mJ, log
scale: GPU measured, Loihi 1 estimate, Loihi 2 bound, paper formula; every bar labelled).
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
    """samples/s vs batch size (log-log), stc solid, baseline dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for i, (name, m) in enumerate(result["models"].items()):
        color = f"C{i}"
        b = [r["batch"] for r in m["rows"]]
        ax.plot(b, [r["stc"]["throughput_per_s"] for r in m["rows"]], "o-", color=color,
                label=f"{name} (stc)")
        ax.plot(b, [r["baseline"]["throughput_per_s"] for r in m["rows"]], "s--", color=color,
                alpha=0.7, label=f"{name} (SpikingJelly baseline)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("throughput (samples/s)")
    cfg = result["config"]
    ax.set_title(f"Inference throughput, {cfg['img_size']}x{cfg['img_size']}, T={cfg['T']}\n"
                 f"{result['environment']['device']}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_energy(result: dict, path: Path) -> None:
    """Grouped bars of energy per inference (mJ, log scale); missing kinds are marked n/a."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [("gpu_stc_total_mj", "GPU measured (stc, total)"),
             ("loihi1_mj", "Loihi 1 estimate (Davies 2018)"),
             ("loihi2_high_mj", "Loihi 2 bound, high (Hala Point)"),
             ("loihi2_low_mj", "Loihi 2 bound, low (Hala Point)"),
             ("formula_mj", "paper formula estimate")]
    rows = energy_rows(result)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    width = 0.8 / len(kinds)
    positives = [r[k] for r in rows for k, _ in kinds if r[k]]
    floor = min(positives) / 10 if positives else 1e-6
    for j, (key, label) in enumerate(kinds):
        xs = [i + (j - (len(kinds) - 1) / 2) * width for i in range(len(rows))]
        vals = [r[key] if r[key] else 0.0 for r in rows]
        ax.bar(xs, vals, width, label=label, color=f"C{j}")
        for x, v in zip(xs, vals):
            ax.text(x, max(v, floor) * 1.1, "n/a" if v == 0 else f"{v:.2g}", ha="center",
                    va="bottom", fontsize=6, rotation=90)
    ax.set_yscale("log")
    ax.set_ylim(bottom=floor)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r["model"] for r in rows], fontsize=8)
    ax.set_ylabel("energy per inference (mJ)")
    cfg = result["config"]
    ax.set_title(f"Energy per inference, {cfg['img_size']}x{cfg['img_size']}, T={cfg['T']} "
                 f"(GPU: measured; Loihi, formula: estimates)\n"
                 f"{result['environment']['device']}", fontsize=9)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


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
    return paths
