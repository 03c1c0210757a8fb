"""Run a netx network in Lava: the bit-exact "lava-sim" backend and the "loihi" hardware probe.

:func:`run_lava_sim` compiles the network once per batch, feeds integer inputs through a
fixed-point ring-buffer source and reads back ONLY the output spikes (a ring-buffer sink, one
``Var.get``): Var.get/Monitor on hidden layers are slow (shared/reference/lava.md,
"Running"). Lava is always stopped in a ``finally``, also on KeyboardInterrupt, so no worker
process or shared memory is left behind.

Timing: Lava adds one step of latency per synapse layer. Samples run back to back in one
pipelined run; netx's ``reset_interval = T`` (``reset_offset`` staggered one step per layer)
clears each layer's u and v at the step its sample's first activation reaches it, and the
L-step latency is removed from the output. The result equals the delay-free NumPy oracle
``stc.lava.layers.reference_forward`` and the stc runtime's fixed mode
(``stc.runtime.interpreter``), neuron biases included: garbage a layer emits before its reset
always reaches the next layer before that layer's own reset.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass

import numpy as np

from stc.errors import MappingError, UnsupportedTargetError

from .compat import import_lava
from .layers import synapse_layers, validate_layers
from .netx_export import write_netx

BACKENDS = ("lava-sim", "loihi")


class LoihiUnavailableError(UnsupportedTargetError):
    """Loihi 2 hardware was requested but Intel's lava-loihi package is not installed."""


def loihi_available() -> bool:
    """True when lava-loihi (Intel, INRC members only) is importable.

    Probes as shared/reference/lava.md says: ``lava.utils.loihi.is_installed()`` and
    ``import lava.magma.core.model.nc.model``. Never raises.
    """
    try:
        import_lava()
        from lava.utils import loihi

        if not loihi.is_installed():
            return False
        import lava.magma.core.model.nc.model  # noqa: F401
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False
    return True


def require_loihi() -> None:
    """Raise :class:`LoihiUnavailableError` unless Loihi 2 hardware support is installed."""
    if not loihi_available():
        raise LoihiUnavailableError(
            "device 'loihi' needs Intel's lava-loihi package (non-public, available to INRC "
            "members) and a Loihi 2 system; it is not installed here. Use the lava-sim device "
            "(--device lava-sim; device='lava-sim' in Python) for Lava's bit-accurate Loihi 2 "
            "simulator instead.")


def _to_netx(shape_torch: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(shape_torch[::-1])


def _check_input(x: object, in_shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a numpy array [B, T, {', '.join(map(str, in_shape))}], "
                        f"got {type(x).__name__}")
    if x.ndim != 2 + len(in_shape) or tuple(x.shape[2:]) != tuple(in_shape):
        raise ValueError(f"x must have shape [B, T, {', '.join(map(str, in_shape))}], "
                         f"got {x.shape}")
    if x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"x needs B >= 1 and T >= 1, got {x.shape}")
    if x.dtype.kind == "f" and not np.all(x == np.round(x)):
        raise ValueError("x must hold integers (spikes or graded spike payloads)")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"x must be numeric, got dtype {x.dtype}")
    xi = x.astype(np.int64)
    if xi.min(initial=0) < 0 or xi.max(initial=0) >= 1 << 23:
        raise ValueError("x must lie in [0, 2**23): binary spikes or graded payloads")
    return xi


def _source_data(xi: np.ndarray, in_shape, window: int, steps: int) -> np.ndarray:
    """Ring-buffer data [*netx_in_shape, steps]: sample b's T steps start at b * window."""
    B, T = xi.shape[:2]
    data = np.zeros(_to_netx(in_shape) + (steps,), dtype=np.int32)
    for b in range(B):
        xb = xi[b]
        if len(in_shape) == 3:
            xb = xb.transpose(0, 3, 2, 1)  # [T, C, H, W] -> [T, W, H, C]
        data[..., b * window: b * window + T] = np.moveaxis(xb, 0, -1)
    return data


