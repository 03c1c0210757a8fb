"""Executables: a verified bundle's graph bound to a device and numerics (CONTRIBUTING.md
"Runtime" contract), used by the server, the CLI and the compiler API."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stc.errors import UnsupportedTargetError, check_choice, check_finite, validation
from stc.ir import Graph
from stc.precision import check_precision, gemm_precision

from .contract import POLICIES, contracts_of, prepare_inputs
from .interpreter import RunResult, execute

BACKENDS = ("cpu", "gpu", "lava-sim", "loihi")  # the devices a bundle runs on
DEVICES = BACKENDS
DEVICE_ALIASES = {"cuda": "gpu"}


@dataclass(frozen=True)
class TensorSpec:
    """A tensor's name, OIP datatype ("FP32", ...) and shape (-1: batch or variable T)."""

    name: str
    datatype: str
    shape: list[int]


DEFAULT_GRAPH_BUCKETS = (1, 2, 4, 8)


def batch_bucket(batch: int, buckets: tuple[int, ...]) -> int | None:
    """The smallest bucket >= ``batch`` (the batch size a CUDA graph was captured at), or
    None when ``batch`` exceeds every bucket (then the run is eager).

    Raises:
        ValueError: batch < 1.
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    fits = [b for b in buckets if b >= batch]
    return min(fits) if fits else None


def check_buckets(buckets: object) -> tuple[int, ...]:
    """Sorted, de-duplicated positive int batch sizes.

    Raises:
        TypeError / ValueError: not a sequence of ints >= 1.
    """
    if isinstance(buckets, (str, bytes)) or not hasattr(buckets, "__iter__"):
        raise TypeError(f"graph_buckets must be a sequence of ints, got {buckets!r}")
    out = []
    for b in buckets:
        if isinstance(b, bool) or not isinstance(b, int) or b < 1:
            raise ValueError(f"graph_buckets must hold ints >= 1, got {b!r}")
        out.append(b)
    return tuple(sorted(set(out)))


def pad_batch(t: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    """Zero-pad ``t`` along its batch dimension ``dim`` to ``size`` rows (no copy if equal).
    Samples are independent in inference (BatchNorm folded or in eval mode), so padded rows
    never change the real ones; they are sliced off with ``narrow(dim, 0, batch)``."""
    n = t.shape[dim]
    if n == size:
        return t
    if n > size:
        raise ValueError(f"cannot pad a batch of {n} down to {size}")
    shape = list(t.shape)
    shape[dim] = size - n
    return torch.cat([t, t.new_zeros(shape)], dim=dim)


def slice_result(res: RunResult, batch: int, temporal: dict[str, bool]) -> RunResult:
    """The first ``batch`` samples of a (padded) run: outputs along their batch dim (1 when
    temporal, else 0) and the per-sample spike counts; copies, so a replay cannot
    overwrite them."""
    outs = {k: v.narrow(1 if temporal[k] else 0, 0, batch).clone()
            for k, v in res.outputs.items()}
    counts = {k: (c[:batch].clone(), per) for k, (c, per) in res.device_counts.items()}
    return RunResult(outputs=outs, device_counts=counts)


class Executable:
    """A graph ready to run on one device in one numerics mode.

    ``infer(inputs)`` takes batch-first numpy arrays: [B, *shape] for static inputs (the
    graph's Repeat encoder presents them for T steps) or [B, T, *shape] for temporal inputs,
    and returns batch-first outputs ([B, *shape], or [B, T, *shape] for spike-train outputs).
    ``last_result`` keeps the outputs' spike statistics of the latest call (counted on the
    device; ``infer`` reads them with the outputs in one device-to-host transfer).

    CUDA graphs (device "cuda", float numerics, ``cuda_graphs=True``): at load, one graph
    per batch bucket in ``graph_buckets`` is captured (static inputs; temporal inputs are
    captured on first use of each (bucket, T)), under a lock and with
    ``capture_error_mode="thread_local"`` so other threads' CUDA work is not disturbed. A
    batch B runs on the smallest bucket >= B, zero-padded, and the outputs and statistics are
    sliced back to B. A capture that fails is recorded in ``graph_status`` (and that bucket
    runs eagerly); ``require_graphs=True`` raises instead.

    Args:
        graph: a verified IR graph (float, or quantised for numerics="fixed"); its tensors are
            moved to ``device``.
        name, version: model identity (from the manifest).
        inputs, outputs: TensorSpecs (default: derived from the graph).
        device: "cpu" | "cuda". numerics: "float" | "fixed".
        kernel_backend: stc.kernels backend; default "auto" on cuda, "torch" on cpu.
        cuda_graphs: capture and replay CUDA graphs on cuda (ignored on cpu).
        graph_buckets: batch sizes to capture (default 1, 2, 4, 8).
        precision: "fp32" | "tf32" | "bf16" for the linear/conv layers of float numerics
            (``stc.precision``); fixed numerics are exact integers and need "fp32".
        require_graphs: raise RuntimeError when a capture fails instead of running eagerly.
        input_policy: "reject" (default) | "preprocess": how inputs are held against the
            graph's input contract (stc.runtime.contract; no contract: not checked). With
            numerics="fixed" the fixed graph's input quantisation (round(x * scale),
            ``graph.metadata["input_quant"]``) is applied here, before the interpreter, so a
            fixed graph takes the float model's input.

    Raises:
        ValueError: unknown numerics, device or precision, bad buckets, or a precision other
            than fp32 with fixed numerics. UnsupportedTargetError: cuda without CUDA.
        RuntimeError: a capture failed with ``require_graphs=True``.
        stc.ir.GraphError: numerics="fixed" on integer weights Loihi cannot hold
            (Graph.verify).
    """

    def __init__(self, graph: Graph, *, name: str = "model", version: str = "1",
                 inputs: list[TensorSpec] | None = None,
                 outputs: list[TensorSpec] | None = None, device: str = "cpu",
                 numerics: str = "float", kernel_backend: str | None = None,
                 cuda_graphs: bool = True,
                 graph_buckets: tuple[int, ...] = DEFAULT_GRAPH_BUCKETS,
                 precision: str = "fp32", require_graphs: bool = False,
                 input_policy: str = "reject") -> None:
        check_choice("numerics", numerics, ("float", "fixed"))
        check_choice("input_policy", input_policy, POLICIES)
        if numerics == "fixed":
            graph.verify()  # rejects integer weights Lava's Dense would change
        self.input_policy = input_policy
        check_choice("device", device, ("cpu", "cuda"))
        self.precision = check_precision(precision)
        if numerics == "fixed" and precision != "fp32":
            raise ValueError(f"precision {precision!r} applies to float numerics; fixed "
                             "numerics are exact integer sums (use precision='fp32')")
        if device == "cuda" and not torch.cuda.is_available():
            raise UnsupportedTargetError("device 'gpu' needs CUDA, but torch.cuda.is_available()"
                                         " is False; use the cpu device (--device cpu on the "
                                         "command line, device='cpu' in Python)")
        self.graph = graph
        self.name, self.version = name, version
        self.device = torch.device(device)
        self.numerics = numerics
        self.kernel_backend = kernel_backend or ("auto" if device == "cuda" else "torch")
        for k, t in graph.tensors.items():
            graph.tensors[k] = t.to(self.device)
        self.inputs = inputs or [TensorSpec(n.name, n.datatype, [-1] + ([-1] if n.temporal
                                            else []) + list(n.shape)) for n in graph.inputs()]
        temporal = graph.temporal()
        self._temporal = temporal
        self.outputs = outputs or [
            TensorSpec(n.name, "FP32", [-1] + ([-1] if temporal[n.name] else []) + list(n.shape))
            for n in graph.outputs()]
        self.last_result: RunResult | None = None
        self._cache: dict = {}
        if numerics == "fixed":  # the exact-precision plan, decided once at load
            from .interpreter import fixed_plan_for

            fixed_plan_for(graph, self._cache)
        self.graph_buckets = check_buckets(graph_buckets)
        self.require_graphs = bool(require_graphs)
        self.cuda_graphs = (bool(cuda_graphs) and self.device.type == "cuda"
                            and numerics == "float" and bool(self.graph_buckets))
        self._graphs: dict = {}
        self.graph_status: dict = {}   # key -> "captured" | "eager: <reason>"
        self._lock = threading.Lock()
        self._pool = None
        self._closed = False
        if self.cuda_graphs and not any(n.temporal for n in graph.inputs()):
            for b in sorted(self.graph_buckets, reverse=True):  # largest first: pool reuse
                self._graph_entry(self._graph_key(b, None))

    def run(self, inputs: dict[str, torch.Tensor | np.ndarray], *, time_steps: int | None = None,
            record_spikes: bool = False, validate: bool = False) -> RunResult:
        """Run on batch-first inputs; returns a RunResult with T-first outputs.

        Args:
            inputs: name -> batch-first array or tensor.
            time_steps: override the Repeat encoder's T.
            record_spikes: keep every spiking node's train (runs eagerly).
            validate: check the inputs' values (NaN/inf) once here, at the boundary: a host
                scan for arrays and CPU tensors, one device read for a device tensor (the ops
                themselves never read the device, ``stc.errors.validation``).

        Inputs are first held against the input contract (``input_policy``) and, in fixed
        numerics, quantised at the boundary (stc.runtime.contract.prepare_inputs).

        Raises:
            ValueError: unknown/missing input names, wrong shapes or dtypes, non-finite values
            with ``validate``, input outside the contract's range; RuntimeError after
            close().
        """
        if self._closed:
            raise RuntimeError(f"executable {self.name!r} is closed")
        if not isinstance(inputs, dict):
            raise TypeError(f"inputs must be a dict name -> array, got {type(inputs).__name__}")
        want = {n.name: n for n in self.graph.inputs()}
        extra = set(inputs) - set(want)
        if extra:
            raise ValueError(f"unknown input(s) {sorted(extra)}; expected {sorted(want)}")
        inputs = prepare_inputs(self.graph, inputs, policy=self.input_policy,
                                fixed=self.numerics == "fixed")
        feeds = {}
        for name, node in want.items():
            if name not in inputs:
                raise ValueError(f"missing input {name!r}")
            a = inputs[name]
            if not isinstance(a, torch.Tensor):
                a = np.asarray(a)
                if validate and a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
                    raise ValueError(f"input {name!r} contains NaN or inf; expected finite "
                                     "values")      # a host scan: no device read
            t = torch.as_tensor(a) if not isinstance(a, torch.Tensor) else a
            if t.dtype == torch.bool or not (t.is_floating_point() or t.dtype in (
                    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
                raise ValueError(f"input {name!r} has unsupported dtype {t.dtype}")
            if validate and isinstance(inputs[name], torch.Tensor):
                with validation():
                    check_finite(f"input {name!r}", t)
            t = t.to(self.device, torch.float32)
            lead = 2 if node.temporal else 1
            if t.dim() != lead + len(node.shape) or tuple(t.shape[lead:]) != tuple(node.shape):
                want = ("B, T, " if node.temporal else "B, ") + ", ".join(map(str, node.shape))
                raise ValueError(f"input {name!r} must have shape [{want}] (batch first), "
                                 f"got {tuple(t.shape)}")
            if node.temporal:
                t = t.transpose(0, 1).contiguous()
            feeds[name] = t
        first = next(iter(feeds))
        batch = feeds[first].shape[1 if want[first].temporal else 0]
        if self.cuda_graphs and not record_spikes and batch >= 1:
            bucket = batch_bucket(batch, self.graph_buckets)
            if bucket is not None:
                res = self._run_graphed(feeds, batch, bucket, time_steps)
                if res is not None:
                    self.last_result = res
                    return res
        res = self._execute(feeds, time_steps, record_spikes)
        self.last_result = res
        return res

    def _execute(self, feeds: dict[str, torch.Tensor], time_steps: int | None,
                 record_spikes: bool = False) -> RunResult:
        """One eager run at this executable's precision; float outputs in float32."""
        with torch.no_grad(), gemm_precision(self.precision, self.device.type):
            res = execute(self.graph, feeds, numerics=self.numerics,
                          kernel_backend=self.kernel_backend, time_steps=time_steps,
                          record_spikes=record_spikes, cache=self._cache)
            if self.precision == "bf16":
                res.outputs = {k: v.float() if v.is_floating_point() else v
                               for k, v in res.outputs.items()}
        return res

    # -- CUDA graphs -------------------------------------------------------------------------

    def _graph_key(self, bucket: int, time_steps: int | None,
                   feeds: dict[str, torch.Tensor] | None = None) -> tuple:
        """(bucket, T override, temporal inputs' T) identifies one captured graph."""
        ts = tuple(sorted((k, v.shape[0]) for k, v in (feeds or {}).items()
                          if self._temporal[k]))
        return (bucket, time_steps, ts)

    def _static_feeds(self, key: tuple) -> dict[str, torch.Tensor]:
        bucket, _, ts = key
        t_of = dict(ts)
        out = {}
        for n in self.graph.inputs():
            lead = [t_of[n.name], bucket] if n.temporal else [bucket]
            out[n.name] = torch.zeros(*lead, *n.shape, device=self.device)
        return out


    def _graph_entry(self, key: tuple):
        """The captured graph of ``key`` (capturing it now, under the lock), or None when its
        capture failed (recorded in ``graph_status``)."""
        with self._lock:
            if key in self._graphs:
                return self._graphs[key]
            if self.graph_status.get(key, "").startswith("eager"):
                return None
            try:
                static = self._static_feeds(key)
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(2):  # warm-up: Triton compilation, attention modules
                        self._execute(static, key[1])
                torch.cuda.current_stream().wait_stream(side)
                if self._pool is None:
                    self._pool = torch.cuda.graph_pool_handle()
                cg = torch.cuda.CUDAGraph()
                with torch.cuda.graph(cg, pool=self._pool,
                                      capture_error_mode="thread_local"):
                    out = self._execute(static, key[1])
            except Exception as e:  # a capture failure: record it, then eager (or raise)
                self.graph_status[key] = f"eager: {type(e).__name__}: {e}"
                if self.require_graphs:
                    raise RuntimeError(f"CUDA-graph capture of {self.name!r} at batch "
                                       f"{key[0]} failed: {e}") from e
                return None
            self._graphs[key] = (cg, static, out)
            self.graph_status[key] = "captured"
            return self._graphs[key]

    def _run_graphed(self, feeds: dict[str, torch.Tensor], batch: int, bucket: int,
                     time_steps: int | None) -> RunResult | None:
        """Pad ``feeds`` to ``bucket``, replay its graph and slice back to ``batch``; None
        when that graph could not be captured (the caller runs eagerly)."""
        key = self._graph_key(bucket, time_steps, feeds)
        entry = self._graph_entry(key)
        if entry is None:
            return None
        cg, static, out = entry
        with self._lock:  # one replay at a time: the static buffers are shared
            for k, v in feeds.items():
                static[k].copy_(pad_batch(v, bucket, 1 if self._temporal[k] else 0))
            cg.replay()
            return slice_result(out, batch, self._temporal)

    def graphs_captured(self) -> list[int]:
        """Batch buckets with a captured CUDA graph (sorted)."""
        return sorted({k[0] for k, v in self.graph_status.items() if v == "captured"})

    # -- numpy boundary ----------------------------------------------------------------------

    def infer(self, inputs: dict[str, np.ndarray], *, validate: bool = True
              ) -> dict[str, np.ndarray]:
        """Batch-first numpy in, batch-first float32 numpy out (see class docstring).

        The request boundary (the server and ``stc run`` call this): the numpy inputs are
        checked for NaN/inf on the host (``validate``, on by default; no device read), the
        outputs and the spike statistics come back in one device-to-host transfer.

        Raises:
            ValueError: as ``run``, and non-finite input values.
        """
        res = self.run(inputs, validate=validate)
        names, parts = [], []
        for name, y in res.outputs.items():
            y = y.transpose(0, 1) if self._temporal[name] else y
            names.append((name, tuple(y.shape)))
            parts.append(y.detach().to(torch.float32).reshape(-1).to(torch.float64))
        counts = res.stacked_counts()
        if counts is not None:
            parts.append(counts.to(torch.float64))
        flat = (torch.cat(parts) if len(parts) > 1 else parts[0]).cpu().numpy()  # one read
        out, at = {}, 0
        for name, shape in names:
            n = int(np.prod(shape, dtype=np.int64))
            out[name] = flat[at:at + n].astype(np.float32).reshape(shape)
            at += n
        if counts is not None:
            res.read_stats(flat[at:].tolist())
        return out

    def close(self) -> None:
        """Release the executable (tensors and graphs dropped); later calls raise
        RuntimeError."""
        self._closed = True
        self.graph = Graph()
        self._cache.clear()
        self._graphs.clear()


