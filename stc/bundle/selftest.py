"""The bundle's self-test section: a few reference inputs and the outputs the reference backend
produced, so a node can check its own backend before it serves a bundle.

Manifest key ``selftest`` (optional; validated by ``check_section``)::

    {"reference": "cpu",                          # backend that produced the outputs
     "tolerance": {"atol": float, "rtol": float}, # float: |got - want| <= atol + rtol|want|
     "cases": [{"numerics": "float" | "fixed",
                "inputs":  {name: TENSOR}, "outputs": {name: TENSOR}}]}
    TENSOR = {"datatype": "FP32", "shape": [ints], "data": base64 of little-endian bytes}

Fixed numerics must match bit for bit (every backend of stc runs the same integer dynamics,
CONTRIBUTING.md "Runtime"); float numerics within the stated tolerance (GPU kernels reorder
float sums). Inputs are integer-valued (valid for both numerics). Arrays are batch-first, as
``Executable.infer`` takes and returns them.
"""

from __future__ import annotations

import base64
import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from stc.errors import BundleError

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-4
MAX_SECTION_VALUES = 1 << 20  # elements over all tensors: keeps the manifest small
_NP = {"FP32": "<f4", "FP64": "<f8", "INT64": "<i8", "INT32": "<i4", "UINT8": "<u1",
       "INT8": "<i1", "FP16": "<f2", "INT16": "<i2", "UINT16": "<u2", "UINT32": "<u4",
       "UINT64": "<u8", "BOOL": "?"}


def encode_tensor(a: np.ndarray, datatype: str = "FP32") -> dict:
    """TENSOR dict of ``a`` cast to ``datatype`` (an OIP name). Raises ValueError if unknown."""
    if datatype not in _NP:
        raise ValueError(f"datatype {datatype!r} is not supported in a self-test")
    arr = np.ascontiguousarray(np.asarray(a).astype(_NP[datatype]))
    return {"datatype": datatype, "shape": list(arr.shape),
            "data": base64.b64encode(arr.tobytes()).decode("ascii")}


def decode_tensor(t: dict, where: str = "tensor") -> np.ndarray:
    """numpy array of a TENSOR dict. Raises BundleError naming ``where`` on any mismatch."""
    if not isinstance(t, dict) or set(t) != {"datatype", "shape", "data"}:
        raise BundleError(f"selftest {where} must have exactly datatype, shape, data")
    if t["datatype"] not in _NP:
        raise BundleError(f"selftest {where}: unsupported datatype {t['datatype']!r}")
    shape = t["shape"]
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool)
                                              and d >= 0 for d in shape):
        raise BundleError(f"selftest {where}: shape must be a list of ints >= 0")
    try:
        raw = base64.b64decode(t["data"], validate=True)
    except (ValueError, TypeError):
        raise BundleError(f"selftest {where}: data is not base64") from None
    dt = np.dtype(_NP[t["datatype"]])
    if len(raw) != dt.itemsize * math.prod(shape):
        raise BundleError(f"selftest {where}: {len(raw)} bytes do not fit shape {shape} of "
                          f"{t['datatype']}")
    return np.frombuffer(raw, dtype=dt).reshape(shape).copy()


def check_section(s: object) -> dict:
    """Validate a ``selftest`` manifest section (schema above); returns it.

    Raises:
        BundleError: naming the first bad field.
    """
    if not isinstance(s, dict) or set(s) != {"reference", "tolerance", "cases"}:
        raise BundleError("manifest selftest must have exactly reference, tolerance, cases")
    if not isinstance(s["reference"], str):
        raise BundleError("manifest selftest.reference must be a backend name")
    tol = s["tolerance"]
    if (not isinstance(tol, dict) or set(tol) != {"atol", "rtol"}
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
                       for v in tol.values())):
        raise BundleError("manifest selftest.tolerance must be {atol: >= 0, rtol: >= 0}")
    cases = s["cases"]
    if not isinstance(cases, list) or not cases:
        raise BundleError("manifest selftest.cases must be a non-empty list")
    total = 0
    for i, c in enumerate(cases):
        if not isinstance(c, dict) or set(c) != {"numerics", "inputs", "outputs"}:
            raise BundleError(f"manifest selftest.cases[{i}] must have numerics, inputs, "
                              "outputs")
        if c["numerics"] not in ("float", "fixed"):
            raise BundleError(f"manifest selftest.cases[{i}].numerics must be float or fixed")
        for key in ("inputs", "outputs"):
            if not isinstance(c[key], dict) or not c[key]:
                raise BundleError(f"manifest selftest.cases[{i}].{key} must be a non-empty "
                                  "object")
            for name, t in c[key].items():
                total += decode_tensor(t, f"cases[{i}].{key}[{name!r}]").size
    if total > MAX_SECTION_VALUES:
        raise BundleError(f"manifest selftest holds {total} values, over {MAX_SECTION_VALUES}")
    return s


