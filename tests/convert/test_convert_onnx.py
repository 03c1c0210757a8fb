"""ANN-to-SNN conversion (stc.convert) against its peers: onnxruntime runs the ANN, and
SpikingJelly's ann2snn RateCodingRecipe converts the same torch model with the same method
(layer-wise percentile, soft-reset IF, no bias shift), so the two SNNs must agree."""

import copy

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from stc.convert import SpikeformerConverter, convert_onnx, read_onnx, run_onnx, torch_to_onnx
from stc.errors import MappingError


def _cnn():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                      nn.AvgPool2d(2), nn.Conv2d(6, 8, 3, padding=1), nn.ReLU(),
                      nn.Flatten(), nn.Linear(8 * 4 * 4, 5))
    with torch.no_grad():  # non-trivial BN statistics
        m[1].running_mean.uniform_(-0.2, 0.2)
        m[1].running_var.uniform_(0.5, 2.0)
    return m.eval()


def _data(n=64, seed=0):
    return torch.rand(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


def test_onnxruntime_reads_the_export_like_torch():
    m, x = _cnn(), _data(16)
    om = read_onnx(torch_to_onnx(m, (1, 8, 8)))
    y = run_onnx(om, x.numpy())[om.output_names[0]]
    with torch.no_grad():
        np.testing.assert_allclose(y, m(x).numpy(), atol=1e-5)


def test_matches_spikingjelly_rate_coding_recipe():
    """Same model, same calibration batch, same percentile: SpikingJelly's SNN (outputs summed
    over T, divided by T) equals stc's converted graph (time mean of the readout)."""
    from spikingjelly.activation_based import ann2snn, functional

    m, calib, x = _cnn(), _data(64, 0), _data(20, 1)
    T = 16
    conv = convert_onnx(torch_to_onnx(m, (1, 8, 8)), calib, timesteps=T, percentile=99.0,
                        channel_wise=False, bias_shift=False)
    recipe = ann2snn.RateCodingRecipe(dataloader=[(calib, torch.zeros(64))], mode="99.0%")
    snn = ann2snn.FXConverter(recipe=recipe, device="cpu").convert(copy.deepcopy(m)).eval()
    with torch.no_grad():
        functional.reset_net(snn)
        sj = sum(snn(x) for _ in range(T)) / T
    ours = conv.run(x.numpy())
    assert np.abs(ours).max() > 0.1
    np.testing.assert_allclose(ours, sj.numpy(), atol=2e-4)


def test_rate_converges_to_the_ann():
    """With a max-norm (p = 100) no activation saturates, so the SNN's time-mean readout
    approaches the ANN (onnxruntime) as T grows: the error at T = 256 is far below T = 8's."""
    m, x = _cnn(), _data(32)
    ob = torch_to_onnx(m, (1, 8, 8))
    ann = run_onnx(read_onnx(ob), x.numpy())["output"]
    err = {}
    for T in (8, 256):
        c = convert_onnx(ob, x, timesteps=T, percentile=100.0)
        err[T] = np.abs(c.run(x.numpy()) - ann).max()
    assert err[256] < 0.02 * np.abs(ann).max() + 1e-3
    assert err[256] < err[8] / 4


class _Res(nn.Module):
    """Residual Add, channel Concat, MaxPool after the first ReLU (where pooling the current
    before the neuron is exact: the direct input is constant over time), GlobalAveragePool,
    MatMul + Add."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.c1 = nn.Conv2d(1, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.c3 = nn.Conv2d(8, 6, 3, padding=1)
        self.w = nn.Parameter(torch.randn(6, 3) * 0.5)
        self.b = nn.Parameter(torch.randn(3) * 0.1)

    def forward(self, x):
        a = nn.functional.max_pool2d(torch.relu(self.c1(x)), 2)
        r = torch.relu(self.c2(a) + a)
        h = torch.cat([a, r], dim=1)
        h = nn.functional.adaptive_avg_pool2d(torch.relu(self.c3(h)), 1).flatten(1)
        return h @ self.w + self.b


def test_residual_concat_maxpool_gap_matmul_converge():
    m, x = _Res().eval(), _data(24)
    ob = torch_to_onnx(m, (1, 8, 8))
    ops = {n.op_type for n in onnx.load_from_string(ob).graph.node}
    assert {"Add", "Concat", "MaxPool", "GlobalAveragePool", "MatMul"} <= ops
    ann = run_onnx(read_onnx(ob), x.numpy())["output"]
    c = convert_onnx(ob, x, timesteps=512, percentile=100.0)
    assert c.report["maxpool_before_neuron"]
    assert {"Add", "Concat", "Scale"} <= {n.OP for n in c.graph.nodes}
    y = c.run(x.numpy())
    assert np.abs(ann).max() > 0.05
    assert np.abs(y - ann).max() < 0.05 * np.abs(ann).max()


def test_converter_class_takes_a_torch_module_and_percent_strings():
    m, x = _cnn(), _data(32)
    a = SpikeformerConverter(timesteps=8, threshold="99.5%").convert(m, x)
    b = convert_onnx(torch_to_onnx(m, (1, 8, 8)), x, timesteps=8, percentile=99.5)
    np.testing.assert_array_equal(a.run(x.numpy()), b.run(x.numpy()))
    assert SpikeformerConverter(threshold="max").percentile == 100.0
    with pytest.raises(ValueError, match="neuron_model"):
        SpikeformerConverter(neuron_model="LIF")
    with pytest.raises(ValueError, match="threshold"):
        SpikeformerConverter(threshold="high")


def test_unsupported_ops_are_named():
    m = nn.Sequential(nn.Flatten(), nn.Linear(64, 4), nn.Softmax(-1)).eval()
    with pytest.raises(MappingError, match=r"Softmax \(node '.*Softmax"):
        convert_onnx(torch_to_onnx(m, (1, 8, 8)), _data(4))
    m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                      nn.Linear(18, 2)).eval()
    with pytest.raises(MappingError, match="MaxPool is converted only directly after a Relu"):
        convert_onnx(torch_to_onnx(m, (1, 8, 8)), _data(4))


def _tiny_onnx(opset=17, dims=(None, 4)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 4], np.ones(8, np.float32))
    g = helper.make_graph([helper.make_node("Gemm", ["x", "w"], ["y"], transB=1)], "g",
                          [x], [y], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_bad_models_and_calibration():
    x = np.ones((3, 4), np.float32)
    assert convert_onnx(_tiny_onnx(), x, timesteps=2).graph.verify()
    raw = _tiny_onnx().SerializeToString()
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        convert_onnx(raw[: len(raw) // 2], x)
    with pytest.raises(ValueError, match="opset 7"):
        convert_onnx(_tiny_onnx(opset=7), x)
    with pytest.raises(ValueError, match="opset 99"):
        convert_onnx(_tiny_onnx(opset=99), x)
    with pytest.raises(ValueError, match="dynamic axes"):
        convert_onnx(_tiny_onnx(dims=(None, "f")), x)
    assert convert_onnx(_tiny_onnx(dims=(None, "f")), x, input_shape=(4,)).graph
    with pytest.raises(ValueError, match=r"calibration data must have shape \[n, 4\]"):
        convert_onnx(_tiny_onnx(), np.ones((3, 5), np.float32))
    with pytest.raises(ValueError, match="NaN"):
        convert_onnx(_tiny_onnx(), np.full((3, 4), np.nan, np.float32))
    with pytest.raises(FileNotFoundError):
        convert_onnx("/nonexistent/model.onnx", x)