def load_bundle(path: str | Path, *, device: str | None = None, numerics: str | None = None,
                public_key: object = None, kernel_backend: str | None = None,
                backend: str | None = None, input_policy: str = "reject",
                precision: str = "fp32") -> Executable:
    """Load and verify a ``.stcb`` bundle, then bind it to a device.

    Args:
        path: the bundle file.
        device: "cpu" (default) | "gpu" (torch runtime; Triton kernels on CUDA; "cuda" is an
            alias) | "lava-sim" | "loihi"
            (the verified bundle's fixed graph goes to
            ``stc.lava.executor.load_lava_executable(graph, device)`` inside a spawned
            worker process, ``stc.lava.isolated``: Lava forks, which fails in a process
            that runs gRPC threads).
        numerics: "float" | "fixed" | None (the manifest's default).
        public_key: Ed25519 public key (object, PEM bytes or path); when given the bundle must
            carry a valid signature.
        kernel_backend: stc.kernels backend ("auto" | "triton" | "torch"); default "auto" on
            gpu and "torch" on cpu.
        backend: deprecated alias of ``device`` (its name before the CLI vocabulary was
            unified; removed in stc 0.3). Emits a DeprecationWarning.
        input_policy: "reject" (default: input outside the bundle's input contract raises
            ValueError naming the range) | "preprocess" (apply the contract's declared
            preprocessing to raw input first). Bundles without a contract (written before
            contracts existed) are not checked. Fixed numerics, on every backend, take the
            float model's input: the fixed graph's input quantisation is applied at the
            boundary (stc.runtime.contract).
        precision: "fp32" | "tf32" | "bf16" GEMM precision of float numerics (stc.precision;
            cpu/gpu only).

    Returns:
        Executable with name, version, inputs, outputs (TensorSpec), infer(), close().

    Raises:
        stc.errors.BundleError: the bundle fails any check (nothing is executed).
        ValueError: unknown backend or numerics, or numerics "fixed" on a bundle without a
            fixed graph. UnsupportedTargetError: gpu without CUDA, Lava backends unavailable.
    """
    import warnings

    from stc.bundle import read_bundle

    if backend is not None:
        warnings.warn("load_bundle(backend=...) is deprecated (removed in stc 0.3); use "
                      "device=... (backend means the kernel implementation elsewhere)",
                      DeprecationWarning, stacklevel=2)
        check_choice("backend (deprecated alias of device)", backend,
                     BACKENDS + tuple(DEVICE_ALIASES))
        if device is not None and DEVICE_ALIASES.get(device, device) != \
                DEVICE_ALIASES.get(backend, backend):
            raise ValueError(f"device={device!r} and backend={backend!r} disagree; pass "
                             "device only")
        device = backend
    device = DEVICE_ALIASES.get(device, device) if device is not None else "cpu"
    check_choice("device", device, DEVICES + tuple(DEVICE_ALIASES))
    backend = device  # the name used below
    check_choice("input_policy", input_policy, POLICIES)
    check_precision(precision)
    if numerics is not None:
        check_choice("numerics", numerics, ("float", "fixed"))
    bundle = read_bundle(path, public_key=public_key)
    if backend in ("lava-sim", "loihi"):
        try:
            from stc.lava.executor import load_lava_executable
        except ImportError as e:
            raise UnsupportedTargetError(f"backend {backend!r} needs stc.lava.executor, which "
                                         f"cannot be imported: {e}") from None
        if numerics == "float":
            raise ValueError(f"backend {backend!r} runs fixed-point numerics only")
        if precision != "fp32":
            raise ValueError(f"precision {precision!r} does not apply to {backend!r} "
                             "(fixed-point numerics); use precision='fp32'")
        if bundle.fixed_graph is None:
            raise ValueError(f"bundle {path} has no fixed-point graph for {backend!r}; "
                             "re-bundle with quantisation (stc bundle --fixed)")
        del load_lava_executable  # runs in the worker: Lava cannot fork from a threaded server
        from stc.lava.isolated import IsolatedLavaExecutable

        inner = IsolatedLavaExecutable(bundle.fixed_graph, backend, name=bundle.name,
                                       version=bundle.version)
        if not contracts_of(bundle.fixed_graph):
            return inner  # no contract (an older bundle): nothing to check
        return ContractGuard(inner, bundle.fixed_graph, input_policy)
    mode = numerics or bundle.manifest["numerics"]
    if mode == "fixed":
        if bundle.fixed_graph is None:
            raise ValueError(f"bundle {path} has no fixed-point graph; use numerics='float' "
                             "or re-bundle with quantisation (stc bundle --fixed)")
        graph = bundle.fixed_graph
    else:
        graph = bundle.graph
    specs = {"inputs": None, "outputs": None}
    for key in specs:
        specs[key] = [TensorSpec(s["name"], s["datatype"], list(s["shape"]))
                      for s in bundle.manifest[key]]
    return Executable(graph, name=bundle.name, version=bundle.version, inputs=specs["inputs"],
                      outputs=specs["outputs"], device="cuda" if backend == "gpu" else "cpu",
                      numerics=mode, kernel_backend=kernel_backend, input_policy=input_policy,
                      precision=precision)


class ContractGuard:
    """Wraps an executable that runs elsewhere (the Lava worker): holds each batch against
    ``graph``'s input contract with ``policy`` in this process (so a bad batch never reaches
    the worker); the worker's LavaExecutable applies the input quantisation. Delegates
    ``name``, ``version``, ``inputs``, ``outputs``, ``last_spike_count`` and ``close``."""

    def __init__(self, inner, graph: Graph, policy: str = "reject") -> None:
        self._inner, self._graph, self._policy = inner, graph, policy

    def __getattr__(self, item):
        return getattr(self._inner, item)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Check (or preprocess) ``inputs`` against the contract, then run them."""
        return self._inner.infer(prepare_inputs(self._graph, inputs, policy=self._policy))

    def close(self) -> None:
        """Close the wrapped executable."""
        self._inner.close()
