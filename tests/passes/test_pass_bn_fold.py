"""BN folding: the folded Conv/Linear gives the unfolded Conv/Linear + BatchNorm output."""

import torch
from torch import nn

from stc.ir.frontends import from_torch
from stc.passes import fold_batchnorm
from stc.runtime import execute


def _randomise_bn(bn):
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.uniform_(-2, 2)
        bn.bias.uniform_(-1, 1)


def test_conv_and_linear_bn_fold_match_torch():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3),
                      nn.Flatten(), nn.Linear(48, 6), nn.BatchNorm1d(6)).eval()
    _randomise_bn(m[1])
    _randomise_bn(m[4])
    g = from_torch(m, (2, 4, 4), time_steps=1)
    folded, names = fold_batchnorm(g)
    assert names == ["batchnorm2d_1", "batchnorm1d_4"]
    assert [n.OP for n in folded.nodes].count("BatchNorm") == 0
    assert [n.OP for n in g.nodes].count("BatchNorm") == 2  # input graph untouched
    x = torch.randn(5, 2, 4, 4)
    with torch.no_grad():
        want = m(x)
    got = execute(folded, {"input": x}).outputs["output"]
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_bn_not_after_synapse_is_kept():
    m = nn.Sequential(nn.Flatten(), nn.BatchNorm1d(4)).eval()
    g, names = fold_batchnorm(from_torch(m, (4,)))
    assert names == [] and any(n.OP == "BatchNorm" for n in g.nodes)
