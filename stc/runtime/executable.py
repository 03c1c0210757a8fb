"""Executables: a verified bundle's graph bound to a device and numerics (CONTRIBUTING.md
"Runtime" contract), used by the server, the CLI and the compiler API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stc.errors import UnsupportedTargetError, check_choice
from stc.ir import Graph

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


class Executable:
    """A graph ready to run on one device in one numerics mode.

    ``infer(inputs)`` takes batch-first numpy arrays: [B, *shape] for static inputs (the
    graph's Repeat encoder presents them for T steps) or [B, T, *shape] for temporal inputs,
    and returns batch-first outputs ([B, *shape], or [B, T, *shape] for spike-train outputs).
    ``last_result`` keeps the outputs' spike statistics of the latest call.

    On CUDA with ``cuda_graphs=True``, float runs with a batch of at most
    ``CUDA_GRAPH_MAX_BATCH`` are captured once per input shape into a CUDA graph and replayed
    (no spike statistics on those runs). Capture is guarded: if anything in the graph cannot
    be captured (e.g. a host sync inside an op), that shape falls back to eager execution.

    Args:
        graph: a verified IR graph (float, or quantised for numerics="fixed"); its tensors are
            moved to ``device``.
        name, version: model identity (from the manifest).
        inputs, outputs: TensorSpecs (default: derived from the graph).
        device: "cpu" | "cuda". numerics: "float" | "fixed".
        kernel_backend: stc.kernels backend; default "auto" on cuda, "torch" on cpu.
        cuda_graphs: allow CUDA-graph replay for small batches on cuda.
        input_policy: "reject" (default) | "preprocess": how inputs are held against the
            graph's input contract (stc.runtime.contract; no contract: not checked). With
            numerics="fixed" the fixed graph's input quantisation (round(x * scale),
            ``graph.metadata["input_quant"]``) is applied here, before the interpreter, so a
            fixed graph takes the float model's input.

    Raises:
        ValueError: unknown numerics, device or input_policy. UnsupportedTargetError: cuda
            without CUDA. stc.ir.GraphError: numerics="fixed" on integer weights Loihi cannot
            hold (Graph.verify).
    """

    CUDA_GRAPH_MAX_BATCH = 8

    def __init__(self, graph: Graph, *, name: str = "model", version: str = "1",
                 inputs: list[TensorSpec] | None = None,
                 outputs: list[TensorSpec] | None = None, device: str = "cpu",
                 numerics: str = "float", kernel_backend: str | None = None,
                 cuda_graphs: bool = True, input_policy: str = "reject") -> None:
        check_choice("numerics", numerics, ("float", "fixed"))
        check_choice("input_policy", input_policy, POLICIES)
        if numerics == "fixed":
            graph.verify()  # rejects integer weights Lava's Dense would change
        self.input_policy = input_policy
        check_choice("device", device, ("cpu", "cuda"))
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
        self.outputs = outputs or [
            TensorSpec(n.name, "FP32", [-1] + ([-1] if temporal[n.name] else []) + list(n.shape))
            for n in graph.outputs()]
        self.last_result: RunResult | None = None
        self._cache: dict = {}
        if numerics == "fixed":  # the exact-precision plan, decided once at load
            from .interpreter import fixed_plan_for

            fixed_plan_for(graph, self._cache)
        self.cuda_graphs = bool(cuda_graphs) and self.device.type == "cuda"
        self._graphs: dict = {}
        self._graph_failed: set = set()
        self._closed = False

    def run(self, inputs: dict[str, torch.Tensor | np.ndarray], *, time_steps: int | None = None,
            record_spikes: bool = False) -> RunResult:
        """Run on batch-first inputs; returns a RunResult with T-first outputs.

        Inputs are first held against the input contract (``input_policy``) and, in fixed
        numerics, quantised at the boundary (stc.runtime.contract.prepare_inputs).

        Raises:
            ValueError: unknown/missing input names, wrong shapes or dtypes, input outside
            the contract's range; RuntimeError after close().
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
            t = torch.as_tensor(np.asarray(a)) if not isinstance(a, torch.Tensor) else a
            if t.dtype == torch.bool or not (t.is_floating_point() or t.dtype in (
                    torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)):
                raise ValueError(f"input {name!r} has unsupported dtype {t.dtype}")
            t = t.to(self.device, torch.float32)
            lead = 2 if node.temporal else 1
            if t.dim() != lead + len(node.shape) or tuple(t.shape[lead:]) != tuple(node.shape):
                want = ("B, T, " if node.temporal else "B, ") + ", ".join(map(str, node.shape))
                raise ValueError(f"input {name!r} must have shape [{want}] (batch first), "
                                 f"got {tuple(t.shape)}")
            if node.temporal:
                t = t.transpose(0, 1).contiguous()
            feeds[name] = t
        batch = next(iter(feeds.values())).shape[1 if want[next(iter(feeds))].temporal else 0]
        if (self.cuda_graphs and not record_spikes and self.numerics == "float"
                and batch <= self.CUDA_GRAPH_MAX_BATCH):
            res = self._run_graphed(feeds, time_steps)
            if res is not None:
                self.last_result = res
                return res
        with torch.no_grad():
            res = execute(self.graph, feeds, numerics=self.numerics,
                          kernel_backend=self.kernel_backend, time_steps=time_steps,
                          record_spikes=record_spikes, cache=self._cache)
        self.last_result = res
        return res

    def _run_graphed(self, feeds: dict[str, torch.Tensor],
                     time_steps: int | None) -> RunResult | None:
        """Replay (capturing on first use) a CUDA graph for these input shapes; None when the
        graph cannot be captured (then the caller runs eagerly)."""
        key = (tuple((k, tuple(v.shape)) for k, v in sorted(feeds.items())), time_steps)
        if key in self._graph_failed:
            return None
        entry = self._graphs.get(key)
        if entry is None:
            def step(static):
                return execute(self.graph, static, numerics="float",
                               kernel_backend=self.kernel_backend, time_steps=time_steps,
                               cache=self._cache, stats=False)
            try:
                static = {k: v.clone() for k, v in feeds.items()}
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.no_grad(), torch.cuda.stream(side):
                    for _ in range(2):  # warm-up: kernel compilation, module building
                        step(static)
                torch.cuda.current_stream().wait_stream(side)
                cg = torch.cuda.CUDAGraph()
                with torch.no_grad(), torch.cuda.graph(cg):
                    out = step(static)
            except Exception:  # any capture failure: remember and run eagerly
                self._graph_failed.add(key)
                return None
            entry = self._graphs[key] = (cg, static, out)
        cg, static, out = entry
        for k, v in feeds.items():
            static[k].copy_(v)
        cg.replay()
        return RunResult(outputs={k: v.clone() for k, v in out.outputs.items()})

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Batch-first numpy in, batch-first float32 numpy out (see class docstring)."""
        res = self.run(inputs)
        temporal = self.graph.temporal()
        out = {}
        for name, y in res.outputs.items():
            y = y.transpose(0, 1) if temporal[name] else y
            out[name] = y.detach().to("cpu", torch.float32).numpy()
        return out

    def close(self) -> None:
        """Release the executable (tensors dropped); later calls raise RuntimeError."""
        self._closed = True
        self.graph = Graph()
        self._cache.clear()
        self._graphs.clear()


def load_bundle(path: str | Path, *, device: str | None = None, numerics: str | None = None,
                public_key: object = None, kernel_backend: str | None = None,
                backend: str | None = None, input_policy: str = "reject") -> Executable:
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
                      numerics=mode, kernel_backend=kernel_backend, input_policy=input_policy)


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