def run_lava_sim(layers: list, x: np.ndarray, *, netx_path: str | os.PathLike | None = None,
                 hardware: bool = False) -> np.ndarray:
    """Run a fixed-point network in Lava's simulator (Loihi2SimCfg, select_tag='fixed_pt').

    The whole batch runs in one pipelined run (module docstring); the output equals
    ``stc.lava.layers.reference_forward`` and the runtime's fixed mode bit for bit.

    Args:
        layers: the network (``stc.lava.layers``), exported to netx HDF5 for the run.
        x: integer input [B, T, *input_shape] (torch order (N,) or (C, H, W)); binary
            spikes, or graded payloads (non-negative ints, sent as graded spikes).
        netx_path: use this netx file instead of writing ``layers`` to a temporary one.
        hardware: run with Loihi2HwCfg on a Loihi 2 system instead (use :func:`run_loihi`).

    Returns:
        uint8 output spikes [B, T, *output_shape] of the last layer.

    Raises:
        TypeError / ValueError: bad ``x``.
        LavaMissingError: Lava is not installed.
        Any error of the Lava run (or KeyboardInterrupt), after Lava has been stopped.
    """
    validate_layers(layers)
    in_shape = tuple(layers[0].shape)
    xi = _check_input(x, in_shape)
    B, T = xi.shape[:2]
    latency = len(synapse_layers(layers))
    out_shape = tuple(layers[-1].shape)
    graded = bool(xi.max(initial=0) > 1)
    bits = int(xi.max()).bit_length() if graded else 0

    netx = import_lava(netx=True)
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source

    steps = B * T + latency
    data = _source_data(xi, in_shape, T, steps)

    with contextlib.ExitStack() as stack:
        if netx_path is None:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="stc-netx-"))
            netx_path = os.path.join(tmp, "network.net")
            write_netx(layers, netx_path)
        net = netx.hdf5.Network(net_config=str(netx_path), input_message_bits=bits,
                                reset_interval=T, reset_offset=1)
        src = Source(data=data)
        sink = Sink(shape=_to_netx(out_shape), buffer=steps)
        src.s_out.connect(net.inp)
        net.out.connect(sink.a_in)
        if hardware:
            from lava.magma.core.run_configs import Loihi2HwCfg

            cfg = Loihi2HwCfg()
        else:
            cfg = Loihi2SimCfg(select_tag="fixed_pt")
        try:
            net.run(condition=RunSteps(num_steps=steps), run_cfg=cfg)
            got = np.asarray(sink.data.get())
        finally:  # also on KeyboardInterrupt: never leave Lava's worker processes running
            with contextlib.suppress(Exception):
                net.stop()
    # got: [*netx_out_shape, steps] -> [steps, *torch_out_shape]
    got = np.moveaxis(got, -1, 0)
    if len(out_shape) == 3:
        got = got.transpose(0, 3, 2, 1)
    out = got[latency: latency + B * T].reshape(B, T, *out_shape)
    return (out != 0).astype(np.uint8)


def run_loihi(layers: list, x: np.ndarray, **kwargs) -> np.ndarray:
    """Run on Loihi 2 hardware with Loihi2HwCfg (needs lava-loihi; see :func:`require_loihi`).

    Same arguments and result as :func:`run_lava_sim` (which it calls with ``hardware=True``).
    NOT validated on hardware by stc (no Loihi 2 system was available): the ring-buffer
    source and sink run as host processes next to the netx blocks on the chip.

    Raises:
        LoihiUnavailableError: lava-loihi is missing (names it and offers "lava-sim").
    """
    require_loihi()
    return run_lava_sim(layers, x, hardware=True, **kwargs)  # pragma: no cover - needs INRC


