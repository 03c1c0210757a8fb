"""ANN-to-SNN conversion API: ``convert_onnx`` and the original design's
``SpikeformerConverter``.

    from stc.convert import convert_onnx
    conv = convert_onnx("cnn.onnx", calibration=x_train[:500], timesteps=32)
    logits = conv.run(x_test)                 # [B, classes], the SNN on stc's CPU runtime
    conv.save("snn.stcb", fixed=True)         # a verified bundle (float + Loihi fixed point)

Method: IF neurons, reset by subtraction, data-based threshold balancing with a robust
percentile (Rueckauer et al., Front. Neurosci. 11:682, 2017), optional bias shift of half a
threshold over T (Deng & Gu, ICLR 2021), direct (analog current) or deterministic rate input,
non-spiking readout (the last layer's currents averaged over T). stc.convert.build documents
each op's mapping.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from stc.errors import check_choice
from stc.ir import Graph

from .build import Builder, refuse_unsupported
from .calibrate import calibrate
from .reader import OnnxModel, read_onnx, run_onnx


@dataclass
class Conversion:
    """A converted SNN.

    Attributes:
        graph: the float SNN graph (stc IR: Input -> Repeat(T) -> ... IF ... -> TimeMean).
        onnx: the read ANN (run it with :meth:`run_ann`).
        thresholds: neuron point (ONNX tensor) -> activation scale lambda (list per channel).
        report: JSON-ready facts (timesteps, percentile, reset, bias_shift, maxpool method,
            nodes where the bias shift could not be placed).
    """

    graph: Graph
    onnx: OnnxModel
    thresholds: dict[str, float | list[float]] = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    rebuild: object = field(default=None, repr=False, compare=False)

    def zero_reset_graph(self, bias_shift: bool = False) -> Graph:
        """The same conversion with every IF neuron reset to zero (Loihi 2's reset; what
        :func:`stc.passes.quantize` maps to fixed point), by default without the bias shift:
        with reset to zero the shift over-fires at T >= 16 but is needed at small T (digits,
        fixed point: 96.4 / 96.7% at T = 16 / 32 without it, 91.7 / 93.9% with it; 79.4%
        without and 91.4% with it at T = 8; benchmarks/results/convert_digits_cpu.md)."""
        g = self.rebuild(reset="zero", bias_shift=bias_shift)
        g.metadata = {**g.metadata, "reset": "zero", "bias_shift": bias_shift}
        return g

    def fixed_graph(self, bias_shift: bool = False):
        """(fixed-point graph, stc.passes.QuantReport) of :meth:`zero_reset_graph` (reset to
        zero, no bias shift).

        Raises:
            MappingError: a node with no fixed form (residual Add, Scale, MaxPool before a
                neuron, rate encoder): these graphs are float-only.
        """
        from stc.passes import quantize

        return quantize(self.zero_reset_graph(bias_shift))

    def run(self, x, *, numerics: str = "float", timesteps: int | None = None,
            batch_size: int = 256) -> np.ndarray:
        """Run the SNN on stc's CPU runtime: x [B, *input_shape] -> outputs [B, classes]
        (the first graph output). ``numerics="fixed"`` runs :meth:`fixed_graph` (integer
        inputs only)."""
        from stc.runtime.interpreter import execute

        check_choice("numerics", numerics, ("float", "fixed"))
        g = self.graph if numerics == "float" else self.fixed_graph()[0]
        inp, out = g.inputs()[0].name, g.outputs()[0].name
        xs = torch.as_tensor(np.asarray(x, dtype=np.float32))
        res = []
        with torch.no_grad():
            for i in range(0, len(xs), batch_size):
                r = execute(g, {inp: xs[i:i + batch_size]}, numerics=numerics,
                            time_steps=timesteps, stats=False)
                res.append(r.outputs[out].float().numpy())
        return np.concatenate(res)

    def run_ann(self, x) -> np.ndarray:
        """The ANN's first output on x [B, *input_shape], computed by onnxruntime."""
        return run_onnx(self.onnx, x)[self.onnx.output_names[0]]

    def save(self, path: str | Path, *, fixed: bool = False, name: str = "model",
             version: str = "1", private_key: object = None) -> Path:
        """Write a verified ``.stcb`` bundle (stc.bundle.write_bundle) of the float graph and,
        with ``fixed``, the Loihi fixed-point graph (reset to zero, no bias shift,
        :meth:`fixed_graph`) and
        its Loihi 2 mapping when stc.lava maps it. Returns the path.

        Raises:
            MappingError: ``fixed`` for a graph with no fixed-point form.
        """
        from stc.compiler.api import CompiledModel

        fg, rep = (self.fixed_graph() if fixed else (None, None))
        reports = {"conversion": self.report}
        if rep is not None:
            reports["quantization"] = rep.to_dict()
        cm = CompiledModel(graph=self.graph, target="cpu",
                           time_steps=self.report["timesteps"], fixed_graph=fg,
                           reports=reports)
        return cm.save(path, name=name, version=version, private_key=private_key)


