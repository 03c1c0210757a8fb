"""Redraw the plots of recorded results in benchmarks/results (no new measurements).

    python -m benchmarks.plots_recorded

Writes e2e_cpu_throughput.png / e2e_cpu_energy.png (from e2e_cpu.json) and
float_vs_fixed_cpu.png (from the lava_heldout_*_cpu.json files) next to their sources.
"""

from __future__ import annotations

import json
from pathlib import Path

from stc.bench import plots, report

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    e2e = json.loads((RESULTS / "e2e_cpu.json").read_text())
    report.plot_throughput(e2e, RESULTS / "e2e_cpu_throughput.png")
    report.plot_energy(e2e, RESULTS / "e2e_cpu_energy.png")
    models = []
    for name in ("lava_heldout_exactness_cpu.json", "lava_heldout_transformer_cpu.json"):
        models += json.loads((RESULTS / name).read_text())["models"]
    plots.float_fixed_figure(
        models, RESULTS / "float_vs_fixed_cpu.png",
        title="Held-out digits (360): float vs Loihi fixed point vs lava-sim\n"
              "recorded on a shared 2-core CPU (lava_heldout_*_cpu.json)")
    print("wrote", ", ".join(p.name for p in sorted(RESULTS.glob("*.png"))))


if __name__ == "__main__":
    main()
