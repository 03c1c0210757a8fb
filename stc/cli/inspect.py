"""``stc inspect model.stcb``: a table of the bundle's layers, neurons, synapses and hashes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from .bundle import cli_errors


def contract_lines(b) -> list[str]:
    """The bundle's input contract (stc.runtime.contract) and the fixed graph's input
    quantisation as text lines; says so when the bundle has no contract."""
    from stc.runtime.contract import contracts_of, input_scales

    contracts = contracts_of(b.graph)
    scales = input_scales(b.fixed_graph) if b.fixed_graph is not None else {}
    lines = []
    for n in b.graph.inputs():
        c = contracts.get(n.name)
        fx = (f"; fixed point takes round(x * {scales[n.name]:g})" if n.name in scales else
              "; fixed point takes integers as given" if b.fixed_graph is not None else "")
        if c is None:
            lines.append(f"input contract {n.name}: not declared (an older bundle: input is "
                         f"not checked){fx}")
            continue
        p = c["preprocessing"]
        step = "" if c["step"] is None else f", step {c['step']:g}"
        pre = (f"x = raw * {p['scale']:g} + {p['offset']:g} for raw in {p['raw_range']} "
               f"({p['description']})" if p["raw_range"] else p["description"])
        lines.append(f"input contract {n.name}: {c['dtype']} {c['shape']}, range "
                     f"{c['range']}{step}, {c['encoding']} encoding; preprocessing: {pre}{fx}")
    return lines


def inspect(
    bundle: Annotated[Path, typer.Argument(help="the .stcb file")],
    key: Annotated[Path | None, typer.Option(help="Ed25519 public key (PEM)")] = None,
) -> None:
    """Verify BUNDLE and print its manifest summary and per-layer table."""
    with cli_errors(check_code=1):
        from rich.console import Console
        from rich.table import Table

        from stc.bundle import read_bundle

        b = read_bundle(bundle, public_key=key)
    m = b.manifest
    console = Console()
    console.print(f"[bold]{b.name}[/] v{b.version}  stc {m['stc_version']}  created "
                  f"{m['created']}  T={m['time_steps']}  encoder={m['encoder']}  "
                  f"numerics={m['numerics']}{' (+ fixed graph)' if b.fixed_graph else ''}")
    for kind in ("inputs", "outputs"):
        for s in m[kind]:
            console.print(f"{kind[:-1]} {s['name']}: {s['datatype']} {s['shape']}")
    for line in contract_lines(b):
        console.print(line, highlight=False)
    q = (m.get("metadata", {}).get("passes") or {}).get("quantization") or {}
    if q.get("samples"):
        def pct(v):
            return "n/a" if v is None else f"{100 * v:.2f}%"
        console.print(f"fixed point calibrated on {q['samples']} samples: float accuracy "
                      f"{pct(q.get('accuracy_float'))}, fixed accuracy "
                      f"{pct(q.get('accuracy_fixed'))}, spike agreement "
                      f"{pct(q.get('overall_agreement'))}", highlight=False)
    g = b.fixed_graph or b.graph
    table = Table(title=f"layers ({'fixed' if b.fixed_graph else 'float'} graph)")
    for col in ("node", "op", "shape", "neurons", "synapses", "params"):
        table.add_column(col, no_wrap=True)
    table.add_column("attributes", overflow="fold")
    tot_n = tot_s = 0
    for n in g.nodes:
        neurons = math.prod(n.shape) if n.SPIKING else 0
        w = g.param(n, "weight") if "weight" in n.params else None
        synapses = int((w != 0).sum()) if w is not None else 0
        params = sum(g.tensors[k].numel() for k in n.params.values())
        tot_n, tot_s = tot_n + neurons, tot_s + synapses
        attrs = ", ".join(f"{k}={v}" for k, v in n.attrs().items())
        table.add_row(n.name, n.OP, str(list(n.shape)), str(neurons or ""),
                      str(synapses or ""), str(params or ""), attrs)
    console.print(table)
    console.print(f"total: {tot_n} neurons, {tot_s} synapses (non-zero weights), "
                  f"{b.graph.num_parameters()} float parameters")
    mt = Table(title="members")
    mt.add_column("member")
    mt.add_column("bytes")
    mt.add_column("sha256", overflow="fold")
    for name, info in m["members"].items():
        mt.add_row(name, str(info["size"]), info["sha256"])
    console.print(mt)
    console.print("signature: " + ("verified" if b.verified else
                                   "present (pass --key to check)" if b.signed else "none"))