@dataclass
class TensorSpec:
    """OIP tensor signature (name, datatype e.g. "FP32", shape with -1 for the batch)."""

    name: str
    datatype: str
    shape: list[int]


class LavaExecutable:
    """Executable (CONTRIBUTING.md "Runtime" contract) running a LoihiMapping in Lava.

    ``infer({input_name: x})`` takes x [B, *input_shape] (repeated over the mapping's T steps,
    direct encoding) or [B, T, *input_shape] when the graph input is temporal; integer values.
    Returns ``{output_name: y}`` as FP32, batch-first, bit-identical to ``stc.runtime``'s fixed
    mode (:func:`run_lava_sim`): the mean over T of the output spikes [B, *out] when the graph
    ends with TimeMean, else the spikes [B, T, *out]. A mapping with a process graph
    (residual adds, attention: ``stc.lava.network``) returns its host readout's outputs (e.g.
    logits [B, classes]), computed from the integer values Lava emits.
    ``last_spike_count``: output spikes (sum of the values read back) of the last call.

    ``graph`` (the fixed graph that was mapped, optional): its input contract is checked and
    its input quantisation (``round(x * scale)``, stc.runtime.contract) applied to each batch
    before Lava sees it, exactly as ``stc.runtime.Executable`` does in fixed numerics, so the
    float model's input works here too. Without it the input must already be integers.
    """

    def __init__(self, mapping, backend: str = "lava-sim", name: str = "model",
                 version: str = "1", graph=None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "loihi":
            require_loihi()
        if not mapping.executable:
            raise MappingError(
                "this mapping is a placement plan only: nodes "
                f"{', '.join(map(repr, mapping.float_nodes or mapping.custom_nodes))} are "
                "float neurons or fused SpikeAttention; quantise the float graph with "
                "stc.passes.quantize (it lowers SSA / DSFormer attention) to run it in Lava")
        import_lava(netx=True)  # fail early with LavaMissingError
        self.mapping = mapping
        self.backend = backend
        self.name, self.version = name, version
        self.last_spike_count = 0
        self._dir = None
        self._io_graph = graph
        pg = mapping.process_graph
        if pg is not None:  # residual / attention graph: a Lava process graph
            self._pg = pg
            self._T, self._temporal = pg.time_steps, pg.temporal_input
            self.inputs = [TensorSpec(pg.input_name, "FP32", [-1] + (
                [-1] if self._temporal else []) + list(pg.input_shape))]
            temporal = pg.readout.temporal()
            self.outputs = [TensorSpec(o.name, "FP32", [-1] + ([-1] if temporal[o.name]
                                                                else []) + list(o.shape))
                            for o in pg.readout.outputs()]
            return
        self._pg = None
        net = mapping.network
        self._layers = net.layers
        self._T = net.time_steps
        self._temporal = net.temporal_input
        self._time_mean = net.time_mean
        in_shape = list(self._layers[0].shape)
        out_shape = list(self._layers[-1].shape)
        self.inputs = [TensorSpec(net.input_name, net.input_datatype,
                                  [-1] + ([-1] if self._temporal else []) + in_shape)]
        self.outputs = [TensorSpec(net.output_name, "FP32",
                                   [-1] + ([] if self._time_mean else [-1]) + out_shape)]
        self._dir = tempfile.TemporaryDirectory(prefix="stc-lava-")
        self._netx = os.path.join(self._dir.name, "network.net")
        with open(self._netx, "wb") as fh:
            fh.write(mapping.netx_bytes)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one batch; see the class docstring.

        Raises:
            ValueError: missing input, wrong shape, input outside the graph's input contract,
            or non-integer values (a graph without input quantisation).
        """
        spec = self.inputs[0]
        if spec.name not in inputs:
            raise ValueError(f"missing input {spec.name!r}; expected shape {spec.shape}")
        from stc.runtime.contract import input_scales, prepare_inputs, quantize_input

        if self._io_graph is not None:  # the contract; the scale follows per path
            inputs = prepare_inputs(self._io_graph, inputs)
        x = np.asarray(inputs[spec.name])
        if self._pg is not None:  # run_process_graph applies pg.input_scale
            from .network import run_process_graph

            vals, outs = run_process_graph(self._pg, x, hardware=self.backend == "loihi")
            self.last_spike_count = int(vals.sum())
            return outs
        if self._io_graph is not None:
            x = quantize_input(x, input_scales(self._io_graph).get(spec.name))
        if not self._temporal:
            x = np.repeat(x[:, None], self._T, axis=1)
        run = run_lava_sim if self.backend == "lava-sim" else run_loihi
        spikes = run(self._layers, x, netx_path=self._netx)
        self.last_spike_count = int(spikes.sum())
        out = spikes.mean(axis=1, dtype=np.float32) if self._time_mean else \
            spikes.astype(np.float32)
        return {self.outputs[0].name: out}

    def close(self) -> None:
        """Delete the temporary netx file (Lava itself is stopped after every call)."""
        if self._dir is not None:
            self._dir.cleanup()


def load_lava_executable(bundle_or_path, backend: str = "lava-sim") -> LavaExecutable:
    """Load a bundle (``.stcb``), a LoihiMapping, or an IR graph for Lava execution.

    Args:
        bundle_or_path: ``stc.lava.mapping.LoihiMapping``; or a path to a ``.stcb`` bundle
            (read with ``stc.bundle.read_bundle``; its fixed-point graph is mapped); or an
            ``stc.ir.Graph`` (fixed point).
        backend: "lava-sim" (Loihi2SimCfg, fixed_pt) or "loihi" (Loihi2HwCfg; needs lava-loihi).

    Raises:
        ValueError: unknown backend. LoihiUnavailableError: "loihi" without lava-loihi.
        LavaMissingError: Lava not installed. MappingError: the graph cannot be mapped.
        BundleError: unreadable bundle, or its loihi/network.net differs from its graph.
    """
    from .mapping import LoihiMapping, map_graph

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "loihi":
        require_loihi()
    name, version, graph = "model", "1", None
    if isinstance(bundle_or_path, LoihiMapping):
        mapping = bundle_or_path
    elif hasattr(bundle_or_path, "nodes") and hasattr(bundle_or_path, "tensors"):
        graph = bundle_or_path
        mapping = map_graph(graph)
    elif isinstance(bundle_or_path, (str, os.PathLike)):
        mapping, name, version, graph = _read_bundle_graph(bundle_or_path)
    else:
        raise TypeError("bundle_or_path must be a LoihiMapping, an stc.ir.Graph or a bundle "
                        f"path, got {type(bundle_or_path).__name__}")
    return LavaExecutable(mapping, backend, name=name, version=version, graph=graph)


def _read_bundle_graph(path):
    """(mapping, name, version, fixed graph) of a bundle: its fixed-point graph mapped again; a
    stored ``loihi/network.net`` must equal that mapping's export (else BundleError)."""
    from stc.bundle import read_bundle
    from stc.errors import BundleError

    from .mapping import NETX_MEMBER, map_graph

    b = read_bundle(path)
    graph = b.fixed_graph
    if graph is None:
        raise MappingError(f"bundle {path} has no fixed-point graph; Lava needs one "
                           "(re-bundle with quantisation, e.g. `stc bundle --fixed`)")
    mapping = map_graph(graph)
    stored = b.extra_members.get(NETX_MEMBER)
    if stored is not None and stored != mapping.netx_bytes:
        raise BundleError(f"bundle {path}: {NETX_MEMBER} does not match its fixed graph")
    return mapping, b.name, b.version, graph


__all__ = ["run_lava_sim", "run_loihi", "load_lava_executable", "LavaExecutable",
           "LoihiUnavailableError", "loihi_available", "require_loihi", "TensorSpec"]
