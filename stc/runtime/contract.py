"""Input contracts: what a bundle's inputs must hold, and the fixed graph's input scale.

A contract is recorded per graph input in ``graph.metadata["input_contract"]`` (so it travels
in the manifest's ``graph`` and ``fixed_graph`` and in the Lava worker's graph):

    {input name: {
        "dtype": "float32" | "float64" | "uint8" | "int32" | ...   (numpy dtype name)
        "shape": [int, ...]            per sample (no batch, no T)
        "range": [lo, hi]              values the model takes, inclusive
        "step": float | null           the values are multiples of ``step`` (e.g. 1/16)
        "preprocessing": {"scale": s, "offset": o, "raw_range": [lo, hi] | null,
                          "description": str}     model input = raw * s + o
        "encoding": "direct" | "rate" | "spikes" | "temporal"}}

Policies (``input_policy``): "reject" (default) checks the array against the contract and
raises ValueError naming the expected range / dtype; "preprocess" first applies the declared
preprocessing (raw * scale + offset) to the raw array, then checks. Neither ever computes on
values outside ``range``. A graph without a contract (bundles written before contracts) is
not checked: its inputs are taken as given (documented default, README "Input contract").

The fixed graph's input quantisation is ``graph.metadata["input_quant"] = {input name:
{"scale": s}}`` (stc.passes.quantize): the integer input the first synapse layer sees is
``round(x * s)`` (float64 product, round half to even), computed by :func:`quantize_input` in
the Executable and identically in the Lava executors, never in the interpreter.
"""

from __future__ import annotations

import math

import numpy as np

POLICIES = ("reject", "preprocess")
ENCODINGS = ("direct", "rate", "spikes", "temporal")
_KEYS = {"dtype", "shape", "range", "step", "preprocessing", "encoding"}