def _check_int(name: str, v, lo: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        raise ValueError(f"{name} must be an int >= {lo}, got {v!r}")
    return int(v)


def convert_onnx(model, calibration, *, timesteps: int = 32, percentile: float = 99.9,
                 spike_encoding: str = "direct", reset: str = "subtract",
                 bias_shift: bool = True, channel_wise: bool = True,
                 input_shape: tuple[int, ...] | None = None) -> Conversion:
    """Convert an ONNX ANN (ReLU CNN / MLP) to a rate-coded IF SNN graph.

    Args:
        model: path to a .onnx file, its bytes, or an ``onnx.ModelProto``.
        calibration: inputs [n, *input_shape] (numpy or torch) for threshold balancing,
            in the units the model was trained on.
        timesteps: T, the number of steps the static input is presented (direct encoding).
        percentile: robust-norm percentile in (0, 100] (100 = max-norm).
        spike_encoding: "direct" (the first layer gets the analog input each step) or
            "rate" (a deterministic IF encoder at the input's percentile; float only).
        reset: "subtract" (reset by subtraction, Rueckauer et al. 2017) or "zero".
        bias_shift: add half a threshold over T to every neuron's bias (Deng & Gu 2021).
        channel_wise: one threshold scale per channel (Kim et al., Spiking-YOLO, AAAI 2020)
            instead of one per layer (Rueckauer et al.; SpikingJelly's default).
        input_shape: per-sample input shape when the model's axes are dynamic.

    Returns:
        :class:`Conversion`.

    Raises:
        FileNotFoundError, TypeError, ValueError: unreadable model, bad opset, dynamic shape
            without ``input_shape``, calibration of the wrong shape, bad arguments.
        MappingError: an ONNX op with no conversion (names the op and node).
    """
    T = _check_int("timesteps", timesteps)
    check_choice("spike_encoding", spike_encoding, ("direct", "rate"))
    check_choice("reset", reset, ("subtract", "zero"))
    if isinstance(calibration, torch.Tensor):
        calibration = calibration.detach().cpu().numpy()
    m = read_onnx(model, input_shape)
    refuse_unsupported(m)
    lambdas = calibrate(m, calibration, percentile, channel_wise)
    x = np.asarray(calibration, dtype=np.float64)
    in_lam = float(np.percentile(x, percentile)) if spike_encoding == "rate" else 1.0
    if spike_encoding == "rate" and (x.min() < 0 or in_lam <= 0):
        raise ValueError("rate encoding needs non-negative inputs with a positive percentile")
    def rebuild(reset: str, bias_shift: bool) -> tuple[Graph, Builder]:
        b = Builder(m, lambdas, timesteps=T, reset=reset, bias_shift=bias_shift,
                    spike_encoding=spike_encoding, input_lambda=in_lam)
        return b.build(), b

    g, b = rebuild(reset, bool(bias_shift))
    report = {"method": "rate-coded IF, data-based threshold balancing (Rueckauer 2017)",
              "timesteps": T, "percentile": float(percentile), "reset": reset,
              "bias_shift": bool(bias_shift), "channel_wise": bool(channel_wise),
              "spike_encoding": spike_encoding, "opset": m.opset,
              "maxpool_before_neuron": b.maxpool_nodes, "bias_shift_not_placed": b.unshifted,
              "onnx_ops": sorted({n.op_type for n in m.proto.graph.node})}
    g.metadata = {**g.metadata, "conversion": report}
    th = {k: (v.tolist() if np.ndim(v) else float(v)) for k, v in lambdas.items()}
    return Conversion(graph=g, onnx=m, thresholds=th, report=report,
                      rebuild=lambda **kw: rebuild(**kw)[0])


def torch_to_onnx(module: torch.nn.Module, input_shape: tuple[int, ...],
                  opset: int = 17) -> bytes:
    """Export a torch module to ONNX bytes with ``torch.onnx.export`` (TorchScript exporter,
    dynamic batch axis, input "input", output "output"); the module is put in eval mode.

    Raises:
        ValueError: the exporter fails (its message is included).
    """
    f = io.BytesIO()
    module = module.eval()
    try:
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (torch.zeros(1, *input_shape),), f, dynamo=False,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              opset_version=opset)
    except Exception as e:
        raise ValueError(f"torch.onnx.export failed for {type(module).__name__}: {e}") \
            from None
    return f.getvalue()


