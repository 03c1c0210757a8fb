"""``stc energy BUNDLE --input x.npy``: energy per inference of a bundle on given input.

Prints the papers' 45 nm formula, the Loihi 1 per-op estimate and the Loihi 2 range (Hala
Point-derived), each with its source; all are estimates from counted operations and measured
firing rates (stc.energy.graph), never measurements. Exit 2 on bad input, 1 on a failed
bundle check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from . import options
from .bundle import cli_errors


def energy(
    bundle: Annotated[Path, typer.Argument(help="the .stcb file")],
    input: Annotated[Path, typer.Option("--input", "-i", help=".npy batch-first input")],
    public_key: options.PublicKey = None,
    json_out: options.Json = False,
) -> None:
    """Estimate BUNDLE's energy per inference (one sample) on INPUT, with sources."""
    with cli_errors(check_code=1):
        import numpy as np

        from stc.bundle import read_bundle

        if not input.is_file():
            raise FileNotFoundError(f"input file not found: {input}")
        x = np.load(input, allow_pickle=False)
        b = read_bundle(bundle, public_key=public_key)
    with cli_errors(check_code=2):
        from stc.energy.graph import estimate_graph_energy

        if x.dtype != np.float32:
            x = x.astype(np.float32)
        report_member = b.extra_members.get("loihi/mapping.json")
        mapping = json.loads(report_member)["report"] if report_member else None
        rep = estimate_graph_energy(b.graph, x, mapping_report=mapping)
    if json_out:
        typer.echo(json.dumps({"bundle": str(bundle), "samples": int(x.shape[0]),
                               **rep.to_dict()}, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{b.name}: energy per inference, {x.shape[0]} sample(s) "
                    "(estimates, not measurements)")
    for col in ("model", "nJ", "source"):
        t.add_column(col, overflow="fold")
    t.add_row("paper formula, 45 nm fp32 MAC/AC", f"{rep.paper_nj:.3g}",
              "; ".join(rep.sources["paper_formula"]))
    t.add_row("Loihi 1 per-op estimate", f"{rep.loihi1_nj:.3g}", "; ".join(rep.sources["loihi1"]))
    lo, hi = rep.loihi2_nj
    t.add_row("Loihi 2 range (Hala Point)", f"{lo:.3g} - {hi:.3g}",
              "; ".join(rep.sources["loihi2"]))
    console = Console()
    console.print(t)
    if rep.cores is not None:
        console.print(f"Loihi mapping: {rep.cores} core(s) on {rep.chips} chip(s)")
    console.print(rep.note)