def _num(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_contract(name: str, c: object) -> dict:
    """Return the contract dict ``c`` of input ``name`` if well formed.

    Raises:
        ValueError: a missing/unknown key or a wrong type, naming the key.
    """
    if not isinstance(c, dict) or set(c) != _KEYS:
        raise ValueError(f"input contract of {name!r} must have exactly the keys "
                         f"{sorted(_KEYS)}, got {sorted(c) if isinstance(c, dict) else c!r}")
    try:
        np.dtype(c["dtype"])
    except TypeError:
        raise ValueError(f"input contract of {name!r}: dtype {c['dtype']!r} is not a numpy "
                         "dtype name") from None
    if not isinstance(c["shape"], list) or not all(isinstance(d, int) and d > 0
                                                   for d in c["shape"]):
        raise ValueError(f"input contract of {name!r}: shape must be a list of ints > 0")
    r = c["range"]
    if not isinstance(r, list) or len(r) != 2 or not all(map(_num, r)) or r[0] > r[1]:
        raise ValueError(f"input contract of {name!r}: range must be [lo, hi] with lo <= hi")
    if c["step"] is not None and not (_num(c["step"]) and c["step"] > 0):
        raise ValueError(f"input contract of {name!r}: step must be a number > 0 or null")
    p = c["preprocessing"]
    if (not isinstance(p, dict) or set(p) != {"scale", "offset", "raw_range", "description"}
            or not _num(p["scale"]) or p["scale"] == 0 or not _num(p["offset"])
            or not isinstance(p["description"], str)
            or not (p["raw_range"] is None or (isinstance(p["raw_range"], list)
                                               and len(p["raw_range"]) == 2
                                               and all(map(_num, p["raw_range"]))))):
        raise ValueError(f"input contract of {name!r}: preprocessing must be {{scale != 0, "
                         "offset, raw_range: [lo, hi] | null, description: str}")
    if c["encoding"] not in ENCODINGS:
        raise ValueError(f"input contract of {name!r}: encoding must be one of {ENCODINGS}")
    return c


def make_contract(shape, *, lo: float, hi: float, dtype: str = "float32",
                  step: float | None = None, scale: float = 1.0, offset: float = 0.0,
                  raw_range=None, description: str = "none",
                  encoding: str = "direct") -> dict:
    """Build and validate one input's contract (keys as the module docstring says)."""
    c = {"dtype": str(np.dtype(dtype)), "shape": [int(s) for s in shape],
         "range": [float(lo), float(hi)], "step": None if step is None else float(step),
         "preprocessing": {"scale": float(scale), "offset": float(offset),
                           "raw_range": None if raw_range is None else
                           [float(v) for v in raw_range], "description": description},
         "encoding": encoding}
    return validate_contract("input", c)


def contracts_of(graph) -> dict[str, dict]:
    """{input name: contract} recorded in ``graph.metadata`` ({} for a graph without)."""
    found = graph.metadata.get("input_contract") or {}
    return {k: validate_contract(k, v) for k, v in found.items()}


def _describe(c: dict) -> str:
    lo, hi = c["range"]
    p = c["preprocessing"]
    raw = (f"; raw data {p['raw_range']} map to it by x * {p['scale']:g} + {p['offset']:g} "
           f"({p['description']}): pass input_policy='preprocess' (stc run "
           "--input-policy preprocess) to apply that") if p["raw_range"] else ""
    return f"values in [{lo:g}, {hi:g}] ({c['dtype']}, {c['encoding']} encoding){raw}"


def apply_contract(name: str, x: np.ndarray, contract: dict | None,
                   policy: str = "reject") -> np.ndarray:
    """Check (and with policy "preprocess" first preprocess) the batch ``x`` of input
    ``name`` against ``contract``; returns the array to compute on (unchanged when no
    contract). Works on host arrays: the caller passes numpy.

    Raises:
        ValueError: unknown policy; non-finite values; values outside the declared range
            (the message names the range and how raw data map to it); floating-point input to
            an input declared integer; a wrong per-sample shape.
    """
    if policy not in POLICIES:
        raise ValueError(f"input_policy must be one of {POLICIES}, got {policy!r}")
    if contract is None:
        return x
    want_int = np.dtype(contract["dtype"]).kind in "iub"
    if x.dtype.kind not in "fiub":
        raise ValueError(f"input {name!r} has dtype {x.dtype}; expected {contract['dtype']}")
    if want_int and x.dtype.kind == "f":
        raise ValueError(f"input {name!r} is declared integer ({contract['dtype']}, "
                         f"{_describe(contract)}) but got floating-point {x.dtype}; pass "
                         f"integers (e.g. x.astype(np.{contract['dtype']}))")
    shape = tuple(contract["shape"])
    if tuple(x.shape[-len(shape):]) != shape:
        raise ValueError(f"input {name!r}: samples must have shape {list(shape)} as the "
                         f"contract declares, got array shape {list(x.shape)}")
    if policy == "preprocess":
        p = contract["preprocessing"]
        x = x.astype(np.float64) * p["scale"] + p["offset"]
        if not want_int:
            x = x.astype(np.dtype(contract["dtype"]))
    if x.size == 0:
        return x
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise ValueError(f"input {name!r} holds NaN or inf; expected {_describe(contract)}")
    lo, hi = contract["range"]
    xmin, xmax = float(x.min()), float(x.max())
    tol = 1e-6 * max(1.0, abs(lo), abs(hi))
    if xmin < lo - tol or xmax > hi + tol:
        raise ValueError(f"input {name!r} holds values in [{xmin:g}, {xmax:g}]; the bundle "
                         f"expects {_describe(contract)}. Refusing to compute on input "
                         "outside the declared range")
    return x


def input_scales(graph) -> dict[str, float]:
    """{input name: scale} of a fixed graph's input quantisation ({} when it has none)."""
    q = graph.metadata.get("input_quant") or {}
    out = {}
    for k, v in q.items():
        s = v.get("scale") if isinstance(v, dict) else None
        if not _num(s) or s <= 0:
            raise ValueError(f"fixed graph input_quant[{k!r}] must be {{scale: number > 0}}")
        out[k] = float(s)
    return out


def quantize_input(x: np.ndarray, scale: float | None) -> np.ndarray:
    """The integer input of the fixed graph: ``round(x * scale)`` (float64, half to even),
    returned as float64 holding integers; ``x`` unchanged when ``scale`` is None (a fixed
    graph that takes integers, e.g. spikes)."""
    if scale is None:
        return x
    return np.round(np.asarray(x, dtype=np.float64) * scale)


def prepare_inputs(graph, inputs: dict, *, policy: str = "reject",
                   fixed: bool = False) -> dict:
    """Apply ``graph``'s contracts (policy) and, when ``fixed``, its input quantisation to
    the numpy arrays in ``inputs`` (other values, e.g. torch tensors on a device, are
    converted with ``np.asarray`` only when the graph has a contract or a scale). Returns a
    new dict. Raises ValueError as :func:`apply_contract`."""
    contracts = contracts_of(graph)
    scales = input_scales(graph) if fixed else {}
    out = dict(inputs)
    for name, a in inputs.items():
        if name not in contracts and name not in scales:
            continue
        x = _host(a)
        x = apply_contract(name, x, contracts.get(name), policy)
        out[name] = quantize_input(x, scales.get(name))
    return out


def _host(a) -> np.ndarray:
    try:
        import torch

        if isinstance(a, torch.Tensor):
            return a.detach().cpu().numpy()  # a device tensor costs one copy at the boundary
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return np.asarray(a)


def attach_contract(graph, contract: dict, name: str | None = None):
    """Record ``contract`` for input ``name`` (default: the graph's only input) in
    ``graph.metadata["input_contract"]`` (in place); returns the graph.

    Raises:
        ValueError: a malformed contract, or a contract shape different from the input's.
    """
    inp = graph.inputs()[0] if name is None else graph.node(name)
    c = validate_contract(inp.name, contract)
    if list(c["shape"]) != [int(s) for s in inp.shape]:
        raise ValueError(f"input contract shape {c['shape']} does not match input "
                         f"{inp.name!r} of shape {list(inp.shape)}")
    graph.metadata = {**graph.metadata, "input_contract": {
        **(graph.metadata.get("input_contract") or {}), inp.name: c}}
    return graph
