"""Plots people look at: throughput with error bars and a speedup panel, energy with Loihi 2
as a range, latency histograms, training curves, per-layer firing rates, float vs fixed
accuracy. Each function writes one PNG (matplotlib, Agg backend) and returns its path.

Every title names the device, the torch threads and the load average when the result carries
them; every estimate is labelled as one.
"""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def machine_line(env: dict) -> str:
    """ "CPU: x86_64, 1 torch thread, 2 CPUs, load 8.7 (shared)" from a result's environment."""
    parts = [env.get("device", "?")]
    if env.get("torch_threads") is not None:
        n = env["torch_threads"]
        parts.append(f"{n} torch thread{'s' if n != 1 else ''}")
    if env.get("cpu_count") is not None:
        parts.append(f"{env['cpu_count']} CPUs")
    if env.get("load_average_1min_at_start") is not None:
        parts.append(f"load {env['load_average_1min_at_start']} at start (shared machine)")
    return ", ".join(parts)


def _thr(row: dict, key: str) -> tuple[float, float, float]:
    """(low, median, high) samples/s from min/median/max latency (p90 if no max)."""
    t = row[key]
    b = row["batch"]
    slow = t.get("max_ms", t.get("p90_ms"))
    return b * 1e3 / slow, b * 1e3 / t["median_ms"], b * 1e3 / t["min_ms"]


