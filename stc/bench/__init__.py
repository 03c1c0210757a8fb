"""stc.bench: end-to-end inference benchmark (stc vs a SpikingJelly-style baseline) with
energy per inference (GPU measured, Loihi estimated, paper formula) and a Markdown/PNG report."""

from stc.bench.baseline import SpikingJellyLIF, spikingjelly_baseline
from stc.bench.report import write_report
from stc.bench.suite import BenchConfig, run_suite, small_cpu_config
from stc.bench.timing import Timing, time_calls, time_paired

__all__ = ["BenchConfig", "SpikingJellyLIF", "Timing", "run_suite", "small_cpu_config",
           "spikingjelly_baseline", "time_calls", "time_paired", "write_report"]
