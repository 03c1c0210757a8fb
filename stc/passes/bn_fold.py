"""Batch-norm folding: merge an inference BatchNorm into the Conv2d/Linear that feeds it.

For per-channel scale g = gamma / sqrt(running_var + eps):
    W' = W * g[:, None, ...],   b' = (b - running_mean) * g + beta
(Ioffe & Szegedy 2015, eq. in Alg. 2; Jacob et al., CVPR 2018, sec. 3.2).
"""

from __future__ import annotations

import torch

from stc.ir import Graph


def fold_batchnorm(graph: Graph) -> tuple[Graph, list[str]]:
    """Return (new graph, names of the folded BatchNorm nodes). The input is not modified.

    A BatchNorm is folded when its input is a Conv2d (BN over axis 0) or a Linear (BN over the
    last axis, e.g. tokens [N, D]) read by nothing else. Other BatchNorms stay (the float
    runtime still runs them).
    """
    g = graph.copy()
    folded = []
    for bn in [n for n in g.nodes if n.OP == "BatchNorm"]:
        src = g.node(bn.inputs[0])
        if src.OP not in ("Conv2d", "Linear") or len(g.consumers(src.name)) != 1:
            continue
        if (bn.axis % len(bn.shape)) != (len(bn.shape) - 1 if src.OP == "Linear" else 0):
            continue  # BN must normalise the layer's output channels
        mean, var = g.param(bn, "running_mean").double(), g.param(bn, "running_var").double()
        gamma, beta = g.param(bn, "weight"), g.param(bn, "bias")
        gamma = torch.ones_like(mean) if gamma is None else gamma.double()
        beta = torch.zeros_like(mean) if beta is None else beta.double()
        scale = gamma / torch.sqrt(var + bn.eps)
        w = g.param(src, "weight")
        b = g.param(src, "bias")
        b = torch.zeros_like(mean) if b is None else b.double()
        shape = (-1,) + (1,) * (w.dim() - 1)
        new_w = (w.double() * scale.reshape(shape)).to(w.dtype)
        new_b = ((b - mean) * scale + beta).to(w.dtype)
        g.tensors[f"{src.name}.weight"] = new_w
        g.tensors[f"{src.name}.bias"] = new_b
        src.params["weight"], src.params["bias"] = f"{src.name}.weight", f"{src.name}.bias"
        g.remove(bn.name)
        folded.append(bn.name)
    g.prune_tensors()
    return g.verify(), folded
