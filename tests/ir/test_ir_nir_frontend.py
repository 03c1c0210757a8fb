"""NIR frontend: graphs in snnTorch's export convention run in stc like snnTorch's own
simulation; unmappable nodes are listed.

snnTorch 1.0's ``export_to_nir`` needs ``nirtorch``, which is not installed here, so the NIR
graph is built with the ``nir`` package using exactly the formulas of snnTorch's exporter
(snntorch/export_nir.py: tau = dt / (1 - beta), r = tau / dt, v_leak = 0, v_reset = 0) and
written/read through a real NIR HDF5 file.
"""

import nir
import numpy as np
import pytest
import snntorch as snn
import torch
from torch import nn

from stc.errors import MappingError
from stc.ir.frontends import from_nir, load_nir
from stc.runtime import execute

DT = 1e-4


def lif_node(beta: float, n: int, th: float = 1.0) -> nir.LIF:
    tau = np.full(n, DT / (1 - beta), dtype=np.float32)
    return nir.LIF(tau=tau, r=tau / DT, v_leak=np.zeros(n, np.float32),
                   v_threshold=np.full(n, th, np.float32), v_reset=np.zeros(n, np.float32))


def affine(lin: nn.Linear) -> nir.Affine:
    return nir.Affine(weight=lin.weight.detach().numpy(), bias=lin.bias.detach().numpy())


def test_snntorch_leaky_network_matches(tmp_path):
    torch.manual_seed(0)
    l1, l2 = nn.Linear(6, 5), nn.Linear(5, 3)
    b1, b2 = 0.8, 0.9
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([6])}), "fc1": affine(l1),
               "lif1": lif_node(b1, 5), "fc2": affine(l2), "lif2": lif_node(b2, 3, 0.5),
               "output": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "fc1"), ("fc1", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
               ("lif2", "output")])
    nir.write(tmp_path / "net.nir", graph)
    g = load_nir(tmp_path / "net.nir", dt=DT)
    x = torch.rand(25, 2, 6) * 3
    got = execute(g, {"input": x}).outputs["output"]
    # snnTorch's own simulation; reset to zero (NIR's hard reset), no reset delay
    n1 = snn.Leaky(beta=b1, reset_mechanism="zero", reset_delay=False)
    n2 = snn.Leaky(beta=b2, threshold=0.5, reset_mechanism="zero", reset_delay=False)
    m1, m2 = n1.reset_mem(), n2.reset_mem()
    out = []
    with torch.no_grad():
        for t in range(25):
            s1, m1 = n1(l1(x[t]), m1)
            s2, m2 = n2(l2(s1), m2)
            out.append(s2)
    want = torch.stack(out)
    assert want.sum() > 0
    assert torch.equal(got, want)


def test_snntorch_synaptic_matches():
    torch.manual_seed(1)
    lin = nn.Linear(4, 3)
    alpha, beta = 0.7, 0.85
    n = 3
    tau_syn = np.full(n, DT / (1 - alpha), np.float32)
    tau_mem = np.full(n, DT / (1 - beta), np.float32)
    cuba = nir.CubaLIF(tau_syn=tau_syn, tau_mem=tau_mem, r=tau_mem / DT,
                       v_leak=np.zeros(n, np.float32), v_threshold=np.ones(n, np.float32),
                       v_reset=np.zeros(n, np.float32), w_in=tau_syn / DT)
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([4])}), "fc": affine(lin),
               "cuba": cuba, "output": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "fc"), ("fc", "cuba"), ("cuba", "output")])
    g = from_nir(graph, dt=DT)
    x = torch.rand(20, 2, 4) * 2
    got = execute(g, {"input": x}).outputs["output"]
    neuron = snn.Synaptic(alpha=alpha, beta=beta, reset_mechanism="zero", reset_delay=False)
    syn, mem = neuron.reset_mem()
    out = []
    with torch.no_grad():
        for t in range(20):
            s, syn, mem = neuron(lin(x[t]), syn, mem)
            out.append(s)
    want = torch.stack(out)
    assert want.sum() > 0
    torch.testing.assert_close(got, want, rtol=0, atol=0)


class Spiral:  # a node type stc does not know
    pass


