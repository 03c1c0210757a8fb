"""``stc fleet``: roll bundles out to edge nodes (``stc edge agent``) listed in a nodes file.

    stc fleet deploy model.stcb --nodes nodes.toml [--canary N] [--max-failures K]
    stc fleet status --nodes nodes.toml
    stc fleet rollback MODEL --nodes nodes.toml

Each prints a per-node table (hardware, backend chosen, version, self-test, latency) or, with
``--json``, one JSON document. Exit codes: 0 every node succeeded, 1 a node failed, was
unreachable or was skipped because the roll-out stopped, 2 bad input (nodes file errors, an
unknown node, a missing bundle). See stc.edge.fleet for the nodes file and the roll-out rules.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from . import options

app = typer.Typer(help="Fleets of edge nodes: deploy, status, rollback.", no_args_is_help=True,
                  add_completion=False)

_NODES = typer.Option(..., "--nodes", help="nodes file (TOML, a table per node)")
_ONLY = typer.Option(None, "--node", help="only this node (repeatable)")
_JSON = typer.Option(False, "--json", help="machine-readable output")


def _nodes(path: str, only: list[str] | None):
    from stc.edge.fleet import load_nodes, select

    try:
        return select(load_nodes(path), only)
    except (FileNotFoundError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def _render(title: str, results, as_json: bool, extra: dict | None = None) -> None:
    if as_json:
        typer.echo(json.dumps({**(extra or {}), "nodes": [r.to_dict() for r in results]},
                              indent=1))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title)
        for col in ("node", "status", "hardware", "backend", "version", "prev", "self-test",
                    "latency ms", "message"):
            table.add_column(col, overflow="fold")
        for r in results:
            color = "green" if r.ok else ("yellow" if r.status == "skipped" else "red")
            lat = "" if math.isnan(r.latency_ms) else f"{r.latency_ms:.2f}"
            table.add_row(f"{r.node}\n{r.address}", f"[{color}]{r.status}[/{color}]",
                          r.hardware, r.backend, f"{r.model}:{r.version}" if r.model else "",
                          r.previous, r.selftest, lat, r.message)
        Console(width=160).print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command("deploy")
def deploy(
    bundle: str = typer.Argument(..., help="the .stcb bundle to roll out"),
    nodes: str = _NODES,
    canary: int = typer.Option(1, "--canary", min=0,
                               help="nodes deployed first (unless the file marks canaries)"),
    max_failures: int = typer.Option(0, "--max-failures", min=0,
                                     help="failed nodes tolerated before the roll-out stops"),
    parallel: int = typer.Option(8, "--parallel", min=1, help="nodes deployed at once"),
    device: Annotated[str | None, options.device(default_note="each node picks")] = None,
    allow_downgrade: bool = typer.Option(False, "--allow-downgrade",
                                         help="accept a version not newer than the active one"),
    only: list[str] = _ONLY,
    as_json: bool = _JSON,
) -> None:
    """Push BUNDLE to the nodes: canaries first, stop when failures pass --max-failures."""
    import time

    from stc.edge.fleet import deploy as run

    if not Path(bundle).is_file():
        typer.echo(f"error: bundle not found: {bundle}", err=True)
        raise typer.Exit(2)
    chosen = _nodes(nodes, only)
    t0 = time.perf_counter()
    results = run(bundle, chosen, canary=canary, max_failures=max_failures, parallel=parallel,
                  device=device or "", allow_downgrade=allow_downgrade)
    secs = time.perf_counter() - t0
    ok = sum(r.ok for r in results)
    _render(f"deploy {Path(bundle).name}: {ok}/{len(results)} node(s) ok in {secs:.1f} s",
            results, as_json, {"bundle": str(bundle), "seconds": secs})


@app.command("status")
def status(nodes: str = _NODES, only: list[str] = _ONLY, as_json: bool = _JSON) -> None:
    """Every node's hardware and active versions."""
    from stc.edge.fleet import status as run

    _render("fleet status", run(_nodes(nodes, only)), as_json)


@app.command("rollback")
def rollback(model: str = typer.Argument(..., help="model name"), nodes: str = _NODES,
             only: list[str] = _ONLY, as_json: bool = _JSON) -> None:
    """Make MODEL's previous version active again on the nodes."""
    from stc.edge.fleet import rollback as run

    _render(f"rollback {model}", run(model, _nodes(nodes, only)), as_json)