def throughput_figure(result: dict, path: str | Path) -> Path:
    """Two panels: samples/s vs batch size (median, error bars min..max latency; stc solid,
    baseline dashed) and the speedup baseline/stc (median) per batch size."""
    plt = _plt()
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    fig, (ax, sp) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120,
                                 gridspec_kw={"width_ratios": [1.6, 1]})
    batches = sorted({r["batch"] for m in result["models"].values() for r in m["rows"]})
    for i, (name, m) in enumerate(result["models"].items()):
        c = f"C{i}"
        b = [r["batch"] for r in m["rows"]]
        for key, style, lab in (("stc", "o-", "stc"), ("baseline", "s--", "SpikingJelly")):
            lo, med, hi = zip(*(_thr(r, key) for r in m["rows"]))
            ax.errorbar(b, med, yerr=[[md - a for a, md in zip(lo, med)],
                                      [h - md for h, md in zip(hi, med)]],
                        fmt=style, color=c, alpha=1.0 if key == "stc" else 0.6, capsize=3,
                        ms=4, lw=1.4, label=f"{name}: {lab}")
        sp.plot(b, [r["speedup"] for r in m["rows"]], "o-", color=c, label=name)
        for x, r in zip(b, m["rows"]):
            sp.annotate(f"{r['speedup']:.2f}x", (x, r["speedup"]), textcoords="offset points",
                        xytext=(12 * (i - 1), 6 + 4 * i), ha="center", fontsize=6, color=c)
    for a in (ax, sp):
        a.set_xscale("log", base=2)
        a.xaxis.set_major_locator(FixedLocator(batches))
        a.xaxis.set_major_formatter(ScalarFormatter())
        a.xaxis.set_minor_locator(NullLocator())
        a.set_xlabel("batch size")
        a.grid(True, alpha=0.3)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(ScalarFormatter())
    ax.tick_params(axis="y", which="minor", labelsize=7)
    has_max = all("max_ms" in r["stc"] for m in result["models"].values() for r in m["rows"])
    ax.set_ylabel("samples/s (median; bars: " + ("fastest..slowest call)" if has_max else
                                                  "fastest call..p90)"))
    ax.legend(fontsize=7, ncol=1)
    sp.axhline(1.0, color="k", lw=0.8, ls=":")
    sp.set_ylabel("speedup = baseline / stc (median latency)")
    sp.set_title("speedup over PyTorch + SpikingJelly", fontsize=9)
    sp.legend(fontsize=7)
    cfg = result["config"]
    fig.suptitle(f"Inference throughput, {cfg['img_size']}x{cfg['img_size']} input, "
                 f"T={cfg['T']}\n{machine_line(result['environment'])}", fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def energy_figure(rows: list[dict], path: str | Path, *, title: str, note: str = "") -> Path:
    """Horizontal bars of energy per inference (mJ, log scale) per model: the paper formula,
    the Loihi 1 estimate, the Loihi 2 bound as ONE range bar (low..high) and GPU measured
    only where it was measured. ``rows``: ``stc.bench.report.energy_rows``."""
    plt = _plt()
    import numpy as np

    kinds = [("formula_mj", "paper formula (45 nm, estimate)", "C4"),
             ("loihi1_mj", "Loihi 1 per-op (estimate)", "C1"),
             ("loihi2", "Loihi 2 range (Hala Point bound)", "C2"),
             ("gpu_stc_total_mj", "GPU measured (stc)", "C0")]
    present = [k for k in kinds if any(
        (r.get("loihi2_high_mj") if k[0] == "loihi2" else r.get(k[0])) for r in rows)]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.9 * len(rows) * max(1, len(present)) / 2),
                           dpi=120)
    h = 0.8 / max(1, len(present))
    allv = [r.get(k) for r in rows for k in ("formula_mj", "loihi1_mj", "loihi2_low_mj",
                                              "loihi2_high_mj", "gpu_stc_total_mj")]
    allv = [v for v in allv if v]
    floor = min(allv) / 3 if allv else 1e-6
    vals = []
    for i, r in enumerate(rows):
        for j, (key, label, color) in enumerate(present):
            y = i + (j - (len(present) - 1) / 2) * h
            lab = label if i == 0 else None
            if key == "loihi2":
                lo, hi = r.get("loihi2_low_mj"), r.get("loihi2_high_mj")
                if lo and hi:
                    ax.barh(y, hi - lo, left=lo, height=h * 0.9, color=color, label=lab,
                            alpha=0.85)
                    ax.text(hi * 1.08, y, f"{lo:.2g} - {hi:.2g}", va="center", fontsize=7)
                    vals += [lo, hi]
                continue
            v = r.get(key)
            if v:
                ax.barh(y, v - floor, height=h * 0.9, color=color, label=lab, left=floor)
                ax.text(v * 1.08, y, f"{v:.2g}", va="center", fontsize=7)
                vals.append(v)
    ax.set_xscale("log")
    if vals:
        ax.set_xlim(floor, max(vals) * 8)
    ax.set_yticks(np.arange(len(rows)))
    ax.set_yticklabels([r["model"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("energy per inference, one sample, all T steps (mJ, log scale)")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title(title + ("\n" + note if note else ""), fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def latency_histogram(result: dict, path: str | Path, batch: int | None = None) -> Path | None:
    """Histogram of per-call latency (ms) of stc and the baseline at one batch size (the
    smallest by default), one panel per model; None when the result kept no samples."""
    plt = _plt()
    models = [(n, m) for n, m in result["models"].items()
              if any(r["stc"].get("samples_ms") for r in m["rows"])]
    if not models:
        return None
    fig, axes = plt.subplots(1, len(models), figsize=(4 * len(models), 3.2), dpi=120,
                             squeeze=False)
    for ax, (name, m) in zip(axes[0], models):
        rows = {r["batch"]: r for r in m["rows"]}
        r = rows[batch if batch in rows else min(rows)]
        import numpy as np

        both = list(r["stc"]["samples_ms"]) + list(r["baseline"]["samples_ms"])
        edges = np.histogram_bin_edges(both, bins=min(20, max(6, len(both) // 2)))
        for key, color, lab in (("stc", "C0", "stc"), ("baseline", "C3", "SpikingJelly")):
            s = r[key]["samples_ms"]
            ax.hist(s, bins=edges, alpha=0.55, color=color,
                    label=f"{lab}: median {r[key]['median_ms']:.1f} ms")
            ax.axvline(r[key]["median_ms"], color=color, lw=1)
        ax.set_title(f"{name}, batch {r['batch']}", fontsize=8)
        ax.set_xlabel("latency per call (ms)")
        ax.set_ylabel("calls")
        ax.legend(fontsize=7)
    fig.suptitle(f"Latency distribution\n{machine_line(result['environment'])}", fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def training_curves(history: list[dict], path: str | Path, *, title: str,
                    test_accuracy: float | None = None) -> Path:
    """Loss per epoch (left axis) and validation accuracy (right axis, %), the kept epoch
    marked; ``history``: ``TrainResult.history`` records."""
    plt = _plt()
    ep = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6.5, 3.8), dpi=120)
    ax.plot(ep, [h["loss"] for h in history], "o-", color="C0", label="training loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy (training)", color="C0")
    ax.set_xticks(ep)
    ax.grid(True, alpha=0.3)
    handles = ax.get_legend_handles_labels()[0]
    if any(h["val_accuracy"] is not None for h in history):
        ax2 = ax.twinx()
        acc = [None if h["val_accuracy"] is None else 100 * h["val_accuracy"] for h in history]
        handles += ax2.plot(ep, acc, "s-", color="C2", label="validation accuracy")
        best = [h for h in history if h.get("best")]
        if best:
            b = max(best, key=lambda h: h["epoch"])
            handles += ax2.plot([b["epoch"]], [100 * b["val_accuracy"]], "*", ms=14,
                                color="C3", label=f"kept: epoch {b['epoch']}")
        if test_accuracy is not None:
            handles.append(ax2.axhline(100 * test_accuracy, color="C3", ls=":", lw=1,
                                       label=f"held-out test {100 * test_accuracy:.2f}%"))
        ax2.set_ylabel("accuracy (%)", color="C2")
        ax2.set_ylim(0, 100)
    ax.legend(handles=handles, fontsize=7, loc="center right")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def firing_rates_figure(rates: dict[str, float], path: str | Path, *, title: str) -> Path:
    """Horizontal bars of the output firing rate (spikes per neuron per step) of each layer,
    in network order."""
    plt = _plt()
    names = list(rates)
    fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.28 * len(names)), dpi=120)
    vals = [rates[n] for n in names]
    ax.barh(range(len(names)), vals, color="C0")
    for i, v in enumerate(vals):
        ax.text(v + max(vals) * 0.01, i, f"{v:.3f}", va="center", fontsize=7)
    ax.set_yticks(range(len(names)))
    ax.set_yticklabels(names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, max(vals) * 1.15 if max(vals) > 0 else 1)
    ax.set_xlabel("firing rate (spikes per neuron per timestep)")
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


def float_fixed_figure(models: list[dict], path: str | Path, *, title: str) -> Path:
    """Grouped bars of held-out accuracy per model: float runtime, fixed point (CPU) and
    lava-sim; the fixed - float difference annotated. ``models``: dicts with ``model``,
    ``accuracy_float_runtime``, ``accuracy_fixed_runtime``, ``accuracy_lava_sim``."""
    plt = _plt()
    import numpy as np

    kinds = [("accuracy_float_runtime", "float (CPU runtime)", "C0"),
             ("accuracy_fixed_runtime", "Loihi fixed point (CPU runtime)", "C1"),
             ("accuracy_lava_sim", "lava-sim (Loihi 2 simulator)", "C2")]
    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=120)
    x = np.arange(len(models))
    w = 0.8 / len(kinds)
    lows = []
    for j, (key, label, color) in enumerate(kinds):
        v = [100 * m[key] if m.get(key) is not None else np.nan for m in models]
        lows += [a for a in v if a == a]
        ax.bar(x + (j - 1) * w, v, w, label=label, color=color)
        for xi, a in zip(x + (j - 1) * w, v):
            if a == a:
                ax.text(xi, a + 0.1, f"{a:.2f}", ha="center", va="bottom", fontsize=6,
                        rotation=90)
    ax.set_xticks(x)
    ax.set_xticklabels([
        f"{m['model']}\nfixed - float: "
        f"{100 * (m['accuracy_fixed_runtime'] - m['accuracy_float_runtime']):+.2f} pts"
        for m in models], fontsize=8)
    ax.set_ylim(min(lows) - 2, 101.5)
    ax.set_ylabel("held-out accuracy (%)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", ncol=3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out