class Helix:
    pass


def test_unmappable_nodes_are_listed():
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([2])}),
               "d": Spiral(), "th": Helix(),
               "output": nir.Output(output_type={"output": np.array([2])})},
        edges=[("input", "d"), ("d", "th"), ("th", "output")], type_check=False)
    with pytest.raises(MappingError, match=r"d \(Spiral\), th \(Helix\)"):
        from_nir(graph, dt=DT)


def test_dt_is_required_and_checked():
    graph = nir.NIRGraph(nodes={"input": nir.Input(input_type={"input": np.array([2])}),
                                "lif": lif_node(0.5, 2),
                                "output": nir.Output(output_type={"output": np.array([2])})},
                         edges=[("input", "lif"), ("lif", "output")])
    with pytest.raises(ValueError, match="dt"):
        from_nir(graph, dt=0.0)
    with pytest.raises(MappingError, match="dt"):
        from_nir(graph, dt=1.0)  # dt > tau: unstable Euler step


def test_conv_pool_flatten_scale_if_li_against_formulas():
    """Conv2d -> SumPool2d -> Flatten -> Scale -> Affine -> IF, and a LI readout, against a
    direct torch evaluation of NIR's equations with forward Euler at dt."""
    import torch.nn.functional as F

    rng = np.random.default_rng(0)
    w = rng.normal(size=(2, 1, 3, 3)).astype(np.float32)
    cb = rng.normal(size=2).astype(np.float32)
    aw = rng.normal(size=(3, 8)).astype(np.float32)
    ab = rng.normal(size=3).astype(np.float32)
    scale = rng.uniform(0.5, 2, size=8).astype(np.float32)
    r_if = np.full(3, 400.0, np.float32)
    v_th = np.full(3, 0.8, np.float32)
    tau_li = np.full(3, 5e-3, np.float32)
    dt = 1e-3
    graph = nir.NIRGraph(
        nodes={"input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
               "conv": nir.Conv2d(input_shape=(4, 4), weight=w, stride=1, padding=1,
                                  dilation=1, groups=1, bias=cb),
               "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                                     padding=np.array([0, 0])),
               "flat": nir.Flatten(input_type={"input": np.array([2, 2, 2])}, start_dim=0),
               "scale": nir.Scale(scale=scale),
               "fc": nir.Affine(weight=aw, bias=ab),
               "if": nir.IF(r=r_if, v_threshold=v_th, v_reset=np.zeros(3, np.float32)),
               "li": nir.LI(tau=tau_li, r=np.ones(3, np.float32), v_leak=np.zeros(3, np.float32)),
               "out_s": nir.Output(output_type={"output": np.array([3])}),
               "out_v": nir.Output(output_type={"output": np.array([3])})},
        edges=[("input", "conv"), ("conv", "pool"), ("pool", "flat"), ("flat", "scale"),
               ("scale", "fc"), ("fc", "if"), ("if", "out_s"), ("fc", "li"), ("li", "out_v")])
    g = from_nir(graph, dt=dt)
    x = torch.rand(6, 2, 1, 4, 4)
    res = execute(g, {"input": x}).outputs
    cur = []
    for t in range(6):
        y = F.conv2d(x[t], torch.from_numpy(w), torch.from_numpy(cb), padding=1)
        y = F.avg_pool2d(y, 2) * 4
        y = y.flatten(1) * torch.from_numpy(scale)
        cur.append(y @ torch.from_numpy(aw).T + torch.from_numpy(ab))
    v_if = torch.zeros(2, 3)
    v_li = torch.zeros(2, 3)
    spikes, vs = [], []
    for t in range(6):
        v_if = v_if + dt * 400.0 * cur[t]
        s = v_if > 0.8
        v_if = torch.where(s, torch.zeros_like(v_if), v_if)
        spikes.append(s.float())
        v_li = v_li + dt / 5e-3 * (-v_li + cur[t])
        vs.append(v_li)
    assert torch.stack(spikes).sum() > 0
    torch.testing.assert_close(res["out_s"], torch.stack(spikes), rtol=0, atol=0)
    torch.testing.assert_close(res["out_v"], torch.stack(vs), rtol=1e-5, atol=1e-6)
