"""Reading an ONNX ANN for conversion: ``onnx`` load, checker, opset check, fixed input shape,
shape inference, initializers and constants as numpy arrays; onnxruntime runs it.

Only the default ONNX domain is read. The first axis of the (single) graph input is the batch
and may be symbolic; every other axis must be static or given with ``input_shape``.
Source: ONNX IR spec and operator docs (onnx.ai, opset 11..current).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MIN_OPSET = 11


@dataclass
class OnnxModel:
    """A checked ONNX model with a fixed per-sample input shape.

    Attributes:
        proto: the ModelProto (input shape fixed, value shapes inferred).
        input_name: the graph input; input_shape: its per-sample shape (no batch axis).
        output_names: the graph outputs, in order.
        opset: the default-domain opset version.
        consts: initializer and Constant-node values by tensor name (numpy arrays).
        shapes: per-sample shape (no batch axis) of every value shape inference could type.
        consumers: tensor name -> number of nodes (and graph outputs) reading it.
        static_batch: the declared batch size when axis 0 is static, else None.
    """

    proto: object
    input_name: str
    input_shape: tuple[int, ...]
    output_names: list[str]
    opset: int
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    consumers: dict[str, int] = field(default_factory=dict)
    static_batch: int | None = None


def _load(model):
    import onnx

    if isinstance(model, onnx.ModelProto):
        return copy.deepcopy(model), "the ONNX model"
    if isinstance(model, (bytes, bytearray)):
        src, what = bytes(model), "the ONNX bytes"
    elif isinstance(model, (str, Path)):
        p = Path(model)
        if not p.is_file():
            raise FileNotFoundError(f"ONNX file not found: {p}")
        src, what = p.read_bytes(), str(p)
    else:
        raise TypeError("model must be an onnx.ModelProto, bytes or a path to a .onnx file; "
                        f"got {type(model).__name__}")
    try:
        proto = onnx.load_from_string(src)
    except Exception as e:  # protobuf DecodeError and friends
        raise ValueError(f"{what} is not a readable ONNX model (truncated or not ONNX): "
                         f"{type(e).__name__}: {e}") from None
    if not proto.graph.node:
        raise ValueError(f"{what} is not a readable ONNX model: its graph has no nodes")
    return proto, what


def read_onnx(model, input_shape: tuple[int, ...] | None = None) -> OnnxModel:
    """Load, check and shape-infer an ONNX model.

    Args:
        model: path to a .onnx file, its bytes, or an ``onnx.ModelProto`` (not modified).
        input_shape: per-sample input shape (no batch), required when an axis other than the
            batch is dynamic; checked against the static axes otherwise.

    Returns:
        OnnxModel.

    Raises:
        FileNotFoundError: no such file. TypeError: unsupported ``model`` type.
        ValueError: unreadable/truncated file, a failed ``onnx.checker`` check, an opset
            outside [MIN_OPSET, onnx's newest], more than one graph input, a dynamic axis
            without ``input_shape``, or an ``input_shape`` that contradicts the model.
    """
    import onnx
    from onnx import numpy_helper, shape_inference

    proto, what = _load(model)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    newest = onnx.defs.onnx_opset_version()
    if opset is None:
        raise ValueError(f"{what} imports no default-domain (ai.onnx) opset")
    if not MIN_OPSET <= opset <= newest:
        raise ValueError(f"{what} uses opset {opset}; stc reads opsets {MIN_OPSET}..{newest} "
                         f"(onnx {onnx.__version__}); re-export with "
                         f"torch.onnx.export(..., opset_version=17)")
    try:
        onnx.checker.check_model(proto)
    except Exception as e:
        raise ValueError(f"{what} fails the ONNX checker: {e}") from None
    g = proto.graph
    inits = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise ValueError(f"{what} has {len(inputs)} graph inputs "
                         f"{[i.name for i in inputs]}; conversion takes exactly one")
    inp = inputs[0]
    tt = inp.type.tensor_type
    if tt.elem_type != onnx.TensorProto.FLOAT:
        raise ValueError(f"input {inp.name!r} has element type "
                         f"{onnx.TensorProto.DataType.Name(tt.elem_type)}; expected FLOAT")
    dims = [(d.dim_value if d.HasField("dim_value") else None) for d in tt.shape.dim]
    if len(dims) < 2:
        raise ValueError(f"input {inp.name!r} has rank {len(dims)}; expected [batch, ...]")
    static_batch = dims[0] if dims[0] else None
    per = dims[1:]
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != len(per) or min(shape) < 1 or any(
                d and d != s for d, s in zip(per, shape)):
            raise ValueError(f"input_shape {shape} does not fit input {inp.name!r} of "
                             f"declared per-sample shape {tuple(d or '?' for d in per)}")
    elif any(not d for d in per):
        raise ValueError(f"input {inp.name!r} has dynamic axes "
                         f"{tuple(d or '?' for d in per)} after the batch; give the "
                         "per-sample shape (input_shape=, --input-shape 1,8,8)")
    else:
        shape = tuple(per)
    del tt.shape.dim[:]
    if static_batch:  # e.g. a Reshape to [1, -1]: keep the exported batch
        tt.shape.dim.add().dim_value = static_batch
    else:
        tt.shape.dim.add().dim_param = "batch"
    for s in shape:
        tt.shape.dim.add().dim_value = s
    del g.value_info[:]
    try:
        proto = shape_inference.infer_shapes(proto, strict_mode=True, data_prop=True)
    except Exception as e:
        raise ValueError(f"{what}: ONNX shape inference failed with input shape "
                         f"[batch, {', '.join(map(str, shape))}]: {e}") from None
    consts = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
    for n in proto.graph.node:
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    shapes: dict[str, tuple[int, ...]] = {inp.name: shape}
    for vi in list(proto.graph.value_info) + list(proto.graph.output):
        d = vi.type.tensor_type.shape.dim
        if len(d) >= 1 and all(x.HasField("dim_value") for x in d[1:]):
            shapes[vi.name] = tuple(int(x.dim_value) for x in d[1:])
    consumers: dict[str, int] = {}
    for n in proto.graph.node:
        for s in n.input:
            consumers[s] = consumers.get(s, 0) + 1
    for o in proto.graph.output:
        consumers[o.name] = consumers.get(o.name, 0) + 1
    return OnnxModel(proto=proto, input_name=inp.name, input_shape=shape,
                     output_names=[o.name for o in proto.graph.output], opset=opset,
                     consts=consts, shapes=shapes, consumers=consumers,
                     static_batch=static_batch)


def run_onnx(m: OnnxModel, x: np.ndarray, extra_outputs: list[str] | None = None,
             batch_size: int = 256) -> dict[str, np.ndarray]:
    """Run the ANN with onnxruntime (CPU) on ``x`` [n, *input_shape] (float32).

    Args:
        extra_outputs: intermediate tensor names to return as well (e.g. Relu outputs for
            threshold balancing); they are added to a copy of the graph's outputs.
        batch_size: samples per onnxruntime call (1 when the model's batch axis is static).

    Returns:
        name -> array [n, *shape] for the graph outputs and ``extra_outputs``.

    Raises:
        ValueError: ``x`` does not have shape [n, *input_shape].
    """
    import onnx
    import onnxruntime as ort

    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 1 + len(m.input_shape) or tuple(x.shape[1:]) != m.input_shape:
        raise ValueError(f"data must have shape [n, {', '.join(map(str, m.input_shape))}] "
                         f"for input {m.input_name!r}; got {tuple(x.shape)}")
    proto = copy.deepcopy(m.proto)
    have = {o.name for o in proto.graph.output}
    for name in extra_outputs or []:
        if name not in have:
            proto.graph.output.append(onnx.ValueInfoProto(name=name))
            have.add(name)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    step = m.static_batch or batch_size
    outs: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for i in range(0, len(x), step):
        xb = x[i:i + step]
        n = len(xb)
        if m.static_batch and n < step:
            xb = np.concatenate([xb, np.zeros((step - n, *xb.shape[1:]), np.float32)])
        for k, v in zip(names, sess.run(names, {m.input_name: xb})):
            outs[k].append(v[:n])
    return {k: np.concatenate(v) for k, v in outs.items()}