class SpikeformerConverter:
    """The original design's converter: ANN (ONNX or torch) -> rate-coded IF SNN.

    Args:
        timesteps: T. threshold: robust-norm percentile in (0, 100], or "max" (= 100), or a
            string such as "99.9%". spike_encoding: "direct" | "rate".
        neuron_model: "IF" (reset by subtraction) or "IF-zero" (reset to zero). Other
            neuron models (LIF) are refused: a leak breaks the rate = activation relation.

    Raises:
        ValueError: bad arguments.
    """

    def __init__(self, timesteps: int = 32, threshold: float | str = 99.9,
                 spike_encoding: str = "direct", neuron_model: str = "IF") -> None:
        self.timesteps = _check_int("timesteps", timesteps)
        if isinstance(threshold, str):
            t = threshold.strip().lower()
            threshold = 100.0 if t == "max" else float(t.rstrip("%")) if t.rstrip(
                "%").replace(".", "", 1).isdigit() else threshold
        if isinstance(threshold, str) or not 0 < float(threshold) <= 100:
            raise ValueError(f"threshold must be a percentile in (0, 100], 'max' or 'P%', "
                             f"got {threshold!r}")
        self.percentile = float(threshold)
        self.spike_encoding = check_choice("spike_encoding", spike_encoding,
                                           ("direct", "rate"))
        self.neuron_model = check_choice("neuron_model", neuron_model, ("IF", "IF-zero"))

    def convert(self, model, calibration, *, input_shape: tuple[int, ...] | None = None,
                **options) -> Conversion:
        """Convert ``model``: an ONNX path/bytes/ModelProto, or a torch ``nn.Module``
        (exported with :func:`torch_to_onnx`; ``input_shape`` then defaults to the
        calibration data's per-sample shape). ``options`` go to :func:`convert_onnx`."""
        if isinstance(model, torch.nn.Module):
            shape = tuple(input_shape or np.shape(calibration)[1:])
            model = torch_to_onnx(model, shape)
        return convert_onnx(model, calibration, timesteps=self.timesteps,
                            percentile=self.percentile, spike_encoding=self.spike_encoding,
                            reset="subtract" if self.neuron_model == "IF" else "zero",
                            input_shape=input_shape, **options)
