"""SpikeCompiler: the one-call API from a model to a compiled, runnable (and bundleable) graph.

    compiler = SpikeCompiler(target="cpu", optimization_level=2, time_steps=4)
    compiled = compiler.compile(model, input_shape=(1, 28, 28))
    logits = compiled.run(x)                      # x: [B, 1, 28, 28]
    compiled.save("model.stcb", name="digits")    # a verified .stcb bundle

Targets: "gpu" and "cpu" (stc.runtime; Triton kernels on CUDA), "lava-sim" (Lava's bit-accurate
Loihi 2 simulator) and "loihi2" (Loihi 2 hardware through Lava; needs Intel's lava-loihi).
"loihi3" is refused: no public Loihi 3 toolchain exists.
Optimisation levels: 0 verify only; 1 + dead-node elimination; 2 + BatchNorm folding;
3 + fixed-point quantisation for every target (lava-sim/loihi2 always quantise).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from stc.errors import UnsupportedTargetError, check_choice
from stc.ir import Graph

TARGETS = ("gpu", "cpu", "lava-sim", "loihi2")
#: Other spellings accepted for a target: the CLI's device names and the original design's.
TARGET_ALIASES = {"loihi": "loihi2", "cuda": "gpu", "simulation": "lava-sim"}
LAVA_TARGETS = ("lava-sim", "loihi2")


def default_target() -> str:
    """The target of ``SpikeCompiler()`` without one: "gpu" when torch sees CUDA, else "cpu"."""
    return "gpu" if torch.cuda.is_available() else "cpu"


class OptimizationPass(enum.Enum):
    """Graph passes the optimizer can run (stc.passes)."""

    ELIMINATE_DEAD_NODES = "eliminate_dead_nodes"
    FOLD_BATCHNORM = "fold_batchnorm"
    PRUNE = "prune"
    QUANTIZE = "quantize"


class Optimizer:
    """An ordered list of passes. ``add_pass(OptimizationPass.PRUNE, sparsity=0.5)``;
    ``run(graph) -> (float graph, fixed graph or None, reports)``."""

    def __init__(self) -> None:
        self.passes: list[tuple[OptimizationPass, dict]] = []

    def add_pass(self, p: OptimizationPass | str, **options) -> Optimizer:
        """Append a pass (enum member or its value); returns self.

        Raises:
            ValueError: unknown pass name.
        """
        try:
            p = OptimizationPass(p) if isinstance(p, str) else p
        except ValueError:
            raise ValueError(f"unknown pass {p!r}; expected one of "
                             f"{[q.value for q in OptimizationPass]}") from None
        if not isinstance(p, OptimizationPass):
            raise TypeError(f"pass must be an OptimizationPass, got {type(p).__name__}")
        self.passes.append((p, options))
        return self

    def run(self, graph: Graph) -> tuple[Graph, Graph | None, dict]:
        """Apply the passes in order; QUANTIZE yields the fixed graph (float graph kept)."""
        from stc import passes

        reports: dict = {}
        fixed = None
        for p, opt in self.passes:
            if p is OptimizationPass.ELIMINATE_DEAD_NODES:
                graph, reports["eliminated"] = passes.eliminate_dead_nodes(graph)
            elif p is OptimizationPass.FOLD_BATCHNORM:
                graph, reports["folded_batchnorm"] = passes.fold_batchnorm(graph)
            elif p is OptimizationPass.PRUNE:
                graph, reports["pruned"] = passes.prune_magnitude(graph, **opt)
            elif p is OptimizationPass.QUANTIZE:
                fixed, rep = passes.quantize(graph, **opt)
                reports["quantization"] = rep.to_dict()
        return graph, fixed, reports


class EnergyFigure(float):
    """A float in nJ (one inference, one sample) that also carries ``unit``, ``source`` (the
    citation) and ``report`` (stc.energy.graph.EnergyReport)."""

    unit = "nJ"

    def __new__(cls, value: float, source: str, report: object):
        obj = super().__new__(cls, value)
        obj.source, obj.report = source, report
        return obj

    def __repr__(self) -> str:
        return f"{float(self):.4g} nJ (estimate; {self.source})"


@dataclass
class CompiledModel:
    """A compiled graph bound to a target. ``graph`` is float; ``fixed_graph`` the quantised
    one (or None); ``reports`` the passes' reports."""

    graph: Graph
    target: str
    time_steps: int
    fixed_graph: Graph | None = None
    reports: dict = field(default_factory=dict)
    kernel_backend: str | None = None
    numerics: str = "float"  # cpu/gpu runs: "float", or "fixed" to run the quantised graph
    chip_config: str = "ncl-1chip"
    precision: str = "fp32"  # GEMM precision of float runs: "fp32" | "tf32" | "bf16"
    _executables: dict = field(default_factory=dict, repr=False, compare=False)
    _mapping: object = field(default=None, repr=False, compare=False)
    _energy: object = field(default=None, repr=False, compare=False)

    def __call__(self, x, **kw):
        """Same as :meth:`run` (the original design's ``compiled(x)``)."""
        return self.run(x, **kw)

    @property
    def mapping(self):
        """The Loihi 2 mapping (stc.lava.mapping.LoihiMapping) on ``chip_config``: the fixed
        graph's when there is one, else a placement plan of the float graph (an estimate).

        Raises:
            MappingError: the graph does not fit ``chip_config`` or has no Loihi form.
        """
        if self._mapping is None:
            from stc.lava.mapping import map_graph
            from stc.lava.plan import plan_mapping

            self._mapping = (map_graph(self.fixed_graph, chip_config=self.chip_config)
                             if self.fixed_graph is not None else
                             plan_mapping(self.graph, self.chip_config))
        return self._mapping

    @property
    def utilization(self) -> dict:
        """Loihi 2 resource use on ``chip_config``: chips and cores used and available, the
        share of cores used and the mean neuron utilisation per core; the limits and their
        sources are stc.lava.resources' (``mapping.allocation.report()`` has per-core detail).
        """
        from stc.lava.resources import CORES_PER_CHIP, LIMIT_SOURCES

        rep = self.mapping.allocation.report()
        avail = rep["chips_available"] * CORES_PER_CHIP
        return {"chip_config": self.chip_config, "chips_available": rep["chips_available"],
                "chips_used": rep["chips_used"], "cores_available": avail,
                "cores_used": rep["cores_used"], "core_utilization": rep["cores_used"] / avail,
                "mean_neuron_utilization": rep["mean_neuron_utilisation"],
                "host_layers": rep["host_layers"],
                "estimate_of_float_graph": self.fixed_graph is None,
                "sources": LIMIT_SOURCES}

    def profile_energy(self, x: torch.Tensor | np.ndarray | None = None):
        """Estimate the energy per inference on batch-first ``x`` (default: a seeded uniform
        [0, 1) probe batch of 4) and return the stc.energy.graph.EnergyReport (nJ)."""
        from stc.energy.graph import estimate_graph_energy

        if x is None:
            inp = self.graph.inputs()[0]
            shape = (4, *((self.time_steps,) if inp.temporal else ()), *inp.shape)
            x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        x = x.cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        report = None
        if self.fixed_graph is not None:
            try:
                report = self.mapping.allocation.report()
            except ValueError:  # MappingError: no mapping, no core/chip counts
                report = None
        self._energy = estimate_graph_energy(self.graph, x.astype(np.float32),
                                             mapping_report=report)
        return self._energy

    @property
    def energy_per_inference(self) -> EnergyFigure:
        """Energy of one inference (one sample) in nJ, an ESTIMATE: on lava-sim/loihi2 the
        Loihi 1 per-operation estimate (Davies et al., IEEE Micro 2018, Table 2), on cpu/gpu
        the papers' 45 nm formula (Horowitz, ISSCC 2014; Spikformer appendix). ``.source``
        says which, ``.report`` has all three (with the Loihi 2 range). Computed on the probe
        of ``compile(..., profile_energy=True)`` or the latest ``profile_energy(x)``; a first
        read without either profiles on the probe."""
        rep = self._energy or self.profile_energy()
        if self.target in ("lava-sim", "loihi2"):
            return EnergyFigure(rep.loihi1_nj, "Loihi 1 per-op estimate: " +
                                "; ".join(rep.sources["loihi1"]), rep)
        return EnergyFigure(rep.paper_nj, "paper formula, 45 nm fp32: " +
                            "; ".join(rep.sources["paper_formula"]), rep)

    def run(self, input: torch.Tensor | np.ndarray, time_steps: int | None = None,
            return_spike_trains: bool = False):
        """Run one batch.

        Args:
            input: [B, *input_shape] (static, presented T times) or [B, T, *input_shape] for
                temporal graphs (NIR).
            time_steps: override T (static inputs only).
            return_spike_trains: also return {neuron name: spikes [T, B, ...]}.

        Returns:
            output tensor (batch-first; [B, classes] after the time mean), or
            (output, spike_trains) when ``return_spike_trains``.

        Raises:
            ValueError: bad input shape. UnsupportedTargetError: Lava targets without Lava.
        """
        from stc.runtime.executable import Executable

        inp = self.graph.inputs()[0]
        out = self.graph.outputs()[0]
        if self.target in ("lava-sim", "loihi2"):
            if return_spike_trains:
                raise ValueError("return_spike_trains is not available on Lava targets")
            try:
                from stc.lava.executor import load_lava_executable
            except ImportError as e:
                raise UnsupportedTargetError(f"target {self.target!r} needs stc.lava: {e}") \
                    from None
            exe = load_lava_executable(self.fixed_graph, "lava-sim" if self.target ==
                                       "lava-sim" else "loihi")
            try:
                x = input.cpu().numpy() if isinstance(input, torch.Tensor) else input
                return torch.as_tensor(exe.infer({inp.name: x})[out.name])
            finally:
                exe.close()
        numerics = self.numerics
        if numerics == "fixed" and self.fixed_graph is None:
            raise ValueError("numerics='fixed' needs a quantised graph (optimization_level=3)")
        g = self.fixed_graph if numerics == "fixed" else self.graph
        exe = self._executables.get(numerics)
        if exe is None:  # built once per numerics (attention modules are rebuilt only once)
            exe = self._executables[numerics] = Executable(
                g, device="cuda" if self.target == "gpu" else "cpu", numerics=numerics,
                kernel_backend=self.kernel_backend,
                precision=self.precision if numerics == "float" else "fp32")
        res = exe.run({inp.name: input}, time_steps=time_steps,
                      record_spikes=return_spike_trains)
        y = res.outputs[out.name]
        if g.temporal()[out.name]:
            y = y.transpose(0, 1)
        return (y, res.spike_trains) if return_spike_trains else y

    def save(self, path: str | Path, *, name: str = "model", version: str = "1",
             private_key: object = None, extra_members: dict[str, bytes] | None = None,
             loihi_members: bool = True, selftest: bool = True) -> Path:
        """Write a ``.stcb`` bundle (stc.bundle.write_bundle) and return its path.

        With a fixed graph and ``loihi_members``, the Loihi 2 mapping of stc.lava
        (``map_graph(fixed_graph).members()``: netx network and mapping report under loihi/)
        is added; a graph the mapping refuses is bundled without them and the reason is
        recorded in the manifest metadata ("loihi"). With ``selftest`` the manifest gets a
        ``selftest`` section (stc.bundle.selftest.bundle_section: reference inputs and the cpu
        outputs of the float and fixed graphs) that edge nodes check on activation.
        """
        from stc.bundle import write_bundle
        from stc.errors import MappingError

        members = dict(extra_members or {})
        meta: dict = {"passes": self.reports}
        if self.fixed_graph is not None and loihi_members:
            try:
                from stc.lava.mapping import map_graph

                members = {**map_graph(self.fixed_graph).members(), **members}
                meta["loihi"] = "mapped"
            except (ImportError, MappingError) as e:
                meta["loihi"] = f"not mapped: {e}"
        section = None
        if selftest:
            from stc.bundle.selftest import bundle_section

            try:
                section = bundle_section(self.graph, self.fixed_graph)
            except (ValueError, RuntimeError) as e:  # the bundle stays usable without one
                meta["selftest"] = f"not recorded: {e}"
        return write_bundle(path, self.graph, name=name, version=version,
                            fixed_graph=self.fixed_graph, extra_members=members,
                            private_key=private_key, metadata=meta, selftest=section)


