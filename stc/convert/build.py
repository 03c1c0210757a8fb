"""Build the spiking stc graph from a read ONNX ANN and its calibrated activation scales.

Method (rate-coded ANN-to-SNN conversion; Rueckauer et al., "Conversion of continuous-valued
deep networks to efficient event-driven networks for image classification", Front. Neurosci.
11:682, 2017): every ReLU becomes an integrate-and-fire neuron (IR ``IF``, threshold 1, reset
by subtraction, or reset to zero for Loihi); the ReLU's robust activation scale lambda (a
percentile of its calibration activations) is folded into the synapses: a layer reading spikes
of scale lambda_in and feeding a neuron of scale lambda_out gets W' = W lambda_in / lambda_out and
b' = b / lambda_out (Rueckauer et al. eq. 6-7, data-based normalisation). With
``bias_shift`` every neuron's bias also gets + 1 / (2 T) (threshold units), so the spike count
after T steps rounds T a / lambda instead of flooring it (Deng & Gu, "Optimal conversion of
conventional artificial neural networks to spiking neural networks", ICLR 2021, sec. 4.2).

Each ONNX value is tracked as (stc node, scale): the ANN value is about ``scale`` times the
time mean of the node's output. Synapse outputs are in ANN units (scale 1); spikes of a
neuron carry its lambda; a sum pool of spikes carries lambda / (kH kW) (AveragePool ->
``Pool2d(kind="sum")``, so the fixed-point form stays integer). The readout is non-spiking:
the last layer's currents are averaged over T (``TimeMean``).

MaxPool: converted only directly after a Relu with no other reader, as max pooling of the
neuron's input current before the IF neuron (max commutes with ReLU and with a positive scale).
This is exact where the current is constant over time (after the direct-input layer) and an
approximation deeper in the network; any other MaxPool is refused.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch

from stc.errors import MappingError
from stc.ir import nodes as ir
from stc.ir.graph import Graph

from .reader import OnnxModel

SUPPORTED_OPS = ("Gemm", "MatMul", "Conv", "Relu", "BatchNormalization", "AveragePool",
                 "GlobalAveragePool", "MaxPool", "Flatten", "Reshape", "Add", "Concat",
                 "Identity", "Dropout", "Constant")


class _Val:
    """An ONNX value in the SNN: stc node name, scale (np array broadcastable to the
    per-sample shape, or a float), per-sample shape, whether a synapse/Add/Scale node that
    only this value reads may still be rewritten in place (``fresh``)."""

    def __init__(self, node: str, scale, shape, fresh: bool = False):
        self.node, self.scale, self.shape, self.fresh = node, scale, tuple(shape), fresh


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pair(v, default=(1, 1)) -> tuple[int, int]:
    if v is None:
        return default
    v = list(v)
    return (int(v[0]), int(v[-1])) if len(v) == 2 else (int(v[0]), int(v[0]))


def _is_one(s) -> bool:
    return np.all(np.asarray(s) == 1.0)


def _full(s, shape) -> np.ndarray:
    return np.broadcast_to(np.asarray(s, dtype=np.float64), shape).copy()


def _per_channel(s, shape) -> np.ndarray | None:
    """Scale per axis-0 channel if ``s`` is constant over the other axes, else None."""
    f = _full(s, shape)
    c = f.reshape(shape[0], -1)
    return c[:, 0].copy() if np.allclose(c, c[:, :1], rtol=1e-6, atol=0) else None


def refuse_unsupported(m: OnnxModel) -> None:
    """Raise MappingError listing every node whose op has no conversion (op and node name)."""
    bad = [f"{n.op_type} (node {n.name or n.output[0]!r})" for n in m.proto.graph.node
           if n.op_type not in SUPPORTED_OPS or n.domain not in ("", "ai.onnx")]
    if bad:
        raise MappingError("ONNX ops with no ANN-to-SNN conversion: " + ", ".join(bad)
                           + f"; supported: {', '.join(SUPPORTED_OPS)} (Softmax, LayerNorm, "
                           "GELU and attention have no rate-coded IF equivalent)")


def neuron_points(m: OnnxModel) -> dict[str, str]:
    """ONNX Relu node output -> the tensor whose activations set that neuron's threshold
    (the Relu output, or the MaxPool output when a MaxPool is its only reader)."""
    readers: dict[str, list] = {}
    for n in m.proto.graph.node:
        for s in n.input:
            readers.setdefault(s, []).append(n)
    out = {}
    for n in m.proto.graph.node:
        if n.op_type == "Relu":
            r = readers.get(n.output[0], [])
            pooled = (len(r) == 1 and r[0].op_type == "MaxPool"
                      and m.consumers.get(n.output[0], 0) == 1)
            out[n.output[0]] = r[0].output[0] if pooled else n.output[0]
    return out


class Builder:
    """Walks the ONNX nodes (topologically sorted, as the ONNX spec requires) into a Graph."""

    def __init__(self, m: OnnxModel, lambdas: dict[str, np.ndarray], *, timesteps: int,
                 reset: str, bias_shift: bool, spike_encoding: str, input_lambda: float):
        self.m, self.lam, self.T = m, lambdas, timesteps
        self.reset, self.bias_shift = reset, bias_shift
        self.encoding, self.input_lambda = spike_encoding, input_lambda
        self.g = Graph(metadata={"source": "onnx", "conversion": "ann2snn-rate"})
        self.vals: dict[str, _Val] = {}
        self.names: set[str] = set()
        self.unshifted: list[str] = []
        self.maxpool_nodes: list[str] = []
        self.pooled = neuron_points(m)

    # -- helpers ------------------------------------------------------------------------
    def name(self, base: str) -> str:
        s = re.sub(r"[^A-Za-z0-9_]+", "_", base).strip("_") or "node"
        s = s if not s[0].isdigit() else f"n{s}"
        out, i = s, 1
        while out in self.names:
            i += 1
            out = f"{s}_{i}"
        self.names.add(out)
        return out

    def fail(self, node, msg: str) -> MappingError:
        return MappingError(f"ONNX node {node.name or node.output[0]!r} ({node.op_type}): "
                            f"{msg}")

    def val(self, node, i: int) -> _Val:
        s = node.input[i]
        if s not in self.vals:
            raise self.fail(node, f"input {s!r} is a constant or unknown here; expected a "
                                  "value computed from the graph input")
        return self.vals[s]

    def const(self, node, i: int) -> np.ndarray:
        s = node.input[i] if i < len(node.input) else ""
        if s not in self.m.consts:
            raise self.fail(node, f"input #{i} ({s!r}) must be a constant (initializer)")
        return np.asarray(self.m.consts[s], dtype=np.float64)

    def fresh(self, out: str) -> bool:
        return self.m.consumers.get(out, 0) == 1

    def add(self, node: ir.Node, **tensors) -> ir.Node:
        t = {k: (None if v is None else torch.as_tensor(np.asarray(v, dtype=np.float32)))
             for k, v in tensors.items()}
        self.g.add(node, **t)
        return node

    def scale_node(self, v: _Val, factor) -> str:
        """A Scale node multiplying v by ``factor`` (float numerics only)."""
        f = np.asarray(factor, dtype=np.float64)
        if f.ndim == 0:
            f = _full(f, (1,) * len(v.shape))
        n = self.add(ir.Scale(name=self.name(f"{v.node}_scale"), inputs=[v.node],
                              shape=v.shape), scale=f)
        return n.name

    def _owned(self, name: str, owner: str | None) -> bool:
        return [c.name for c in self.g.consumers(name)] == ([] if owner is None else [owner])

    def rescale(self, v: _Val, factor, shift: float = 0.0, owner: str | None = None) -> str:
        """Node whose value is v * factor + shift (shift added per step). Rewrites v's
        synapse / Add / Scale producer in place when nothing but ``owner`` reads it (and only
        ``v`` uses it in the ONNX graph), else inserts a Scale node (the shift is then
        dropped and recorded in ``unshifted``)."""
        if _is_one(factor) and shift == 0.0:
            return v.node
        n = self.g.node(v.node)
        if v.fresh and self._owned(n.name, owner):
            if n.OP in ("Linear", "Conv2d"):
                per = _per_channel(factor, v.shape) if n.OP == "Conv2d" else \
                    _full(factor, v.shape)
                if per is not None:
                    w = self.g.param(n, "weight").double()
                    b = self.g.param(n, "bias")
                    b = torch.zeros(w.shape[0], dtype=torch.float64) if b is None else b.double()
                    f = torch.as_tensor(per, dtype=torch.float64)
                    self.g.tensors[n.params["weight"]] = (w * f.reshape(-1, *[1] * (
                        w.dim() - 1))).float()
                    key = f"{n.name}.bias"
                    self.g.tensors[key] = (b * f + shift).float()
                    n.params["bias"] = key
                    return n.name
            if n.OP == "Add":
                owned = [j for j, src in enumerate(n.inputs)
                         if self.g.node(src).OP in ("Linear", "Conv2d")
                         and self._owned(src, n.name)]
                js = owned[0] if owned else 0
                for j, src in enumerate(list(n.inputs)):
                    sub = _Val(src, 1.0, v.shape, fresh=True)
                    n.inputs[j] = self.rescale(sub, factor, shift if j == js else 0.0,
                                               owner=n.name)
                return n.name
            if n.OP == "Scale" and shift == 0.0:
                s = self.g.param(n, "scale").double().numpy()
                self.g.tensors[n.params["scale"]] = torch.as_tensor(
                    (s * np.asarray(factor)).astype(np.float32))
                return n.name
        if shift != 0.0:
            self.unshifted.append(v.node)
        return self.scale_node(v, factor)

    # -- the walk -----------------------------------------------------------------------
    def build(self) -> Graph:
        m = self.m
        inp = self.add(ir.Input(name=self.name(m.input_name), shape=m.input_shape))
        enc = self.add(ir.Repeat(name=self.name("encoder"), inputs=[inp.name],
                                 shape=m.input_shape, time_steps=self.T))
        if self.encoding == "rate":  # deterministic rate code: an IF at the input's scale
            e = self.add(ir.IF(name=self.name("rate_encoder"), inputs=[enc.name],
                               shape=m.input_shape, v_th=float(self.input_lambda),
                               v_reset=None))
            self.vals[m.input_name] = _Val(e.name, float(self.input_lambda), m.input_shape)
        else:
            self.vals[m.input_name] = _Val(enc.name, 1.0, m.input_shape)
        for node in m.proto.graph.node:
            getattr(self, f"op_{node.op_type}")(node)
        for o in m.output_names:
            if o not in self.vals:
                raise MappingError(f"ONNX output {o!r} is a constant; nothing to convert")
            v = self.vals[o]
            src = self.rescale(v, v.scale)
            tm = self.add(ir.TimeMean(name=self.name(f"{o}_time_mean"), inputs=[src],
                                      shape=v.shape))
            self.add(ir.Output(name=self.name(o), inputs=[tm.name], shape=v.shape))
        return self.g.verify()

    def op_Constant(self, node):
        pass

    def op_Identity(self, node):
        self.vals[node.output[0]] = self.val(node, 0)

    op_Dropout = op_Identity

    def _synapse_input(self, node, v: _Val, conv: bool):
        """(node name, per-input-feature scale vector) feeding a synapse layer."""
        if conv:
            per = _per_channel(v.scale, v.shape)
            if per is None:
                return self.rescale(v, v.scale), np.ones(v.shape[0])
            return v.node, per
        return v.node, _full(v.scale, v.shape).reshape(-1)

    def op_Conv(self, node):
        a = _attrs(node)
        v = self.val(node, 0)
        if len(v.shape) != 3:
            raise self.fail(node, f"expects a [C, H, W] input, got {v.shape} (Conv1d/3d: no)")
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID", "NOTSET", "VALID"):
            raise self.fail(node, f"auto_pad {a['auto_pad']!r} is not supported; export with "
                                  "explicit pads")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise self.fail(node, f"asymmetric pads {pads} are not supported")
        w = self.const(node, 1)
        b = self.const(node, 2) if len(node.input) > 2 and node.input[2] else None
        groups = int(a.get("group", 1))
        src, s_in = self._synapse_input(node, v, conv=True)
        cin_g = w.shape[1]
        idx = (np.arange(w.shape[0])[:, None] // (w.shape[0] // groups)) * cin_g + \
            np.arange(cin_g)[None, :]
        w = w * s_in[idx][:, :, None, None]
        out = node.output[0]
        n = self.add(ir.Conv2d(name=self.name(node.name or out), inputs=[src],
                               in_channels=v.shape[0], out_channels=w.shape[0],
                               kernel_size=(w.shape[2], w.shape[3]),
                               stride=_pair(a.get("strides")),
                               padding=(int(pads[0]), int(pads[1])),
                               dilation=_pair(a.get("dilations")), groups=groups,
                               shape=m_shape(self.m, out)), weight=w, bias=b)
        self.vals[out] = _Val(n.name, 1.0, n.shape, fresh=self.fresh(out))

    def _linear(self, node, v: _Val, w_out_in: np.ndarray, bias):
        if len(v.shape) != 1:
            raise self.fail(node, f"expects a flat [features] input, got {v.shape}; "
                                  "add a Flatten")
        src, s_in = self._synapse_input(node, v, conv=False)
        w = w_out_in * s_in[None, :]
        out = node.output[0]
        n = self.add(ir.Linear(name=self.name(node.name or out), inputs=[src],
                               in_features=w.shape[1], out_features=w.shape[0],
                               shape=(w.shape[0],)), weight=w, bias=bias)
        self.vals[out] = _Val(n.name, 1.0, n.shape, fresh=self.fresh(out))

    def op_Gemm(self, node):
        a = _attrs(node)
        if int(a.get("transA", 0)):
            raise self.fail(node, "transA=1 is not supported")
        B = self.const(node, 1)
        w = (B if int(a.get("transB", 0)) else B.T) * float(a.get("alpha", 1.0))
        bias = None
        if len(node.input) > 2 and node.input[2]:
            bias = np.broadcast_to(self.const(node, 2) * float(a.get("beta", 1.0)),
                                   (w.shape[0],)).copy()
        self._linear(node, self.val(node, 0), w, bias)

    def op_MatMul(self, node):
        B = self.const(node, 1)
        if B.ndim != 2:
            raise self.fail(node, f"the weight must be 2-D [in, out], got {B.shape}")
        self._linear(node, self.val(node, 0), B.T, None)

    def op_Add(self, node):
        out = node.output[0]
        ins = list(node.input)
        if any(s in self.m.consts for s in ins):  # a bias: fold into the synapse before it
            ci = 0 if ins[0] in self.m.consts else 1
            v = self.val(node, 1 - ci)
            c = self.const(node, ci)
            n = self.g.node(v.node)
            if not (v.fresh and n.OP in ("Linear", "Conv2d") and _is_one(v.scale)
                    and not self.g.consumers(n.name)):
                raise self.fail(node, "adding a constant is supported only right after a "
                                      "Gemm/MatMul/Conv whose output nothing else reads")
            try:
                cb = np.broadcast_to(c, v.shape)
            except ValueError:
                raise self.fail(node, f"constant of shape {c.shape} does not broadcast to "
                                      f"{v.shape}") from None
            per = _per_channel(cb, v.shape) if n.OP == "Conv2d" else cb.reshape(-1)
            if per is None:
                raise self.fail(node, "a constant that varies over H, W is not a bias")
            b = self.g.param(n, "bias")
            key = f"{n.name}.bias"
            self.g.tensors[key] = (torch.zeros(len(per)) if b is None else b) + \
                torch.as_tensor(np.array(per, dtype=np.float32))
            n.params["bias"] = key
            self.vals[out] = _Val(n.name, 1.0, v.shape, fresh=self.fresh(out))
            return
        vs = [self.val(node, i) for i in range(len(ins))]
        if any(x.shape != vs[0].shape for x in vs):
            raise self.fail(node, f"inputs have shapes {[x.shape for x in vs]}; broadcasting "
                                  "residual sums are not supported")
        srcs = [x.node if _is_one(x.scale) else self.scale_node(x, x.scale) for x in vs]
        n = self.add(ir.Add(name=self.name(node.name or out), inputs=srcs, shape=vs[0].shape))
        self.vals[out] = _Val(n.name, 1.0, n.shape, fresh=self.fresh(out))

    def op_BatchNormalization(self, node):
        v = self.val(node, 0)
        a = _attrs(node)
        gamma, beta, mean, var = (self.const(node, i) for i in range(1, 5))
        eps = float(a.get("epsilon", 1e-5))
        n = self.g.node(v.node)
        if not (v.fresh and n.OP in ("Linear", "Conv2d") and _is_one(v.scale)
                and not self.g.consumers(n.name)):
            raise self.fail(node, "BatchNormalization is folded into the Conv/Gemm before it; "
                                  "here it reads something else")
        k = gamma / np.sqrt(var + eps)
        w = self.g.param(n, "weight").double().numpy()
        b = self.g.param(n, "bias")
        b = np.zeros(w.shape[0]) if b is None else b.double().numpy()
        self.g.tensors[n.params["weight"]] = torch.as_tensor(
            (w * k.reshape(-1, *[1] * (w.ndim - 1))).astype(np.float32))
        key = f"{n.name}.bias"
        self.g.tensors[key] = torch.as_tensor(((b - mean) * k + beta).astype(np.float32))
        n.params["bias"] = key
        out = node.output[0]
        self.vals[out] = _Val(n.name, 1.0, v.shape, fresh=self.fresh(out))

    def op_Relu(self, node):
        v = self.val(node, 0)
        out = node.output[0]
        point = self.pooled[out]
        lam = np.asarray(self.lam[point], dtype=np.float64)  # scalar or per channel
        lam_b = lam.reshape(-1, *[1] * (len(v.shape) - 1)) if lam.ndim else lam
        shift = 0.5 / self.T if self.bias_shift else 0.0
        src = self.rescale(v, np.asarray(v.scale) / lam_b, shift)
        shape = v.shape
        if point != out:  # Relu -> MaxPool: pool the current before the neuron
            pool = next(n for n in self.m.proto.graph.node if n.output[0] == point)
            p = self._pool_node(pool, src, shape, "max")
            src, shape = p.name, p.shape
            self.maxpool_nodes.append(pool.name or point)
        neuron = self.add(ir.IF(name=self.name(f"{node.name or out}_if"), inputs=[src],
                                shape=shape, v_th=1.0,
                                v_reset=None if self.reset == "subtract" else 0.0))
        self.vals[point] = _Val(neuron.name, lam_b, shape)
        if point != out:
            self.vals[out] = None  # consumed only by the MaxPool handled here

    def _pool_node(self, node, src: str, shape, kind: str) -> ir.Pool2d:
        a = _attrs(node)
        if len(shape) != 3:
            raise self.fail(node, f"expects a [C, H, W] input, got {shape}")
        if int(a.get("ceil_mode", 0)):
            raise self.fail(node, "ceil_mode=1 is not supported")
        if kind == "max" and list(a.get("dilations", [1, 1])) != [1, 1]:
            raise self.fail(node, "dilated pooling is not supported")
        pads = list(a.get("pads", [0, 0, 0, 0]))
        if pads[0] != pads[2] or pads[1] != pads[3]:
            raise self.fail(node, f"asymmetric pads {pads} are not supported")
        if kind == "sum" and any(pads) and not int(a.get("count_include_pad", 0)):
            raise self.fail(node, "padded AveragePool with count_include_pad=0 divides by a "
                                  "varying count; export with count_include_pad=1")
        k = _pair(a["kernel_shape"])
        return self.add(ir.Pool2d(name=self.name(node.name or node.output[0]), inputs=[src],
                                  kind=kind, kernel_size=k,
                                  stride=_pair(a.get("strides")),
                                  padding=(int(pads[0]), int(pads[1])),
                                  shape=m_shape(self.m, node.output[0])))

    def op_MaxPool(self, node):
        if node.output[0] in self.vals:  # done by op_Relu
            return
        raise self.fail(node, "MaxPool is converted only directly after a Relu that nothing "
                              "else reads (max pooling of the current before the IF "
                              "neuron); use AveragePool or reorder")

    def op_AveragePool(self, node):
        v = self.val(node, 0)
        per = _per_channel(v.scale, v.shape) if len(v.shape) == 3 else None
        src, s = (v.node, per) if per is not None else (self.rescale(v, v.scale),
                                                        np.ones(v.shape[0]))
        p = self._pool_node(node, src, v.shape, "sum")
        k = p.kernel_size[0] * p.kernel_size[1]
        self.vals[node.output[0]] = _Val(p.name, (s / k).reshape(-1, 1, 1), p.shape)

    def op_GlobalAveragePool(self, node):
        v = self.val(node, 0)
        if len(v.shape) != 3:
            raise self.fail(node, f"expects a [C, H, W] input, got {v.shape}")
        per = _per_channel(v.scale, v.shape)
        src, s = (v.node, per) if per is not None else (self.rescale(v, v.scale),
                                                        np.ones(v.shape[0]))
        c, h, w = v.shape
        p = self.add(ir.Pool2d(name=self.name(node.name or node.output[0]), inputs=[src],
                               kind="sum", kernel_size=(h, w), stride=(h, w),
                               shape=(c, 1, 1)))
        self.vals[node.output[0]] = _Val(p.name, (s / (h * w)).reshape(-1, 1, 1), p.shape)

    def _flatten(self, node, v: _Val):
        out = node.output[0]
        n = self.add(ir.Flatten(name=self.name(node.name or out), inputs=[v.node],
                                shape=(math.prod(v.shape),), start_dim=0, end_dim=-1))
        s = v.scale if np.ndim(v.scale) == 0 else _full(v.scale, v.shape).reshape(-1)
        self.vals[out] = _Val(n.name, s, n.shape)

    def op_Flatten(self, node):
        if int(_attrs(node).get("axis", 1)) != 1:
            raise self.fail(node, "only Flatten(axis=1) (keep the batch axis) is supported")
        self._flatten(node, self.val(node, 0))

    def op_Reshape(self, node):
        v = self.val(node, 0)
        want = m_shape(self.m, node.output[0])
        if want != (math.prod(v.shape),):
            raise self.fail(node, f"only a flattening reshape [batch, -1] is supported; this "
                                  f"one gives per-sample shape {want} from {v.shape}")
        self._flatten(node, v)

    def op_Concat(self, node):
        axis = int(_attrs(node).get("axis", 1))
        vs = [self.val(node, i) for i in range(len(node.input))]
        nd = len(vs[0].shape)
        if axis < 0:
            axis += nd + 1
        if axis < 1:
            raise self.fail(node, "concatenation along the batch axis is not supported")
        out = node.output[0]
        shape = m_shape(self.m, out)
        n = self.add(ir.Concat(name=self.name(node.name or out), inputs=[x.node for x in vs],
                               axis=axis - 1, shape=shape))
        scale = np.concatenate([_full(x.scale, x.shape) for x in vs], axis=axis - 1)
        self.vals[out] = _Val(n.name, scale, shape)


def m_shape(m: OnnxModel, name: str) -> tuple[int, ...]:
    """Per-sample shape of ONNX value ``name`` from shape inference."""
    if name not in m.shapes:
        raise MappingError(f"ONNX shape inference gave no static shape for {name!r}")
    return m.shapes[name]
