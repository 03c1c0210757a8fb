"""Run a netx network in Lava: the bit-exact "lava-sim" backend and the "loihi" hardware probe.

:func:`run_lava_sim` runs a whole batch in ONE Lava run (one compile): samples are fed back to
back, T steps each, through a fixed-point ring-buffer source; netx's ``reset_interval = T``
makes each layer clear u and v at the step the next sample's first activation reaches it
(netx staggers the reset offset by one step per layer, matching the one step of synaptic delay
per layer), so samples never see each other's state. Only the output spikes are read back (a
ring-buffer sink, one ``Var.get``): Var.get/Monitor on hidden layers are slow
(shared/reference/lava.md, "Running"). Lava is always stopped in a ``finally``, also on
KeyboardInterrupt, so no worker process or shared memory is left behind.

Timing: in Lava, layer k's spikes for input step t appear at step t + k. The executor removes
this latency ("aligned" outputs, the convention of ``stc.lava.layers.reference_forward``) or
reproduces the stc runtime's fixed mode, which keeps T steps and lets the latency show
("runtime": y[t] = aligned[t - L], zero for t < L; identical to the runtime's integer model when
no neuron has a bias, because a bias-free neuron at rest stays at rest).
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
            "backend 'loihi' needs Intel's lava-loihi package (non-public, available to INRC "
            "members) and a Loihi 2 system; it is not installed here. Use backend='lava-sim' "
            "for Lava's bit-accurate Loihi 2 simulator instead.")


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


def run_lava_sim(layers: list, x: np.ndarray, *, alignment: str = "aligned",
                 netx_path: str | os.PathLike | None = None,
                 runtime_latency: int | None = None) -> np.ndarray:
    """Run a fixed-point network in Lava's simulator (Loihi2SimCfg, select_tag='fixed_pt').

    Args:
        layers: the network (``stc.lava.layers``), exported to netx HDF5 for the run.
        x: integer input [B, T, *input_shape] (torch order (N,) or (C, H, W)); binary
            spikes, or graded payloads (non-negative ints, sent as graded spikes).
        alignment: "aligned" (latency removed) or "runtime" (stc runtime fixed mode timing).
        netx_path: use this netx file instead of writing ``layers`` to a temporary one.
        runtime_latency: the shift applied by alignment "runtime": the graph's number of
            Linear/Conv2d nodes (pooling layers add Lava latency but none in the runtime);
            defaults to the number of synapse layers in ``layers``.

    Returns:
        uint8 output spikes [B, T, *output_shape] of the last layer.

    Raises:
        TypeError / ValueError: bad ``x`` or ``alignment``.
        LavaMissingError: Lava is not installed.
        Any error of the Lava run, after Lava has been stopped.
    """
    if alignment not in ("aligned", "runtime"):
        raise ValueError(f"alignment must be 'aligned' or 'runtime', got {alignment!r}")
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
    # source data: [*netx_in_shape, steps]; samples back to back, latency zero steps after
    flat = xi.reshape(B * T, *in_shape)
    if len(in_shape) == 3:
        flat = flat.transpose(0, 3, 2, 1)  # [BT, C, H, W] -> [BT, W, H, C]
    data = np.zeros(_to_netx(in_shape) + (steps,), dtype=np.int32)
    data[..., : B * T] = np.moveaxis(flat, 0, -1)

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
        try:
            net.run(condition=RunSteps(num_steps=steps),
                    run_cfg=Loihi2SimCfg(select_tag="fixed_pt"))
            got = np.asarray(sink.data.get())
        finally:  # also on KeyboardInterrupt: never leave Lava's worker processes running
            with contextlib.suppress(Exception):
                net.stop()
    # got: [*netx_out_shape, steps] -> [steps, *torch_out_shape]
    got = np.moveaxis(got, -1, 0)
    if len(out_shape) == 3:
        got = got.transpose(0, 3, 2, 1)
    out = np.stack([got[b * T + latency: b * T + latency + T] for b in range(B)])
    out = (out != 0).astype(np.uint8)
    if alignment == "runtime":
        shift = latency if runtime_latency is None else int(runtime_latency)
        shifted = np.zeros_like(out)
        if shift < T:
            shifted[:, shift:] = out[:, : T - shift]
        out = shifted
    return out


def run_loihi(layers: list, x: np.ndarray, **kwargs) -> np.ndarray:
    """Run on Loihi 2 hardware with Loihi2HwCfg (needs lava-loihi; see :func:`require_loihi`).

    Raises:
        LoihiUnavailableError: lava-loihi is missing (names it and offers "lava-sim").
    """
    require_loihi()
    raise LoihiUnavailableError(  # pragma: no cover - needs INRC hardware
        "lava-loihi is installed, but stc's Loihi2HwCfg path has not been validated on "
        "hardware yet; use backend='lava-sim'")


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
    Returns ``{output_name: y}`` as FP32, batch-first, like ``stc.runtime``'s fixed mode with
    its delay alignment (``fixed_delay`` zero steps padded, first steps dropped): the mean over
    T of the output spikes [B, *out] when the graph ends with TimeMean, else the spikes
    [B, T, *out]. Bit-identical to the runtime when no LoihiCubaLIF has a bias (a bias-free
    neuron at rest stays at rest, so Lava's pipelined timing and the runtime's padded timing
    agree). ``last_spike_count``: output spikes of the last call.
    """

    def __init__(self, mapping, backend: str = "lava-sim", name: str = "model",
                 version: str = "1") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        if backend == "loihi":
            require_loihi()
        import_lava(netx=True)  # fail early with LavaMissingError
        self.mapping = mapping
        self.backend = backend
        self.name, self.version = name, version
        self.last_spike_count = 0
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
            ValueError: missing input, wrong shape or non-integer values.
        """
        spec = self.inputs[0]
        if spec.name not in inputs:
            raise ValueError(f"missing input {spec.name!r}; expected shape {spec.shape}")
        x = np.asarray(inputs[spec.name])
        if not self._temporal:
            x = np.repeat(x[:, None], self._T, axis=1)
        run = run_lava_sim if self.backend == "lava-sim" else run_loihi
        spikes = run(self._layers, x, alignment="aligned", netx_path=self._netx)
        self.last_spike_count = int(spikes.sum())
        out = spikes.mean(axis=1, dtype=np.float32) if self._time_mean else \
            spikes.astype(np.float32)
        return {self.outputs[0].name: out}

    def close(self) -> None:
        """Delete the temporary netx file (Lava itself is stopped after every call)."""
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
    name, version = "model", "1"
    if isinstance(bundle_or_path, LoihiMapping):
        mapping = bundle_or_path
    elif hasattr(bundle_or_path, "nodes") and hasattr(bundle_or_path, "tensors"):
        mapping = map_graph(bundle_or_path)
    elif isinstance(bundle_or_path, (str, os.PathLike)):
        mapping, name, version = _read_bundle_graph(bundle_or_path)
    else:
        raise TypeError("bundle_or_path must be a LoihiMapping, an stc.ir.Graph or a bundle "
                        f"path, got {type(bundle_or_path).__name__}")
    return LavaExecutable(mapping, backend, name=name, version=version)


def _read_bundle_graph(path):
    """(mapping, name, version) of a bundle: its fixed-point graph mapped again; a stored
    ``loihi/network.net`` must equal that mapping's export (else BundleError)."""
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
    return mapping, b.name, b.version


__all__ = ["run_lava_sim", "run_loihi", "load_lava_executable", "LavaExecutable",
           "LoihiUnavailableError", "loihi_available", "require_loihi", "TensorSpec"]
