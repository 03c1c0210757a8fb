"""``stc inspect model.stcb``: a table of the bundle's layers, neurons, synapses and hashes."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer

from . import options
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
    public_key: options.PublicKey = None,
    json_out: options.Json = False,
    key: Annotated[Path | None, options.deprecated("--key", "--public-key")] = None,
) -> None:
    """Verify BUNDLE and print its manifest summary, per-layer table and Loihi mapping."""
    key = options.pick(public_key, key)
    with cli_errors(check_code=1):
        from rich.console import Console
        from rich.table import Table

        from stc.bundle import read_bundle

        b = read_bundle(bundle, public_key=key)
    m = b.manifest
    if json_out:
        import json

        typer.echo(json.dumps(bundle_summary(b), indent=1, default=str))
        return
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
    table.add_column("node", overflow="fold")
    for col in ("op", "shape", "neurons", "synapses", "params"):  # never cut a header
        table.add_column(col, no_wrap=True, min_width=len(col))
    wide = console.width >= 110  # narrower terminals: attributes only in --json
    if wide:
        table.add_column("attributes", overflow="fold", min_width=12)
    else:
        table.caption = "node attributes: stc inspect --json (or a wider terminal)"
    tot_n = tot_s = 0
    for n in g.nodes:
        neurons = math.prod(n.shape) if n.SPIKING else 0
        w = g.param(n, "weight") if "weight" in n.params else None
        synapses = int((w != 0).sum()) if w is not None else 0
        params = sum(g.tensors[k].numel() for k in n.params.values())
        tot_n, tot_s = tot_n + neurons, tot_s + synapses
        attrs = ", ".join(f"{k}={v}" for k, v in n.attrs().items())
        table.add_row(n.name, n.OP, str(list(n.shape)), str(neurons or ""),
                      str(synapses or ""), str(params or ""), *([attrs] if wide else []))
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
    loihi = mapping_summary(b)
    if loihi is not None:
        console.print("Loihi 2 mapping: " + (loihi["note"] if "note" in loihi else (
            f"{loihi['cores_used']} core(s) on {loihi['chips_used']} of "
            f"{loihi['chips_available']} chip(s) ({loihi['chip_config']}), mean neuron "
            f"utilisation per core {loihi['mean_neuron_utilisation']:.1%}, "
            f"{'runs in Lava' if loihi['executable'] else 'placement plan only'}")))
    console.print("signature: " + ("verified" if b.verified else
                                   "present (pass --public-key to check)" if b.signed else "none"))


def mapping_summary(b) -> dict | None:
    """The Loihi 2 mapping a bundle carries (loihi/mapping.json): cores, chips, utilisation;
    {"note": reason} when it was not mapped; None without a fixed graph."""
    import json

    raw = b.extra_members.get("loihi/mapping.json")
    if raw is None:
        why = b.manifest.get("metadata", {}).get("loihi")
        return {"note": why} if why else None
    doc = json.loads(raw)
    rep = doc.get("report", {})
    return {"chip_config": doc.get("chip_config"), "executable": doc.get("executable"),
            "chips_available": rep.get("chips_available"), "chips_used": rep.get("chips_used"),
            "cores_used": rep.get("cores_used"),
            "mean_neuron_utilisation": rep.get("mean_neuron_utilisation", 0.0),
            "host_layers": rep.get("host_layers", [])}


def bundle_summary(b) -> dict:
    """JSON-ready view of a verified bundle (what ``stc inspect --json`` prints)."""
    m = b.manifest
    g = b.fixed_graph or b.graph
    layers = []
    for n in g.nodes:
        w = g.param(n, "weight") if "weight" in n.params else None
        layers.append({"node": n.name, "op": n.OP, "shape": list(n.shape),
                       "neurons": math.prod(n.shape) if n.SPIKING else 0,
                       "synapses": int((w != 0).sum()) if w is not None else 0,
                       "params": sum(g.tensors[k].numel() for k in n.params.values()),
                       "attributes": n.attrs()})
    return {"name": b.name, "version": b.version, "stc_version": m["stc_version"],
            "created": m["created"], "timesteps": m["time_steps"], "encoder": m["encoder"],
            "numerics": m["numerics"], "fixed_graph": b.fixed_graph is not None,
            "inputs": m["inputs"], "outputs": m["outputs"], "layers": layers,
            "total_neurons": sum(x["neurons"] for x in layers),
            "total_synapses": sum(x["synapses"] for x in layers),
            "float_parameters": b.graph.num_parameters(),
            "members": m["members"], "loihi_mapping": mapping_summary(b),
            "signature": "verified" if b.verified else "present" if b.signed else "none"}
