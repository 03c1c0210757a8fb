"""Custom nn.Module subclasses traced with torch.fx, and MultiStepSequential: one module that
trains eagerly on [T, B, ...] and compiles to the same outputs."""

import pytest
import torch
from torch import nn

from stc.compiler import SpikeCompiler
from stc.errors import MappingError
from stc.nn import LIF, MultiStepSequential, SeqToANNContainer


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.lif1 = LIF(backend="torch")
        self.fc = nn.Linear(64, 5)
        self.lif2 = LIF(backend="torch")

    def forward(self, x):  # x [T, B, 1, 4, 4], written for multi-step use
        T, B = x.shape[:2]
        x = self.conv(x.flatten(0, 1)).reshape(T, B, 4, 4, 4)
        return self.lif2(self.fc(self.lif1(x).flatten(2)))


class Chain(nn.Module):
    """The same layers as a chain the tracer can follow (per-step convention)."""

    def __init__(self, net):
        super().__init__()
        self.conv, self.lif1, self.fc, self.lif2 = net.conv, net.lif1, net.fc, net.lif2

    def forward(self, x):
        x = self.lif1(self.conv(x))
        return self.lif2(self.fc(torch.flatten(x, 1)))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.lif = LIF(backend="torch")

    def forward(self, x):
        return self.lif(self.fc(x) + x)


def reference(net, x, T):
    """Eager multi-step run of Net's own forward on T repeats, mean over T."""
    with torch.no_grad():
        return net(x.unsqueeze(0).expand(T, *x.shape).contiguous()).mean(0)


def test_custom_module_chain_is_traced():
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():
        net.conv.weight.mul_(2)
        net.fc.weight.mul_(3)
    x = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    compiled = SpikeCompiler("cpu", 2, 4).compile(Chain(net).eval(), (1, 4, 4))
    torch.testing.assert_close(compiled(x), reference(net, x, 4))


def test_untraceable_constructs_are_named():
    with pytest.raises(MappingError, match="branches or merges.*nn.Sequential"):
        SpikeCompiler("cpu").compile(Residual().eval(), (4,))


def test_multistep_sequential_trains_eagerly_and_compiles_to_the_same_output():
    torch.manual_seed(0)
    model = MultiStepSequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4),
                                LIF(backend="torch"), nn.Flatten(), nn.Linear(64, 5),
                                LIF(backend="torch"))
    T = 4
    x = torch.rand(6, 1, 4, 4, generator=torch.Generator().manual_seed(1))
    xs = x.unsqueeze(0).expand(T, *x.shape)  # [T, B, C, H, W]
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    for _ in range(3):  # a few eager training steps (surrogate gradients through LIF)
        loss = nn.functional.cross_entropy(model.forward_mean(xs) * 5, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model[0].weight.grad is not None and float(model[0].weight.grad.abs().sum()) > 0
    model.eval()
    with torch.no_grad():
        eager = model.forward_mean(xs)
    assert eager.shape == (6, 5)
    compiled = SpikeCompiler("cpu", 0, T).compile(model, (1, 4, 4))
    torch.testing.assert_close(compiled(x), eager)  # [B, 5] both: one Flatten convention


def test_seq_to_ann_container_merges_time_and_batch():
    conv = nn.Conv2d(1, 2, 3)
    c = SeqToANNContainer(conv)
    x = torch.rand(3, 2, 1, 5, 5)
    torch.testing.assert_close(c(x), torch.stack([conv(z) for z in x]))
    with pytest.raises(ValueError, match="rank"):
        c(torch.rand(5))


def test_flatten_written_for_time_first_tensors_warns():
    seq = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), LIF(backend="torch"), nn.Flatten(2),
                        nn.Linear(16, 3), LIF(backend="torch")).eval()
    with pytest.warns(UserWarning, match="MultiStepSequential"):
        SpikeCompiler("cpu").compile(seq, (1, 4, 4))