class SpikeCompiler:
    """Compile a spiking model for a target.

    Args:
        target: "gpu" | "cpu" | "lava-sim" | "loihi2"; default: what the machine has ("gpu"
            with CUDA, else "cpu"). Aliases: "loihi" (the CLI's device name) = "loihi2",
            "cuda" = "gpu", "simulation" (the original design's word) = "lava-sim".
            "loihi3" raises UnsupportedTargetError: there is no public Loihi 3 toolchain.
        optimization_level: 0..3 (module docstring).
        time_steps: T of the direct (repeat) encoder for static inputs (default 4);
            ``timesteps=`` is the same (the Python API's vocabulary).
        kernel_backend: stc.kernels backend for the runtime ("auto" | "triton" | "torch").
        precision: "fp32" | "tf32" | "bf16": GEMM precision of the compiled model's float
            runs on cpu/gpu (stc.precision; fixed numerics always run exact integers).

    Raises:
        UnsupportedTargetError: unknown target or loihi3. ValueError: bad level, T or
            precision.
    """

    def __init__(self, target: str | None = None, optimization_level: int = 2,
                 time_steps: int | None = None, kernel_backend: str | None = None, *,
                 timesteps: int | None = None, precision: str = "fp32") -> None:
        if time_steps is not None and timesteps is not None and time_steps != timesteps:
            raise ValueError(f"time_steps={time_steps} and timesteps={timesteps} disagree; "
                             "give one")
        time_steps = timesteps if timesteps is not None else (
            4 if time_steps is None else time_steps)
        if target is None:
            target = default_target()
        if isinstance(target, str):
            target = TARGET_ALIASES.get(target.strip().lower(), target.strip().lower())
        if target == "loihi3":
            raise UnsupportedTargetError(
                "target 'loihi3': there is no public Loihi 3 toolchain; the neuromorphic "
                "hardware target is Loihi 2 through Lava (target 'loihi2', or 'lava-sim' for "
                "the bit-accurate simulator)")
        if target not in TARGETS:
            raise UnsupportedTargetError(f"target must be one of {TARGETS} (aliases: "
                                         f"{TARGET_ALIASES}), got {target!r}")
        if isinstance(optimization_level, bool) or optimization_level not in (0, 1, 2, 3):
            raise ValueError(f"optimization_level must be 0, 1, 2 or 3, got "
                             f"{optimization_level!r}")
        if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
            raise ValueError(f"time_steps must be an int >= 1, got {time_steps!r}")
        if kernel_backend is not None:
            check_choice("kernel_backend", kernel_backend, ("auto", "triton", "torch"))
        self.target = target
        self.optimization_level = optimization_level
        self.time_steps = time_steps
        self.kernel_backend = kernel_backend
        from stc.precision import check_precision

        self.precision = check_precision(precision)

    def create_optimizer(self) -> Optimizer:
        """The optimizer this compiler's level and target imply; add more with add_pass."""
        opt = Optimizer()
        if self.optimization_level >= 1:
            opt.add_pass(OptimizationPass.ELIMINATE_DEAD_NODES)
        if self.optimization_level >= 2 or self.target in ("lava-sim", "loihi2"):
            opt.add_pass(OptimizationPass.FOLD_BATCHNORM)
        if self.optimization_level >= 3 or self.target in ("lava-sim", "loihi2"):
            opt.add_pass(OptimizationPass.QUANTIZE)
        return opt

    def compile(self, model, input_shape: tuple[int, ...] | None = None, *,
                dt: float | None = None, optimizer: Optimizer | None = None,
                chip_config: str = "ncl-1chip", profile_energy: bool = False,
                calibration=None) -> CompiledModel:
        """Compile ``model`` (nn.Module, nir.NIRGraph, a .nir path, an stc.ir.Graph, or an
        ANN as a .onnx path / onnx.ModelProto, converted by stc.convert.convert_onnx with
        T = time_steps and its defaults).

        Args:
            input_shape: per-sample input shape without T or B, e.g. (1, 28, 28); required
                for torch modules other than stc.models (whose config gives it). A leading
                batch dimension of 1 on a 4-D shape, as in the original design's
                ``input_shape=(1, C, H, W)``, is dropped.
            dt: time step for NIR inputs (required unless the graph's metadata has one;
                see stc.ir.frontends.nir).
            calibration: ONNX inputs only (required there): [n, *input_shape] data for
                threshold balancing.
            optimizer: passes to run instead of ``create_optimizer()``.
            chip_config: Loihi 2 system for the mapping, "ncl-<N>chip" (``utilization``; the
                Lava targets are mapped, and checked, at compile time).
            profile_energy: estimate ``energy_per_inference`` now, on a seeded uniform [0, 1)
                probe batch of 4 (``CompiledModel.profile_energy(x)`` re-estimates on real
                input).

        Raises:
            TypeError: unsupported model type. ValueError: missing input_shape / dt, bad
            chip_config. MappingError: unmappable layers; for lava-sim / loihi2 also a graph
            that Lava cannot run (e.g. a partial flatten, or attention kept as one node), so
            the failure comes here and not in ``run``. UnsupportedTargetError: gpu without
            CUDA.
        """
        from stc.lava.resources import parse_chip_config

        parse_chip_config(chip_config)
        if input_shape is not None and len(tuple(input_shape)) == 4 and \
                tuple(input_shape)[0] == 1:
            input_shape = tuple(input_shape)[1:]
        if self.target == "gpu" and not torch.cuda.is_available():
            raise UnsupportedTargetError("target 'gpu' needs CUDA (torch.cuda.is_available() "
                                         "is False); use the cpu target (SpikeCompiler('cpu'), "
                                         "or --device cpu on the command line)")
        graph = self._frontend(model, input_shape, dt, calibration)
        graph, fixed, reports = (optimizer or self.create_optimizer()).run(graph)
        mapping = self._check_lava(fixed, chip_config) if self.target in LAVA_TARGETS else None
        compiled = CompiledModel(graph=graph, target=self.target, time_steps=self.time_steps,
                                 fixed_graph=fixed, reports=reports,
                                 kernel_backend=self.kernel_backend, chip_config=chip_config,
                                 precision=self.precision)
        compiled._mapping = mapping
        if profile_energy:
            compiled.profile_energy()
        return compiled

    def _check_lava(self, fixed: Graph | None, chip_config: str = "ncl-1chip"):
        """Map the fixed graph for Lava now (raises MappingError if Lava cannot run it)."""
        from stc.errors import MappingError
        from stc.lava.mapping import map_graph

        if fixed is None:
            raise ValueError(f"target {self.target!r} needs the QUANTIZE pass (the optimizer "
                             "given has none)")
        mapping = map_graph(fixed, chip_config=chip_config)
        if not mapping.executable:
            raise MappingError(
                f"target {self.target!r}: Lava cannot run this graph (only a placement plan "
                f"exists); nodes kept as one custom process: {mapping.custom_nodes}. Use "
                "target 'cpu' with optimization_level=3 for the same fixed-point numerics")
        return mapping

    def _frontend(self, model, input_shape, dt, calibration=None) -> Graph:
        from stc.ir.frontends import from_nir, from_torch, load_nir

        if (isinstance(model, (str, Path)) and str(model).endswith(".onnx")) or \
                type(model).__name__ == "ModelProto":
            if calibration is None:
                raise ValueError("an ONNX ANN needs calibration= data [n, *input_shape] for "
                                 "ANN-to-SNN threshold balancing (stc.convert)")
            from stc.convert import convert_onnx

            return convert_onnx(model, calibration, timesteps=self.time_steps,
                                input_shape=input_shape).graph
        if isinstance(model, Graph):
            return model.copy().verify()
        if isinstance(model, (str, Path)) and str(model).endswith(".nir"):
            return load_nir(model, dt)  # dt None: the graph metadata's dt, else ValueError
        if type(model).__name__ == "NIRGraph":
            return from_nir(model, dt)
        if isinstance(model, nn.Module):
            from stc.ir.frontends.models import from_model, is_stc_model

            if is_stc_model(model):  # shape from model.config
                return from_model(model, time_steps=self.time_steps)
            if input_shape is None:
                raise ValueError("input_shape is required for torch modules, e.g. (1, 28, 28)")
            return from_torch(model.eval(), tuple(input_shape), self.time_steps)
        raise TypeError("model must be an nn.Module, a nir.NIRGraph, a .nir path, a .onnx "
                        f"path / onnx.ModelProto or an stc.ir.Graph; got {type(model).__name__}")
