"""Magnitude pruning: zero the smallest-magnitude weights of every Conv2d/Linear layer.

Per layer, weights with |w| below the ``sparsity`` quantile of |w| are set to 0 (Han et al.,
"Learning both weights and connections", NeurIPS 2015). Fewer synapses mean fewer SOPs and,
on Loihi, fewer synaptic memory words.
"""

from __future__ import annotations

import torch

from stc.ir import Graph


def prune_magnitude(graph: Graph, sparsity: float) -> tuple[Graph, dict[str, float]]:
    """Return (new graph, layer name -> achieved fraction of zero weights).

    Raises:
        ValueError: sparsity outside [0, 1).
    """
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)) \
            or not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be a number in [0, 1), got {sparsity!r}")
    g = graph.copy()
    report = {}
    for n in g.nodes:
        if n.OP not in ("Conv2d", "Linear"):
            continue
        w = g.param(n, "weight")
        k = int(sparsity * w.numel())
        if k > 0:
            thresh = w.abs().flatten().kthvalue(k).values
            w = torch.where(w.abs() <= thresh, torch.zeros_like(w), w)
            g.tensors[n.params["weight"]] = w
        report[n.name] = float((w == 0).float().mean())
    return g, report
