"""Dead-node elimination: drop nodes from which no Output is reachable."""

from __future__ import annotations

from stc.ir import Graph


def eliminate_dead_nodes(graph: Graph) -> tuple[Graph, list[str]]:
    """Return (new graph, removed node names). Inputs are always kept (they are part of the
    model's signature); unreferenced tensors are dropped."""
    g = graph.copy()
    live: set[str] = set()
    stack = [n.name for n in g.outputs()]
    by_name = {n.name: n for n in g.nodes}
    while stack:
        name = stack.pop()
        if name in live:
            continue
        live.add(name)
        stack.extend(by_name[name].inputs)
    removed = [n.name for n in g.nodes if n.name not in live and n.OP != "Input"]
    g.nodes = [n for n in g.nodes if n.name in live or n.OP == "Input"]
    g.prune_tensors()
    return g.verify(), removed
