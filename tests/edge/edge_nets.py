"""Bundles for the edge tests: a tiny LIF MLP (float + fixed graph, self-test section), with
weights that make every layer fire, and a way to write one whose self-test must fail."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from stc.bundle import write_bundle
from stc.bundle.selftest import bundle_section, decode_tensor, encode_tensor
from stc.ir.frontends import from_torch
from stc.nn import LIF
from stc.passes import quantize

D_IN, T = 6, 4


def mlp(seed: int = 0) -> nn.Sequential:
    """Linear(6, 8) -> LIF -> Linear(8, 3) -> LIF, weights drawn so both layers fire."""
    torch.manual_seed(seed)
    m = nn.Sequential(nn.Linear(D_IN, 8), LIF(backend="torch"), nn.Linear(8, 3),
                      LIF(backend="torch"))
    with torch.no_grad():
        m[0].weight.mul_(3)
        m[0].bias.add_(0.8)
        m[2].weight.mul_(3)
        m[2].bias.add_(1.0)
    return m.eval()


def graphs(seed: int = 0):
    """(float graph, fixed graph) of ``mlp(seed)`` with T = 4."""
    g = from_torch(mlp(seed), (D_IN,), time_steps=T)
    q, _ = quantize(g, probe=torch.randint(0, 4, (8, D_IN)).float())
    return g, q


def write(path: Path, *, version: str, seed: int = 0, key=None, broken_selftest: bool = False,
          name: str = "mlp", numerics: str = "float") -> Path:
    """Write the MLP bundle; ``broken_selftest`` stores wrong reference outputs (+1), as a
    bundle built by a broken toolchain would carry."""
    g, q = graphs(seed)
    section = bundle_section(g, q)
    if broken_selftest:
        for case in section["cases"]:
            for k, t in case["outputs"].items():
                case["outputs"][k] = encode_tensor(decode_tensor(t) + 1.0, t["datatype"])
    return write_bundle(path, g, name=name, version=version, fixed_graph=q, numerics=numerics,
                        private_key=key, selftest=section)
