"""Decode OIP v2 request tensors into numpy arrays and encode results, with validation.

Wire format (Open Inference Protocol v2, shared/reference/serving.md): one
``raw_input_contents`` entry per input, row-major, little-endian, no padding, or typed
``contents`` (fp32_contents, int_contents, ...) when raw is not used. Outputs are always
answered raw (tritonclient reads only ``raw_output_contents``).

Every mismatch raises ``ServingError`` (INVALID_ARGUMENT) whose message names the tensor and the
model's expected signature, e.g. ``expected signature: x: FP32 [-1, 4, 8]``; requests whose
declared tensors exceed the byte limit raise RESOURCE_EXHAUSTED before anything is copied.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from stc.server.errors import clip, exhausted, invalid
from stc.server.executable import TensorSpecLike

# OIP datatype -> little-endian numpy dtype. BYTES (length-prefixed strings) and BF16 (no numpy
# dtype) are not tensor types of stc models and are rejected by name.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}

# OIP datatype -> InferTensorContents field holding it (FP16 has none: raw only).
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def datatype_of(dtype: np.dtype | type) -> str:
    """OIP datatype name of a numpy dtype, e.g. float32 -> "FP32".

    Raises:
        TypeError: the dtype has no OIP equivalent.
    """
    dt = np.dtype(dtype)
    for name, ref in DATATYPES.items():
        if ref.kind == dt.kind and ref.itemsize == dt.itemsize:
            return name
    raise TypeError(f"dtype {dt} has no Open Inference Protocol datatype")


def format_signature(specs: Sequence[TensorSpecLike]) -> str:
    """Human-readable signature, e.g. ``x: FP32 [-1, 4, 8], mask: BOOL [-1, 8]``."""
    return ", ".join(f"{s.name}: {s.datatype} {list(map(int, s.shape))}" for s in specs)


def _shape_matches(shape: Sequence[int], spec_shape: Sequence[int]) -> bool:
    return len(shape) == len(spec_shape) and all(
        int(d) == -1 or int(d) == int(g) for g, d in zip(shape, spec_shape)
    )


def decode_inputs(request, specs: Sequence[TensorSpecLike],
                  max_bytes: int) -> dict[str, np.ndarray]:
    """Validate a ``ModelInferRequest`` against the model inputs and return its arrays.

    Args:
        request: ``inference.ModelInferRequest`` (stc.proto.inference_pb2).
        specs: the model's input specs (name, OIP datatype, shape with -1 = any).
        max_bytes: largest accepted total input size in bytes.

    Returns:
        ``{name: array}`` with arrays of the spec's dtype and the request's shape
        (batch-first); raw buffers are copied so the arrays are writable.

    Raises:
        ServingError: INVALID_ARGUMENT for unknown/missing/duplicate inputs, wrong datatype,
            shape, byte or element count, raw mixed with contents; RESOURCE_EXHAUSTED when the
            declared size exceeds ``max_bytes``.
    """
    signature = f"expected signature: {format_signature(specs)}"
    by_name = {s.name: s for s in specs}
    names = [t.name for t in request.inputs]
    if len(set(names)) != len(names):
        raise invalid(f"duplicate input tensor names {clip(names)}; {signature}")
    unknown = [n for n in names if n not in by_name]
    missing = [n for n in by_name if n not in names]
    if unknown or missing:
        raise invalid(f"inputs {clip(names)} do not match the model (unknown "
                      f"{clip(unknown)}, missing {missing}); {signature}")
    raw = list(request.raw_input_contents)
    if raw and len(raw) != len(request.inputs):
        raise invalid(f"raw_input_contents has {len(raw)} entries for {len(request.inputs)} "
                      "inputs; expected one per input, in order")
    total = 0
    plan = []
    for tensor in request.inputs:
        spec = by_name[tensor.name]
        shape = [int(d) for d in tensor.shape]
        if tensor.datatype != spec.datatype:
            raise invalid(f"input {tensor.name!r} has datatype {clip(tensor.datatype)}, expected "
                          f"{spec.datatype!r}; {signature}")
        if any(d < 0 for d in shape) or not _shape_matches(shape, spec.shape):
            raise invalid(f"input {tensor.name!r} has shape {clip(shape)}; {signature}")
        if spec.datatype not in DATATYPES:
            raise invalid(f"datatype {spec.datatype!r} is not supported by the stc server")
        count = math.prod(shape)
        total += count * DATATYPES[spec.datatype].itemsize
        plan.append((tensor, spec, shape, count))
    if total > max_bytes:
        raise exhausted(f"request tensors take {total} bytes; the limit is {max_bytes} bytes")
    arrays: dict[str, np.ndarray] = {}
    for i, (tensor, spec, shape, count) in enumerate(plan):
        dtype = DATATYPES[spec.datatype]
        if raw:
            if tensor.HasField("contents"):
                raise invalid(f"input {tensor.name!r} sets contents while raw_input_contents is "
                              "used; use one or the other")
            want = count * dtype.itemsize
            if len(raw[i]) != want:
                raise invalid(f"input {tensor.name!r} has {len(raw[i])} raw bytes, expected "
                              f"{want} for {spec.datatype} {shape}; {signature}")
            arr = np.frombuffer(raw[i], dtype=dtype).copy()
        else:
            field = CONTENTS_FIELD.get(spec.datatype)
            if field is None:
                raise invalid(f"input {tensor.name!r}: {spec.datatype} needs raw_input_contents")
            values = getattr(tensor.contents, field)
            if len(values) != count:
                raise invalid(f"input {tensor.name!r} has {len(values)} values in "
                              f"contents.{field}, expected {count} for {spec.datatype} {shape}; "
                              f"{signature}")
            arr = np.asarray(values, dtype=np.result_type(dtype, np.int64)
                             if dtype.kind in "iu" else dtype)
            if dtype.kind in "iu":
                info = np.iinfo(dtype)
                if arr.size and (arr.min() < info.min or arr.max() > info.max):
                    raise invalid(f"input {tensor.name!r} has values outside {spec.datatype}")
            arr = arr.astype(dtype)
        arrays[tensor.name] = arr.reshape(shape)
    return arrays


def select_outputs(requested: Sequence[str],
                   specs: Sequence[TensorSpecLike]) -> list[TensorSpecLike]:
    """Output specs to return: all when ``requested`` is empty, else those named, in order.

    Raises:
        ServingError: INVALID_ARGUMENT naming an unknown requested output and the model outputs.
    """
    if not requested:
        return list(specs)
    by_name = {s.name: s for s in specs}
    unknown = [n for n in requested if n not in by_name]
    if unknown:
        raise invalid(f"requested outputs {clip(unknown)} are not model outputs; "
                      f"outputs: {format_signature(specs)}")
    return [by_name[n] for n in requested]


def encode_output(name: str, array: np.ndarray, spec: TensorSpecLike) -> tuple[list[int], bytes]:
    """Shape and raw little-endian bytes of one output, cast to the spec's datatype.

    Raises:
        ValueError: the spec's datatype is unknown to the codec (a bug in the executable).
    """
    if spec.datatype not in DATATYPES:
        raise ValueError(f"output {name!r} has unsupported datatype {spec.datatype!r}")
    arr = np.ascontiguousarray(np.asarray(array), dtype=DATATYPES[spec.datatype])
    return list(arr.shape), arr.tobytes()


def estimate_bytes(arrays: dict[str, np.ndarray], out_specs: Sequence[TensorSpecLike]) -> int:
    """Memory estimate (bytes) of one request: its input arrays plus its outputs.

    Output dims given as -1 after the batch dimension (e.g. a variable T) are taken as the
    largest non-batch dim of the inputs, an upper bound for stc's models, whose outputs repeat
    an input's T or a layer width. Intermediate activations are not counted.
    """
    rows = next((int(a.shape[0]) for a in arrays.values() if a.ndim > 0), 1)
    widest = max([int(d) for a in arrays.values() for d in a.shape[1:]] or [1])
    total = sum(int(a.nbytes) for a in arrays.values())
    for spec in out_specs:
        dims = [widest if int(d) < 0 else int(d) for d in list(spec.shape)[1:]]
        itemsize = DATATYPES[spec.datatype].itemsize if spec.datatype in DATATYPES else 8
        total += rows * math.prod(dims) * itemsize
    return total


def check_request(arrays: dict[str, np.ndarray], *, max_rows: int,
                  out_specs: Sequence[TensorSpecLike], max_bytes: int) -> int:
    """Per-request checks before the request may join a batch; returns its row count.

    One request that fails here is answered alone with INVALID_ARGUMENT (or
    RESOURCE_EXHAUSTED), so it can never fail or delay the other clients' rows it would have
    been batched with.

    Args:
        arrays: decoded inputs ``{name: [B, ...]}`` (``decode_inputs``).
        max_rows: most rows one request may carry (the server's max batch).
        out_specs: the outputs that will be returned (for the memory estimate).
        max_bytes: largest memory estimate (``estimate_bytes``) accepted, bytes.

    Raises:
        ServingError: INVALID_ARGUMENT for inputs with different batch sizes, batch 0, more
            than ``max_rows`` rows, or NaN / inf in a floating-point input;
            RESOURCE_EXHAUSTED when the memory estimate exceeds ``max_bytes``.
    """
    rows = {int(a.shape[0]) for a in arrays.values() if a.ndim > 0}
    if len(rows) > 1:
        raise invalid(f"inputs have different batch sizes {sorted(rows)}; expected one")
    batch = rows.pop() if rows else 1
    if batch < 1:
        raise invalid("batch size is 0 (an input's first dimension); expected at least 1 row")
    if batch > max_rows:
        raise invalid(f"request has {batch} rows; the server accepts at most {max_rows} rows "
                      "per request (its max batch): split the request")
    for name, arr in arrays.items():
        if arr.dtype.kind == "f" and arr.size and not np.isfinite(arr).all():
            raise invalid(f"input {name!r} contains NaN or inf; expected finite values")
    need = estimate_bytes(arrays, out_specs)
    if need > max_bytes:
        raise exhausted(f"request needs about {need} bytes (inputs + outputs); the limit is "
                        f"{max_bytes} bytes")
    return batch
