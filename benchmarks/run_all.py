"""Run every benchmark suite once, in one job, on this machine (``make bench``).

Each suite writes JSON + Markdown with device, versions and command into benchmarks/results/.
On a machine without CUDA the suites run their small CPU configurations and label the figures
as CPU figures. Usage: ``python -m benchmarks.run_all [--only lif,attention,...]``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

SUITES = {
    "lif": [sys.executable, "benchmarks/lif/bench_lif.py", "--quick"],
    "attention": [sys.executable, "benchmarks/attention/bench_attention.py"],
    "server": [sys.executable, "-m", "benchmarks.server.bench_server"],
    "lava": [sys.executable, "benchmarks/lava/bench_lava.py",
             "--out", "benchmarks/results/lava_sim_vs_runtime_cpu.json"],
    "e2e": [sys.executable, "-m", "stc.cli.main", "bench"],
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen suites in order; returns 1 if any failed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", default=",".join(SUITES),
                        help=f"comma-separated subset of {', '.join(SUITES)}")
    args = parser.parse_args(argv)
    chosen = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; expected some of {list(SUITES)}")
    failed = []
    for name in chosen:
        print(f"=== {name}: {' '.join(SUITES[name][1:])}", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call(SUITES[name])
        print(f"=== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"failed suites: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
