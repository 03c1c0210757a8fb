"""``stc demo``: the main job on a built-in example (the same as ``make demo`` and
``python -m stc.demo``; the demo itself lives in stc/demo.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo(
    ctx: typer.Context,
    workdir: Annotated[Path, typer.Option(
        "--workdir", help="folder for checkpoints, bundles and the repository")]
    = Path("runs/demo"),
    fresh: Annotated[bool, typer.Option("--fresh", help="retrain instead of reusing")] = False,
    lava_samples: Annotated[int, typer.Option(
        "--lava-samples", min=0, help="held-out samples sent through the lava-sim device")] = 16,
    seed: Annotated[int, typer.Option("--seed", help="seed of the data split and training")]
    = 0,
) -> None:
    """Train a tiny Spikformer on sklearn's digits, bundle it, serve it over gRPC, query every
    held-out digit, and check Lava's Loihi 2 simulator against the CPU fixed-point runtime.
    Further options are passed to stc.demo unchanged."""
    from stc.demo import main

    argv = ["--workdir", str(workdir), "--lava-samples", str(lava_samples), "--seed", str(seed)]
    argv += ["--fresh"] if fresh else []
    code = main(argv + list(ctx.args))
    if code:
        raise typer.Exit(code)