def reference_inputs(specs: list[dict], batch: int = 2, seed: int = 0) -> dict[str, np.ndarray]:
    """Integer-valued inputs 0..3 for manifest input specs (-1 dims: ``batch``, then T)."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        shape = [batch if i == 0 else (d if d > 0 else 4) for i, d in enumerate(s["shape"])]
        out[s["name"]] = rng.integers(0, 4, size=shape).astype(np.float32)
    return out


def make_section(executables: dict, input_specs: list[dict],
                 inputs: dict[str, np.ndarray] | None = None, *, reference: str = "cpu",
                 atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL) -> dict:
    """Run ``inputs`` through each executable and record a ``selftest`` section.

    Args:
        executables: numerics ("float" | "fixed") -> an object with ``infer`` (stc.runtime
            Executable on the reference backend).
        input_specs: the manifest's input specs (to draw ``inputs`` when not given).
        inputs: batch-first arrays by input name; default ``reference_inputs(input_specs)``.
        reference, atol, rtol: recorded as given.

    Raises:
        ValueError: no executables; whatever ``infer`` raises for bad inputs.
    """
    if not executables:
        raise ValueError("make_section needs at least one executable")
    feeds = inputs if inputs is not None else reference_inputs(input_specs)
    cases = []
    for numerics, exe in executables.items():
        outs = exe.infer({k: np.asarray(v) for k, v in feeds.items()})
        cases.append({"numerics": numerics,
                      "inputs": {k: encode_tensor(v, "FP32") for k, v in feeds.items()},
                      "outputs": {k: encode_tensor(v, "FP32") for k, v in outs.items()}})
    return check_section({"reference": reference, "tolerance": {"atol": float(atol),
                                                                "rtol": float(rtol)},
                          "cases": cases})


@dataclass
class SelfTestResult:
    """Outcome of ``run``: passed, cases run, largest |got - want|, the rule applied
    (``exact`` or the tolerance), wall time of the runs (ms) and a one-line detail."""

    passed: bool
    cases: int
    max_abs_error: float
    exact: bool
    atol: float
    rtol: float
    latency_ms: float
    detail: str

    def to_dict(self) -> dict:
        """Plain dict (for JSON and protobuf)."""
        return asdict(self)


def run(executable, section: dict | None, numerics: str) -> SelfTestResult:
    """Run the section's cases of ``numerics`` on ``executable`` and compare.

    Fixed numerics: outputs must be bit-identical. Float: ``|got - want| <= atol + rtol *
    |want|`` elementwise. A bundle without a section (or without cases of this numerics)
    fails: a node cannot vouch for what it cannot check. Never raises for a failing model: an
    exception from ``infer`` becomes a failed result naming it.
    """
    if not section:
        return SelfTestResult(False, 0, math.inf, numerics == "fixed", 0.0, 0.0, 0.0,
                              "bundle has no selftest section (re-bundle with stc >= this "
                              "version)")
    cases = [c for c in section["cases"] if c["numerics"] == numerics]
    tol = section["tolerance"]
    exact = numerics == "fixed"
    if not cases:
        return SelfTestResult(False, 0, math.inf, exact, tol["atol"], tol["rtol"], 0.0,
                              f"selftest has no cases for {numerics} numerics")
    worst = 0.0
    t0 = time.perf_counter()
    for i, c in enumerate(cases):
        feeds = {k: decode_tensor(v) for k, v in c["inputs"].items()}
        try:
            got = executable.infer(feeds)
        except Exception as e:  # noqa: BLE001 - report, the caller rolls back
            return SelfTestResult(False, i, math.inf, exact, tol["atol"], tol["rtol"],
                                  (time.perf_counter() - t0) * 1e3,
                                  f"case {i}: infer raised {type(e).__name__}: {e}")
        for name, t in c["outputs"].items():
            want = decode_tensor(t)
            if name not in got:
                return SelfTestResult(False, i, math.inf, exact, tol["atol"], tol["rtol"],
                                      (time.perf_counter() - t0) * 1e3,
                                      f"case {i}: no output {name!r}")
            g = np.asarray(got[name], dtype=want.dtype)
            if g.shape != want.shape:
                return SelfTestResult(False, i, math.inf, exact, tol["atol"], tol["rtol"],
                                      (time.perf_counter() - t0) * 1e3,
                                      f"case {i}: output {name!r} shape {list(g.shape)}, "
                                      f"expected {list(want.shape)}")
            err = float(np.max(np.abs(g.astype(np.float64) - want))) if g.size else 0.0
            worst = max(worst, err)
            ok = (np.array_equal(g, want) if exact else
                  bool(np.all(np.abs(g.astype(np.float64) - want)
                              <= tol["atol"] + tol["rtol"] * np.abs(want))))
            if not ok:
                rule = "bit-exact" if exact else f"atol {tol['atol']:g} rtol {tol['rtol']:g}"
                return SelfTestResult(False, i + 1, worst, exact, tol["atol"], tol["rtol"],
                                      (time.perf_counter() - t0) * 1e3,
                                      f"case {i}: output {name!r} differs from the reference "
                                      f"({section['reference']}) by up to {err:.3g} ({rule})")
    ms = (time.perf_counter() - t0) * 1e3
    rule = "bit-exact" if exact else f"within atol {tol['atol']:g} rtol {tol['rtol']:g}"
    return SelfTestResult(True, len(cases), worst, exact, tol["atol"], tol["rtol"], ms,
                          f"{len(cases)} case(s) {rule} vs {section['reference']}")


def bundle_section(graph, fixed_graph=None, inputs: dict[str, np.ndarray] | None = None, *,
                   atol: float = DEFAULT_ATOL, rtol: float = DEFAULT_RTOL) -> dict:
    """``selftest`` section for a bundle of ``graph`` (and ``fixed_graph``): their cpu outputs
    (stc.runtime, kernel backend torch) on ``inputs`` (default ``reference_inputs``, batch 2).

    Raises:
        ValueError: the graphs cannot run on the inputs.
    """
    from stc.runtime import Executable

    exes = {"float": Executable(graph.copy(), numerics="float", kernel_backend="torch")}
    if fixed_graph is not None:
        exes["fixed"] = Executable(fixed_graph.copy(), numerics="fixed", kernel_backend="torch")
    specs = [{"name": s.name, "datatype": s.datatype, "shape": list(s.shape)}
             for s in exes["float"].inputs]
    try:
        return make_section(exes, specs, inputs, reference="cpu", atol=atol, rtol=rtol)
    finally:
        for e in exes.values():
            e.close()
